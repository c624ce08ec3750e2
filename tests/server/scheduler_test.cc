#include "server/scheduler.h"

#include <gtest/gtest.h>
#include <google/protobuf/text_format.h>

#include <condition_variable>
#include <future>
#include <thread>

#include "server/fake_backend.h"
#include "server/model_config.h"

namespace kiln::server {
namespace {

using namespace std::chrono_literals;

struct Harness {
  Harness(const std::string& config_text, std::chrono::milliseconds delay) {
    backend = std::make_shared<testing::FakeBackend>(delay);
    EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(config_text, &config));
    config.set_name("m");
    Status st = complete_config(config, *backend);
    EXPECT_TRUE(st.is_ok()) << st.message();
    stats = std::make_shared<ModelStats>();
    scheduler = std::make_unique<Scheduler>(config, "1", backend, stats);
    EXPECT_TRUE(scheduler->start().is_ok());
  }

  std::future<Result<InferResponse>> submit(float value, int64_t rows = 1, uint64_t priority = 0) {
    InferRequest req;
    req.model_name = "m";
    Tensor x = Tensor::empty(DataType::kFloat32, {rows, 2});
    for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = value;
    req.inputs.push_back({"x", x});
    req.priority = priority;
    auto promise = std::make_shared<std::promise<Result<InferResponse>>>();
    auto future = promise->get_future();
    scheduler->enqueue(std::move(req), rows, [promise](Result<InferResponse> r) { promise->set_value(std::move(r)); });
    return future;
  }

  inference::ModelConfig config;
  std::shared_ptr<testing::FakeBackend> backend;
  std::shared_ptr<ModelStats> stats;
  std::unique_ptr<Scheduler> scheduler;
};

TEST(SchedulerTest, DynamicBatchingFormsBatchesAndSplitsResults) {
  Harness h("max_batch_size: 8 dynamic_batching { max_queue_delay_microseconds: 50000 }", 20ms);
  std::vector<std::future<Result<InferResponse>>> futures;
  for (int i = 0; i < 16; ++i) futures.push_back(h.submit(static_cast<float>(i), 1 + i % 2));
  for (int i = 0; i < 16; ++i) {
    auto r = futures[static_cast<size_t>(i)].get();
    ASSERT_TRUE(r.is_ok()) << r.status().message();
    const Tensor& y = r->outputs.at(0).tensor;
    ASSERT_EQ(y.dim(0), 1 + i % 2);
    for (float v : y.span<float>()) EXPECT_EQ(v, static_cast<float>(i) + 1.0f);
  }
  h.scheduler->stop();
  EXPECT_EQ(h.stats->inference_count.load(), 24u);
  EXPECT_LT(h.stats->execution_count.load(), 8u);
  for (int64_t b : h.backend->log().batches) EXPECT_LE(b, 8);
}

TEST(SchedulerTest, InstancesRunConcurrently) {
  Harness h("max_batch_size: 1 instance_group [ { count: 3 } ]", 50ms);
  std::vector<std::future<Result<InferResponse>>> futures;
  for (int i = 0; i < 6; ++i) futures.push_back(h.submit(1.0f));
  for (auto& f : futures) EXPECT_TRUE(f.get().is_ok());
  EXPECT_GE(h.backend->log().max_running.load(), 2);
  EXPECT_LE(h.backend->log().max_running.load(), 3);
}

TEST(SchedulerTest, QueueSizeLimitRejectsClearly) {
  Harness h("max_batch_size: 1 dynamic_batching { default_queue_policy { max_queue_size: 1 } }", 100ms);
  std::vector<std::future<Result<InferResponse>>> futures;
  for (int i = 0; i < 5; ++i) futures.push_back(h.submit(1.0f));
  int rejected = 0;
  for (auto& f : futures) {
    auto r = f.get();
    if (!r.is_ok()) {
      ++rejected;
      EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
      EXPECT_NE(r.status().message().find("maximum queue size"), std::string::npos);
    }
  }
  EXPECT_GE(rejected, 2);
  EXPECT_EQ(h.stats->failures[static_cast<size_t>(FailureReason::kRejected)].load(), static_cast<uint64_t>(rejected));
}

TEST(SchedulerTest, HigherPriorityRunsFirst) {
  Harness h("max_batch_size: 1 dynamic_batching { priority_levels: 2 }", 30ms);
  auto blocker = h.submit(0.0f);  // occupies the single instance
  std::this_thread::sleep_for(10ms);
  auto low = h.submit(2.0f, 1, 2);
  auto high = h.submit(1.0f, 1, 1);
  ASSERT_TRUE(blocker.get().is_ok());
  ASSERT_TRUE(low.get().is_ok());
  ASSERT_TRUE(high.get().is_ok());
  std::vector<float> order;
  {
    std::lock_guard<std::mutex> lock(h.backend->log().mu);
    order = h.backend->log().first_values;
  }
  // The level-1 request queued after the level-2 one still runs before it.
  EXPECT_EQ(order, (std::vector<float>{0.0f, 1.0f, 2.0f}));
}

TEST(SchedulerTest, StopDrainsQueuedWorkThenRefuses) {
  Harness h("max_batch_size: 1", 20ms);
  std::vector<std::future<Result<InferResponse>>> futures;
  for (int i = 0; i < 4; ++i) futures.push_back(h.submit(1.0f));
  h.scheduler->stop();
  for (auto& f : futures) EXPECT_TRUE(f.get().is_ok());
  auto late = h.submit(1.0f);
  auto r = late.get();
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
}

std::thread::id last_run_thread(const testing::FakeBackend& backend) {
  std::lock_guard<std::mutex> lock(backend.log().mu);
  return backend.log().threads.empty() ? std::thread::id() : backend.log().threads.back();
}

TEST(SchedulerTest, ShortExecutionsRunOnTheCallingThread) {
  Harness h("max_batch_size: 1", 0ms);
  ASSERT_TRUE(h.submit(1.0f).get().is_ok());  // no execution time known yet: a worker runs it
  EXPECT_NE(last_run_thread(*h.backend), std::this_thread::get_id());
  std::this_thread::sleep_for(20ms);  // the worker lets go of the instance just after it answers
  for (int i = 0; i < 20; ++i) {
    auto f = h.submit(static_cast<float>(i));
    // Answered before enqueue returned, on this thread.
    ASSERT_EQ(f.wait_for(0s), std::future_status::ready);
    auto r = f.get();
    ASSERT_TRUE(r.is_ok()) << r.status().message();
    EXPECT_EQ(r->outputs.at(0).tensor.data<float>()[0], static_cast<float>(i) + 1.0f);
    EXPECT_EQ(last_run_thread(*h.backend), std::this_thread::get_id());
  }
  EXPECT_EQ(h.stats->inference_count.load(), 21u);
  EXPECT_EQ(h.stats->execution_count.load(), 21u);
}

TEST(SchedulerTest, LongExecutionsAndBatchingModelsStayOnWorkers) {
  for (const char* config : {"max_batch_size: 1", "max_batch_size: 4 dynamic_batching { }"}) {
    const bool slow = std::string(config) == "max_batch_size: 1";
    Harness h(config, slow ? 2ms : 0ms);
    for (int i = 0; i < 3; ++i) {
      ASSERT_TRUE(h.submit(1.0f).get().is_ok());
      EXPECT_NE(last_run_thread(*h.backend), std::this_thread::get_id()) << config;
    }
  }
}

TEST(SchedulerTest, InlineRunsAndWorkersNeverShareAnInstance) {
  Harness h("max_batch_size: 1 instance_group [ { count: 2 } ]", 0ms);
  ASSERT_TRUE(h.submit(1.0f).get().is_ok());
  std::atomic<int> failed{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < 4; ++c) {
    clients.emplace_back([&, c] {
      for (int i = 0; i < 200; ++i) {
        auto r = h.submit(static_cast<float>(c)).get();
        if (!r.is_ok() || r->outputs.at(0).tensor.data<float>()[0] != static_cast<float>(c) + 1.0f) ++failed;
      }
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(failed.load(), 0);
  EXPECT_LE(h.backend->log().max_running.load(), 2);  // one run per instance at a time
  // Stopping while clients still submit: each request is answered, run or refused.
  std::atomic<int> answered{0};
  for (int c = 0; c < 3; ++c) {
    clients[static_cast<size_t>(c)] = std::thread([&] {
      for (int i = 0; i < 200; ++i) {
        auto r = h.submit(1.0f).get();
        if (r.is_ok() || r.status().code() == StatusCode::kUnavailable) ++answered;
      }
    });
  }
  std::this_thread::sleep_for(1ms);
  h.scheduler->stop();
  for (int c = 0; c < 3; ++c) clients[static_cast<size_t>(c)].join();
  EXPECT_EQ(answered.load(), 600);
}

}  // namespace
}  // namespace kiln::server
