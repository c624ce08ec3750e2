// The body shared by http_client.cc and grpc_client.cc: query the `simple`
// model of examples/model_repository (OUTPUT0 = INPUT0 + INPUT1,
// OUTPUT1 = INPUT0 - INPUT1, FP32 [batch, 16]) with kiln::client and check
// the answers. Prints what it does; returns the process exit status.
#pragma once

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "kiln/client.h"

namespace kiln_examples {

inline int fail(const std::string& what, const kiln::Status& s) {
  std::fprintf(stderr, "%s failed: %s\n", what.c_str(), s.message().c_str());
  return 1;
}

// Checks OUTPUT0/OUTPUT1 of one result against a + b and a - b.
inline bool check_outputs(const kiln::client::InferResult& r, const std::vector<float>& a,
                          const std::vector<float>& b) {
  const auto* sum = r.output("OUTPUT0");
  const auto* diff = r.output("OUTPUT1");
  if (!sum || !diff) return false;
  auto s = sum->to_tensor();
  auto d = diff->to_tensor();
  if (!s.is_ok() || !d.is_ok() || s->numel() != static_cast<int64_t>(a.size())) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (s->data<float>()[i] != a[i] + b[i] || d->data<float>()[i] != a[i] - b[i]) return false;
  }
  return true;
}

inline int run_simple_example(const std::string& protocol, const std::string& url, const std::string& model) {
  using namespace kiln::client;
  auto made = Client::create(protocol, url);
  if (!made.is_ok()) return fail("create client", made.status());
  Client& client = *made.value();

  auto live = client.server_live();
  if (!live.is_ok()) return fail("server live", live.status());
  auto ready = client.model_ready(model);
  if (!ready.is_ok()) return fail("model ready", ready.status());
  std::printf("%s %s: server live %d, model '%s' ready %d\n", protocol.c_str(), url.c_str(), *live, model.c_str(),
              *ready);

  auto md = client.model_metadata(model);
  if (!md.is_ok()) return fail("model metadata", md.status());
  for (const auto& in : md->inputs) {
    std::printf("  input %s %s %s\n", in.name.c_str(), in.datatype.c_str(), kiln::dims_to_string(in.shape).c_str());
  }
  auto config = client.model_config(model);
  if (!config.is_ok()) return fail("model config", config.status());
  std::printf("  max_batch_size %lld\n", static_cast<long long>(config->max_batch_size));

  // Two inputs of FP32 [1, 16], sent as binary tensors (HTTP) or raw contents (gRPC).
  std::vector<float> a(16), b(16, 1.0f);
  for (int i = 0; i < 16; ++i) a[static_cast<size_t>(i)] = static_cast<float>(i);
  auto ta = kiln::Tensor::borrow(kiln::DataType::kFloat32, {1, 16}, a.data());
  auto tb = kiln::Tensor::borrow(kiln::DataType::kFloat32, {1, 16}, b.data());
  std::vector<InferInput> inputs = {InferInput::from_tensor("INPUT0", ta).value(),
                                    InferInput::from_tensor("INPUT1", tb).value()};
  auto result = client.infer(model, inputs);
  if (!result.is_ok()) return fail("infer", result.status());
  if (!check_outputs(*result, a, b)) {
    std::fprintf(stderr, "infer: wrong OUTPUT0/OUTPUT1\n");
    return 1;
  }
  std::printf("  infer: OUTPUT0 = INPUT0 + INPUT1 and OUTPUT1 = INPUT0 - INPUT1 (model version %s)\n",
              result->model_version.c_str());

  // The same request as JSON tensors (HTTP; gRPC ignores the flags), and asynchronously.
  InferOptions json;
  json.binary_inputs = false;
  json.binary_outputs = false;
  auto as_json = client.infer(model, inputs, json);
  if (!as_json.is_ok() || !check_outputs(*as_json, a, b)) {
    return fail("infer (JSON tensors)",
                as_json.is_ok() ? kiln::Status(kiln::StatusCode::kInternal, "wrong outputs") : as_json.status());
  }
  auto future = client.async_infer_future(model, inputs);
  auto async_result = future.get();
  if (!async_result.is_ok() || !check_outputs(*async_result, a, b)) {
    return fail("async infer", async_result.is_ok() ? kiln::Status(kiln::StatusCode::kInternal, "wrong outputs")
                                                    : async_result.status());
  }
  std::printf("  JSON and async infer: same answers\n");

  // Errors come back as Status values with the server's message.
  auto missing = client.infer("no_such_model", inputs);
  std::printf("  unknown model -> %s\n", missing.status().to_string().c_str());
  if (missing.is_ok()) return 1;

  auto stats = client.model_statistics(model);
  if (!stats.is_ok()) return fail("model statistics", stats.status());
  for (const auto& s : *stats) {
    std::printf("  stats %s v%s: %llu inferences, %llu executions, queue %llu ns, compute %llu ns\n", s.name.c_str(),
                s.version.c_str(), static_cast<unsigned long long>(s.inference_count),
                static_cast<unsigned long long>(s.execution_count), static_cast<unsigned long long>(s.queue.ns),
                static_cast<unsigned long long>(s.compute_infer.ns));
  }
  std::printf("OK\n");
  return 0;
}

// main() of both examples: -u URL and -m MODEL, then run_simple_example.
inline int simple_example_main(int argc, char** argv, const std::string& protocol, std::string url) {
  std::string model = "simple";
  for (int i = 1; i < argc; ++i) {
    if (i + 1 < argc && std::strcmp(argv[i], "-u") == 0) {
      url = argv[++i];
    } else if (i + 1 < argc && std::strcmp(argv[i], "-m") == 0) {
      model = argv[++i];
    } else {
      std::fprintf(stderr, "usage: %s [-u host:port] [-m model]\n", argv[0]);
      return 2;
    }
  }
  return run_simple_example(protocol, url, model);
}

}  // namespace kiln_examples
