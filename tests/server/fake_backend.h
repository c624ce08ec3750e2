// A ModelBackend for scheduler and config tests: y = x + 1 on FP32 [-1, 2],
// recording the batch sizes it ran and sleeping `delay` per run.
#pragma once

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include "server/backend.h"

namespace kiln::server::testing {

struct FakeLog {
  std::mutex mu;
  std::vector<int64_t> batches;  // guarded by mu
  std::vector<float> first_values;  // x[0] of each run, guarded by mu
  std::vector<std::thread::id> threads;  // the thread of each run, guarded by mu
  std::atomic<int> running{0};
  std::atomic<int> max_running{0};
};

class FakeInstance final : public BackendInstance {
 public:
  FakeInstance(FakeLog* log, std::chrono::milliseconds delay) : log_(log), delay_(delay) {}
  Result<NamedTensors> run(const NamedTensors& feeds, const std::vector<std::string>&) override {
    int now = ++log_->running;
    int prev = log_->max_running.load();
    while (now > prev && !log_->max_running.compare_exchange_weak(prev, now)) {
    }
    std::this_thread::sleep_for(delay_);
    const Tensor& x = feeds.at(0).second;
    Tensor y = Tensor::empty(DataType::kFloat32, x.dims());
    for (int64_t i = 0; i < x.numel(); ++i) y.data<float>()[i] = x.data<float>()[i] + 1.0f;
    {
      std::lock_guard<std::mutex> lock(log_->mu);
      log_->batches.push_back(x.dim(0));
      log_->first_values.push_back(x.numel() ? x.data<float>()[0] : 0.0f);
      log_->threads.push_back(std::this_thread::get_id());
    }
    --log_->running;
    return NamedTensors{{"y", y}};
  }

 private:
  FakeLog* log_;
  std::chrono::milliseconds delay_;
};

class FakeBackend final : public ModelBackend {
 public:
  explicit FakeBackend(std::chrono::milliseconds delay = std::chrono::milliseconds(0), bool batchable = true)
      : delay_(delay) {
    std::vector<int64_t> dims = batchable ? std::vector<int64_t>{-1, 2} : std::vector<int64_t>{3, 2};
    inputs_.push_back({"x", DataType::kFloat32, dims, true, false});
    outputs_.push_back({"y", DataType::kFloat32, dims, true, false});
  }
  const std::vector<TensorSpec>& inputs() const override { return inputs_; }
  const std::vector<TensorSpec>& outputs() const override { return outputs_; }
  const std::string& path() const override { return path_; }
  std::unique_ptr<BackendInstance> create_instance(const InstancePlacement&) const override {
    return std::make_unique<FakeInstance>(&log_, delay_);
  }
  FakeLog& log() const { return log_; }

 private:
  std::chrono::milliseconds delay_;
  std::vector<TensorSpec> inputs_;
  std::vector<TensorSpec> outputs_;
  std::string path_ = "fake";
  mutable FakeLog log_;
};

}  // namespace kiln::server::testing
