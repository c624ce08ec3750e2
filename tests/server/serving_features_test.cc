// Response cache, rate limiter and system shared memory, in isolation.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <thread>

#include "server/rate_limiter.h"
#include "server/response_cache.h"
#include "server/shared_memory.h"

namespace kiln::server {
namespace {

using namespace std::chrono_literals;

InferRequest request_of(float value) {
  InferRequest r;
  r.model_name = "m";
  Tensor t = Tensor::empty(DataType::kFloat32, {1, 4});
  for (int i = 0; i < 4; ++i) t.data<float>()[i] = value;
  r.inputs.push_back({"x", t});
  return r;
}

TEST(ResponseCacheTest, ExactKeysAndLruEviction) {
  std::string k1 = ResponseCache::key(request_of(1), "1");
  EXPECT_EQ(k1, ResponseCache::key(request_of(1), "1"));
  EXPECT_NE(k1, ResponseCache::key(request_of(2), "1"));
  EXPECT_NE(k1, ResponseCache::key(request_of(1), "2"));
  InferRequest with_output = request_of(1);
  with_output.requested_outputs.push_back("y");
  EXPECT_NE(k1, ResponseCache::key(with_output, "1"));

  std::vector<InferOutput> outs{{"y", Tensor::empty(DataType::kFloat32, {1, 4})}};
  const size_t one = k1.size() * 2 + 200;  // two entries fit, three do not
  ResponseCache cache(2 * one);
  cache.insert(k1, outs);
  std::string k2 = ResponseCache::key(request_of(2), "1");
  std::string k3 = ResponseCache::key(request_of(3), "1");
  cache.insert(k2, outs);
  ASSERT_TRUE(cache.lookup(k1).has_value());  // k1 is now the most recent
  cache.insert(k3, outs);
  EXPECT_TRUE(cache.lookup(k1).has_value());
  EXPECT_FALSE(cache.lookup(k2).has_value());  // evicted, least recently used
  EXPECT_TRUE(cache.lookup(k3).has_value());
  EXPECT_LE(cache.bytes(), cache.capacity());
  ResponseCache tiny(8);
  tiny.insert(k1, outs);
  EXPECT_EQ(tiny.entries(), 0u);
}

TEST(RateLimiterTest, ExclusionAndPriority) {
  RateLimiter limiter({});
  ResourceNeeds r{{"R", 1}};
  ASSERT_TRUE(limiter.declare(r).is_ok());
  std::atomic<int> inside{0}, max_inside{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&] {
      for (int k = 0; k < 20; ++k) {
        limiter.acquire(r, 1);
        int now = ++inside;
        max_inside = std::max(max_inside.load(), now);
        std::this_thread::sleep_for(100us);
        --inside;
        limiter.release(r);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(max_inside.load(), 1);

  limiter.acquire(r, 1);
  std::vector<int> order;
  std::mutex mu;
  std::thread low([&] {
    limiter.acquire(r, 2);
    std::lock_guard<std::mutex> lock(mu);
    order.push_back(2);
    limiter.release(r);
  });
  std::this_thread::sleep_for(30ms);
  std::thread high([&] {
    limiter.acquire(r, 1);
    std::lock_guard<std::mutex> lock(mu);
    order.push_back(1);
    limiter.release(r);
  });
  std::this_thread::sleep_for(30ms);
  limiter.release(r);
  low.join();
  high.join();
  EXPECT_EQ(order, (std::vector<int>{1, 2}));

  RateLimiter fixed({{"R", 1}});
  EXPECT_FALSE(fixed.declare({{"R", 2}}).is_ok());
}

class ShmObject {
 public:
  explicit ShmObject(size_t size) : key_("/kiln_test_" + std::to_string(getpid())) {
    int fd = shm_open(key_.c_str(), O_CREAT | O_RDWR, 0600);
    EXPECT_GE(fd, 0);
    EXPECT_EQ(ftruncate(fd, static_cast<off_t>(size)), 0);
    map_ = static_cast<char*>(mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
    size_ = size;
    close(fd);
  }
  ~ShmObject() {
    munmap(map_, size_);
    shm_unlink(key_.c_str());
  }
  const std::string& key() const { return key_; }
  char* data() { return map_; }

 private:
  std::string key_;
  char* map_;
  size_t size_;
};

TEST(SharedMemoryTest, BoundsChecksAndRoundTrip) {
  ShmObject obj(64);
  SharedMemoryManager off(false);
  EXPECT_NE(off.register_region("r", obj.key(), 0, 16).message().find("--allow-client-shm"), std::string::npos);

  SharedMemoryManager shm(true);
  EXPECT_FALSE(shm.register_region("r", obj.key(), 0, 65).is_ok());          // past the end
  EXPECT_FALSE(shm.register_region("r", obj.key(), UINT64_MAX, 2).is_ok());  // overflow
  EXPECT_FALSE(shm.register_region("r", obj.key(), 0, 0).is_ok());
  EXPECT_FALSE(shm.register_region("r", "/kiln_missing_key", 0, 8).is_ok());
  ASSERT_TRUE(shm.register_region("r", obj.key(), 16, 48).is_ok());
  EXPECT_FALSE(shm.register_region("r", obj.key(), 0, 8).is_ok());  // the name is taken

  float values[4] = {1, 2, 3, 4};
  std::memcpy(obj.data() + 16 + 8, values, sizeof(values));
  InferRequest req;
  InferInput in;
  in.name = "x";
  in.shm = ShmRef{"r", 16, 8};
  in.shm_dtype = DataType::kFloat32;
  in.shm_shape = {4};
  req.inputs.push_back(in);
  req.output_shm["y"] = ShmRef{"r", 16, 32};
  auto regions = shm.resolve(req);
  ASSERT_TRUE(regions.is_ok()) << regions.status().message();
  EXPECT_EQ(req.inputs[0].tensor.data<float>()[2], 3.0f);

  InferResponse resp;
  resp.outputs.push_back({"y", req.inputs[0].tensor});
  ASSERT_TRUE(SharedMemoryManager::write_outputs(req.output_shm, regions.value(), resp).is_ok());
  EXPECT_EQ(std::memcmp(obj.data() + 16 + 32, values, sizeof(values)), 0);
  EXPECT_TRUE(resp.outputs[0].shm.has_value());

  for (ShmRef bad : {ShmRef{"r", 16, 40}, ShmRef{"r", 16, UINT64_MAX - 4}, ShmRef{"r", 12, 0}, ShmRef{"nope", 16, 0}}) {
    InferRequest r2;
    InferInput i2 = in;
    i2.shm = bad;
    r2.inputs.push_back(i2);
    EXPECT_FALSE(shm.resolve(r2).is_ok());
  }
  InferResponse big;
  big.outputs.push_back({"y", Tensor::empty(DataType::kFloat32, {8})});
  EXPECT_FALSE(SharedMemoryManager::write_outputs(req.output_shm, regions.value(), big).is_ok());

  // Unregistered while in use: the mapping lives as long as the request holds it.
  ASSERT_TRUE(shm.unregister("r").is_ok());
  EXPECT_TRUE(SharedMemoryManager::write_outputs(req.output_shm, regions.value(), resp).is_ok());
  EXPECT_FALSE(shm.unregister("r").is_ok());
  EXPECT_TRUE(shm.status("").value().empty());
}

}  // namespace
}  // namespace kiln::server
