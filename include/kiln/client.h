// kiln::client: a C++ client for KServe v2 / Triton-compatible inference
// servers (`kiln serve`, Triton) over HTTP/REST and gRPC, with one small API.
//
//   auto client = kiln::client::Client::create("http", "localhost:8000");
//   if (!client.is_ok()) ...                       // a bad URL or protocol
//   kiln::client::InferInput x = kiln::client::InferInput::from_tensor("INPUT0", tensor).value();
//   auto result = (*client)->infer("simple", {x, y});
//   if (!result.is_ok()) puts(result.status().message().c_str());
//
// Every call returns a Status / Result; nothing aborts. Errors say what went
// wrong: connection refused ("cannot connect to http://host:8000: Connection
// refused", kUnavailable), the server's own message for an HTTP error body or
// a gRPC status, with the code mapped (404 / NOT_FOUND -> kNotFound,
// 400 / INVALID_ARGUMENT -> kInvalidArgument, 503 / UNAVAILABLE ->
// kUnavailable, 501 / UNIMPLEMENTED -> kUnimplemented, ...).
//
// A Client holds one connection (HTTP) or one channel (gRPC); its calls are
// serialized by an internal mutex, so one client may be shared by threads
// but runs one request at a time. For concurrent load use one client per
// thread (as `kiln perf` does) or async_infer.
#pragma once

#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include "kiln/status.h"
#include "kiln/tensor.h"

namespace kiln::client {

enum class Protocol { kHttp, kGrpc };

// "http" / "grpc" (case-insensitive); an error naming the value otherwise.
Result<Protocol> protocol_from_name(const std::string& name);

// An input tensor on the wire: the protocol datatype ("FP32", "INT64",
// "BYTES", ...), the full shape (batch dim included) and its bytes in the
// binary layout of the protocol (little-endian, row-major, packed; BOOL one
// byte; BYTES elements as a 4-byte little-endian length plus the bytes).
struct InferInput {
  std::string name;
  std::string datatype;
  Dims shape;
  std::string data;

  // Copies `tensor` into wire form; fails for a type the protocol cannot carry.
  static Result<InferInput> from_tensor(std::string name, const Tensor& tensor);
};

// An output as received, in the same wire form as InferInput.
struct InferOutput {
  std::string name;
  std::string datatype;
  Dims shape;
  std::string data;

  // Decodes into an owned Tensor; fails if the bytes do not match the shape.
  Result<Tensor> to_tensor() const;
};

struct InferOptions {
  std::string model_version;         // "" = the server's choice (highest ready version)
  std::string request_id;            // echoed back in InferResult::id
  std::vector<std::string> outputs;  // outputs to return; empty = all
  bool binary_inputs = true;         // HTTP: binary tensor extension; false = JSON "data" arrays
  bool binary_outputs = true;        // HTTP: ask for binary outputs; false = JSON "data" arrays
  uint64_t priority = 0;             // 0 = the model's default
  uint64_t timeout_us = 0;           // server-side queue timeout; 0 = the model's default
  int64_t client_timeout_ms = 0;     // whole-call deadline on the client; 0 = none
};

// Client-side timing of one request (what perf_analyzer calls send / receive):
// send = building and writing the request, recv = decoding the response,
// total = the whole call.
struct RequestTiming {
  int64_t send_ns = 0;
  int64_t recv_ns = 0;
  int64_t total_ns = 0;
};

struct InferResult {
  std::string model_name;
  std::string model_version;
  std::string id;
  std::vector<InferOutput> outputs;
  RequestTiming timing;

  // The output named `name`, or nullptr.
  const InferOutput* output(const std::string& name) const;
};

struct TensorMetadata {
  std::string name;
  std::string datatype;
  Dims shape;  // -1 = variable; a leading -1 is the batch dim when max_batch_size > 0
};

struct ModelMetadata {
  std::string name;
  std::vector<std::string> versions;
  std::string platform;
  std::vector<TensorMetadata> inputs;
  std::vector<TensorMetadata> outputs;
};

struct ModelConfig {
  int64_t max_batch_size = 0;
  std::string json;  // the whole config as Triton renders it (proto field names)
};

// Cumulative {count, ns} of one phase, as in the statistics extension.
struct Duration {
  uint64_t count = 0;
  uint64_t ns = 0;
};

struct ModelStatistics {
  std::string name;
  std::string version;
  uint64_t last_inference_ms = 0;
  uint64_t inference_count = 0;  // sum of batch sizes
  uint64_t execution_count = 0;  // batches run
  Duration success, fail, queue, compute_input, compute_infer, compute_output;
};

using InferCallback = std::function<void(Result<InferResult>)>;

struct ClientOptions {
  int64_t connect_timeout_ms = 5000;
  size_t max_response_bytes = size_t{1} << 30;
};

class Client {
 public:
  virtual ~Client() = default;

  // url: "host:port" (or "http://host:port" for HTTP).
  static Result<std::unique_ptr<Client>> create(Protocol protocol, const std::string& url,
                                                const ClientOptions& options = {});
  static Result<std::unique_ptr<Client>> create(const std::string& protocol, const std::string& url,
                                                const ClientOptions& options = {});

  virtual Protocol protocol() const = 0;
  virtual const std::string& url() const = 0;

  virtual Result<bool> server_live() = 0;
  virtual Result<bool> server_ready() = 0;
  // False (not an error) when the server answers that the model is not ready
  // or unknown; an error only when the server cannot be asked.
  virtual Result<bool> model_ready(const std::string& model, const std::string& version = "") = 0;
  virtual Result<ModelMetadata> model_metadata(const std::string& model, const std::string& version = "") = 0;
  virtual Result<ModelConfig> model_config(const std::string& model, const std::string& version = "") = 0;
  // model "" = every loaded model; version "" = every loaded version.
  virtual Result<std::vector<ModelStatistics>> model_statistics(const std::string& model = "",
                                                                const std::string& version = "") = 0;

  virtual Result<InferResult> infer(const std::string& model, const std::vector<InferInput>& inputs,
                                    const InferOptions& options = {}) = 0;
  // Runs the request without blocking the caller and calls `callback` once
  // with its result, from another thread. gRPC: the channel's async call;
  // HTTP: a thread of its own on a connection of its own. The inputs are
  // copied. Every callback has run when the Client is destroyed.
  virtual void async_infer(const std::string& model, std::vector<InferInput> inputs, InferOptions options,
                           InferCallback callback) = 0;
  // async_infer as a future.
  std::future<Result<InferResult>> async_infer_future(const std::string& model, std::vector<InferInput> inputs,
                                                      InferOptions options = {});
};

}  // namespace kiln::client
