#include "core/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <memory>

namespace kiln {

ThreadPool::ThreadPool(int threads) {
  for (int i = 1; i < threads; ++i) workers_.emplace_back([this] { worker_loop(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : workers_) t.join();
}

int ThreadPool::hardware_threads() {
  unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
}

void ThreadPool::worker_loop() {
  for (;;) {
    std::function<void()> task;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping and drained
      task = std::move(queue_.front());
      queue_.pop_front();
    }
    task();
  }
}

void ThreadPool::parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  int64_t max_chunks = std::max<int64_t>(1, n / grain);
  int64_t chunks = std::min<int64_t>(threads(), max_chunks);
  if (chunks <= 1) {
    fn(0, n);
    return;
  }
  // Shared state lives until the last chunk finishes; the caller waits for it.
  struct Group {
    std::atomic<int64_t> next{0};
    std::atomic<int64_t> done{0};
    std::mutex mu;
    std::condition_variable cv;
  };
  auto group = std::make_shared<Group>();
  int64_t per = (n + chunks - 1) / chunks;
  auto run_chunks = [group, per, n, chunks, &fn] {
    for (;;) {
      int64_t c = group->next.fetch_add(1);
      if (c >= chunks) return;
      int64_t begin = c * per;
      int64_t end = std::min(n, begin + per);
      if (begin < end) fn(begin, end);
      if (group->done.fetch_add(1) + 1 == chunks) {
        std::lock_guard<std::mutex> lock(group->mu);
        group->cv.notify_all();
      }
    }
  };
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (int64_t i = 1; i < chunks; ++i) queue_.emplace_back(run_chunks);
  }
  cv_.notify_all();
  run_chunks();
  std::unique_lock<std::mutex> lock(group->mu);
  group->cv.wait(lock, [&] { return group->done.load() == chunks; });
}

}  // namespace kiln
