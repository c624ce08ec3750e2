// The sequence batcher on a fake stateful model: y = S + x, S' = y, with a
// START control and a CORRID echo, so tests see state, flags and ids.
#include "server/sequence_batcher.h"

#include <gtest/gtest.h>
#include <google/protobuf/text_format.h>

#include <future>
#include <thread>

#include "server/model_config.h"

namespace kiln::server {
namespace {

using namespace std::chrono_literals;

const Tensor* feed(const NamedTensors& feeds, const std::string& name) {
  for (const auto& [n, t] : feeds) {
    if (n == name) return &t;
  }
  return nullptr;
}

class AccInstance final : public BackendInstance {
 public:
  Result<NamedTensors> run(const NamedTensors& feeds, const std::vector<std::string>&) override {
    std::string names;
    for (const auto& [n, t] : feeds) names += n + ":" + t.debug_string() + " ";
    for (const char* want : {"x", "S_IN", "START", "CORRID"}) {
      if (feed(feeds, want) == nullptr) return Status(StatusCode::kInternal, "no feed " + std::string(want) + " in " + names);
    }
    const Tensor& x = *feed(feeds, "x");
    const Tensor& s = *feed(feeds, "S_IN");
    const Tensor& start = *feed(feeds, "START");
    const Tensor& corr = *feed(feeds, "CORRID");
    Tensor y = Tensor::empty(DataType::kFloat32, x.dims());
    Tensor flags = Tensor::empty(DataType::kFloat32, x.dims());
    for (int64_t i = 0; i < x.numel(); ++i) {
      y.data<float>()[i] = x.data<float>()[i] + s.data<float>()[i];
      flags.data<float>()[i] = static_cast<float>(start.data<int32_t>()[i] * 1000 + corr.data<uint64_t>()[i]);
    }
    std::this_thread::sleep_for(2ms);
    return NamedTensors{{"y", y}, {"S_OUT", y}, {"flags", flags}};
  }
};

class AccBackend final : public ModelBackend {
 public:
  AccBackend() {
    inputs_ = {{"x", DataType::kFloat32, {-1, 1}, true, false},
               {"S_IN", DataType::kFloat32, {-1, 1}, true, false},
               {"START", DataType::kInt32, {-1, 1}, true, false},
               {"CORRID", DataType::kUInt64, {-1, 1}, true, false}};
    outputs_ = {{"y", DataType::kFloat32, {-1, 1}, true, false},
                {"S_OUT", DataType::kFloat32, {-1, 1}, true, false},
                {"flags", DataType::kFloat32, {-1, 1}, true, false}};
  }
  const std::vector<TensorSpec>& inputs() const override { return inputs_; }
  const std::vector<TensorSpec>& outputs() const override { return outputs_; }
  const std::string& path() const override { return path_; }
  std::unique_ptr<BackendInstance> create_instance(const InstancePlacement&) const override { return std::make_unique<AccInstance>(); }

 private:
  std::vector<TensorSpec> inputs_, outputs_;
  std::string path_ = "acc";
};

struct Harness {
  explicit Harness(const std::string& extra, int max_batch = 4) {
    std::string text = "name: \"m\" max_batch_size: " + std::to_string(max_batch) + R"(
      sequence_batching { )" + extra + R"(
        control_input [ { name: "START" control [ { kind: CONTROL_SEQUENCE_START int32_false_true: [ 0, 1 ] } ] },
                        { name: "CORRID" control [ { kind: CONTROL_SEQUENCE_CORRID data_type: TYPE_UINT64 } ] } ]
        state [ { input_name: "S_IN" output_name: "S_OUT" data_type: TYPE_FP32 dims: [ 1 ] } ] })";
    EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &config));
    backend = std::make_shared<AccBackend>();
    Status st = complete_config(config, *backend);
    EXPECT_TRUE(st.is_ok()) << st.message();
    stats = std::make_shared<ModelStats>();
    auto created = SequenceBatcher::create(config, "1", "/nonexistent", backend, stats);
    EXPECT_TRUE(created.is_ok()) << created.status().message();
    batcher = std::move(created).value();
    EXPECT_TRUE(batcher->start().is_ok());
  }

  std::future<Result<InferResponse>> submit(uint64_t id, float value, bool start = false, bool end = false) {
    InferRequest req;
    req.model_name = "m";
    Tensor x = Tensor::empty(DataType::kFloat32, {1, 1});
    x.data<float>()[0] = value;
    req.inputs.push_back({"x", x});
    req.sequence_id.number = id;
    req.sequence_start = start;
    req.sequence_end = end;
    auto promise = std::make_shared<std::promise<Result<InferResponse>>>();
    auto future = promise->get_future();
    batcher->enqueue(std::move(req), 1, [promise](Result<InferResponse> r) { promise->set_value(std::move(r)); });
    return future;
  }

  static float out(std::future<Result<InferResponse>>& f, const std::string& name = "y") {
    auto r = f.get();
    EXPECT_TRUE(r.is_ok()) << r.status().message();
    if (!r.is_ok()) return -1;
    for (const auto& o : r.value().outputs) {
      if (o.name == name) return o.tensor.data<float>()[0];
    }
    return -2;
  }

  inference::ModelConfig config;
  std::shared_ptr<AccBackend> backend;
  std::shared_ptr<ModelStats> stats;
  std::unique_ptr<SequenceBatcher> batcher;
};

TEST(SequenceBatcherTest, StateFlagsAndIdsPerSequence) {
  for (const char* strategy : {"direct { }", "oldest { max_candidate_sequences: 4 max_queue_delay_microseconds: 1000 }"}) {
    Harness h(strategy);
    std::vector<std::thread> threads;
    for (uint64_t id = 1; id <= 4; ++id) {
      threads.emplace_back([&h, id] {
        float total = 0;
        for (int i = 0; i < 10; ++i) {
          total += static_cast<float>(id * 10 + i);
          auto f = h.submit(id, static_cast<float>(id * 10 + i), i == 0, i == 9);
          auto r = f.get();
          ASSERT_TRUE(r.is_ok()) << r.status().message();
          EXPECT_EQ(r.value().outputs[0].tensor.data<float>()[0], total);
          EXPECT_EQ(r.value().outputs[1].tensor.data<float>()[0], static_cast<float>((i == 0 ? 1000 : 0) + id));
        }
      });
    }
    for (auto& t : threads) t.join();
    h.batcher->stop();
  }
}

TEST(SequenceBatcherTest, RejectsRequestsOutsideASequence) {
  Harness h("direct { }");
  auto no_id = h.submit(0, 1.0f, true);
  EXPECT_NE(no_id.get().status().message().find("correlation ID"), std::string::npos);
  auto no_start = h.submit(5, 1.0f);
  EXPECT_NE(no_start.get().status().message().find("START flag"), std::string::npos);
  auto ok = h.submit(5, 1.0f, true, true);
  EXPECT_EQ(Harness::out(ok), 1.0f);
  auto after_end = h.submit(5, 1.0f);
  EXPECT_NE(after_end.get().status().message().find("START flag"), std::string::npos);
  auto restart = h.submit(5, 4.0f, true);
  EXPECT_EQ(Harness::out(restart), 4.0f);  // state starts over
}

TEST(SequenceBatcherTest, BacklogWaitsForASlotAndStopFailsIt) {
  Harness h("direct { }", /*max_batch=*/1);
  auto a = h.submit(1, 1.0f, true);
  EXPECT_EQ(Harness::out(a), 1.0f);
  auto b = h.submit(2, 5.0f, true);
  EXPECT_EQ(b.wait_for(50ms), std::future_status::timeout);  // sequence 1 holds the only slot
  auto a_end = h.submit(1, 1.0f, false, true);
  EXPECT_EQ(Harness::out(a_end), 2.0f);
  EXPECT_EQ(Harness::out(b), 5.0f);
  auto c = h.submit(3, 1.0f, true);  // waits behind sequence 2, which never ends
  h.batcher->stop();
  EXPECT_EQ(c.get().status().code(), StatusCode::kUnavailable);
}

TEST(SequenceBatcherTest, IdleSequencesAreReleased) {
  Harness h("max_sequence_idle_microseconds: 20000 direct { }");
  auto a = h.submit(7, 1.0f, true);
  EXPECT_EQ(Harness::out(a), 1.0f);
  std::this_thread::sleep_for(150ms);
  auto late = h.submit(7, 1.0f);
  EXPECT_NE(late.get().status().message().find("idle"), std::string::npos);
}

}  // namespace
}  // namespace kiln::server
