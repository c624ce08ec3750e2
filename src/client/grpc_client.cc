// GrpcClient: the GRPCInferenceService client (the stub generated from
// src/server/proto, shared with the server). Inputs travel as
// raw_input_contents; outputs are read from raw_output_contents by position
// (as Triton answers). async_infer uses gRPC's callback API.
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <condition_variable>
#include <mutex>

#include "client/client_impl.h"
#include "client/proto_convert.h"
#include "client/wire.h"
#include "core/error.h"
#include "grpc_service.grpc.pb.h"

namespace kiln::client {
namespace {

using Clock = std::chrono::steady_clock;

int64_t ns_since(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t).count();
}

StatusCode code_from_grpc(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::INVALID_ARGUMENT:
      return StatusCode::kInvalidArgument;
    case grpc::StatusCode::NOT_FOUND:
      return StatusCode::kNotFound;
    case grpc::StatusCode::UNIMPLEMENTED:
      return StatusCode::kUnimplemented;
    case grpc::StatusCode::OUT_OF_RANGE:
      return StatusCode::kOutOfRange;
    case grpc::StatusCode::FAILED_PRECONDITION:
      return StatusCode::kFailedPrecondition;
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return StatusCode::kResourceExhausted;
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
    case grpc::StatusCode::CANCELLED:
      return StatusCode::kUnavailable;
    default:
      return StatusCode::kInternal;
  }
}

const char* grpc_code_name(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::CANCELLED:
      return "CANCELLED";
    case grpc::StatusCode::UNKNOWN:
      return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND:
      return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS:
      return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED:
      return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED:
      return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE:
      return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED:
      return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL:
      return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE:
      return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS:
      return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED:
      return "UNAUTHENTICATED";
    default:
      return "OK";
  }
}

Status from_grpc(const grpc::Status& s, const std::string& what, const std::string& url) {
  std::string text = fmt::format("{}: gRPC {}: {}", what, grpc_code_name(s.error_code()), s.error_message());
  if (s.error_code() == grpc::StatusCode::UNAVAILABLE) text += fmt::format(" (server {})", url);
  return Status(code_from_grpc(s.error_code()), text);
}

Result<inference::ModelInferRequest> build_request(const std::string& model, const std::vector<InferInput>& inputs,
                                                   const InferOptions& options) {
  inference::ModelInferRequest req;
  req.set_model_name(model);
  req.set_model_version(options.model_version);
  req.set_id(options.request_id);
  for (const InferInput& in : inputs) {
    KILN_RETURN_IF_ERROR(check_wire_size("input '" + in.name + "'", in.datatype, in.shape, in.data));
    auto* t = req.add_inputs();
    t->set_name(in.name);
    t->set_datatype(in.datatype);
    for (int64_t d : in.shape) t->add_shape(d);
    req.add_raw_input_contents(in.data);
  }
  for (const std::string& name : options.outputs) req.add_outputs()->set_name(name);
  if (options.priority) (*req.mutable_parameters())["priority"].set_uint64_param(options.priority);
  if (options.timeout_us) {
    (*req.mutable_parameters())["timeout"].set_int64_param(static_cast<int64_t>(options.timeout_us));
  }
  return req;
}

Result<InferResult> parse_response(const inference::ModelInferResponse& res) {
  InferResult result;
  result.model_name = res.model_name();
  result.model_version = res.model_version();
  result.id = res.id();
  for (int i = 0; i < res.outputs_size(); ++i) {
    const auto& o = res.outputs(i);
    InferOutput out{o.name(), o.datatype(), Dims(o.shape().begin(), o.shape().end()), {}};
    if (i < res.raw_output_contents_size()) {
      out.data = res.raw_output_contents(i);
    } else if (o.contents().bytes_contents_size() > 0) {
      for (const auto& e : o.contents().bytes_contents()) append_bytes_element(out.data, e);
    } else {
      return invalid_argument("response: output '{}' has no raw_output_contents entry", out.name);
    }
    KILN_RETURN_IF_ERROR(check_wire_size("output '" + out.name + "'", out.datatype, out.shape, out.data));
    result.outputs.push_back(std::move(out));
  }
  return result;
}

class GrpcClient final : public Client {
 public:
  GrpcClient(std::string url, std::shared_ptr<grpc::Channel> channel, ClientOptions options)
      : url_(std::move(url)), stub_(inference::GRPCInferenceService::NewStub(channel)), options_(options) {}

  ~GrpcClient() override {
    std::unique_lock<std::mutex> lock(async_mu_);
    async_done_.wait(lock, [&] { return in_flight_ == 0; });
  }

  Protocol protocol() const override { return Protocol::kGrpc; }
  const std::string& url() const override { return url_; }

  Result<bool> server_live() override {
    inference::ServerLiveResponse res;
    KILN_RETURN_IF_ERROR(call("server live", &Stub::ServerLive, inference::ServerLiveRequest(), &res));
    return res.live();
  }

  Result<bool> server_ready() override {
    inference::ServerReadyResponse res;
    KILN_RETURN_IF_ERROR(call("server ready", &Stub::ServerReady, inference::ServerReadyRequest(), &res));
    return res.ready();
  }

  Result<bool> model_ready(const std::string& model, const std::string& version) override {
    inference::ModelReadyRequest req;
    req.set_name(model);
    req.set_version(version);
    inference::ModelReadyResponse res;
    Status s = call("model ready", &Stub::ModelReady, req, &res);
    // Unknown models are "not ready", as over HTTP (Kiln answers ready=false, Triton NOT_FOUND).
    if (s.code() == StatusCode::kNotFound || s.code() == StatusCode::kInvalidArgument) return false;
    KILN_RETURN_IF_ERROR(s);
    return res.ready();
  }

  Result<ModelMetadata> model_metadata(const std::string& model, const std::string& version) override {
    inference::ModelMetadataRequest req;
    req.set_name(model);
    req.set_version(version);
    inference::ModelMetadataResponse res;
    KILN_RETURN_IF_ERROR(call("model metadata", &Stub::ModelMetadata, req, &res));
    return to_metadata(res);
  }

  Result<ModelConfig> model_config(const std::string& model, const std::string& version) override {
    inference::ModelConfigRequest req;
    req.set_name(model);
    req.set_version(version);
    inference::ModelConfigResponse res;
    KILN_RETURN_IF_ERROR(call("model config", &Stub::ModelConfig, req, &res));
    return to_config(res.config());
  }

  Result<std::vector<ModelStatistics>> model_statistics(const std::string& model, const std::string& version) override {
    inference::ModelStatisticsRequest req;
    req.set_name(model);
    req.set_version(version);
    inference::ModelStatisticsResponse res;
    KILN_RETURN_IF_ERROR(call("model statistics", &Stub::ModelStatistics, req, &res));
    return to_statistics(res);
  }

  Result<InferResult> infer(const std::string& model, const std::vector<InferInput>& inputs,
                            const InferOptions& options) override {
    Clock::time_point start = Clock::now();
    KILN_ASSIGN_OR_RETURN(inference::ModelInferRequest req, build_request(model, inputs, options));
    int64_t send_ns = ns_since(start);
    grpc::ClientContext ctx;
    set_deadline(ctx, options.client_timeout_ms);
    inference::ModelInferResponse res;
    grpc::Status s = stub_->ModelInfer(&ctx, req, &res);
    if (!s.ok()) return from_grpc(s, fmt::format("infer '{}'", model), url_);
    Clock::time_point recv_start = Clock::now();
    KILN_ASSIGN_OR_RETURN(InferResult result, parse_response(res));
    result.timing = {send_ns, ns_since(recv_start), ns_since(start)};
    return result;
  }

  void async_infer(const std::string& model, std::vector<InferInput> inputs, InferOptions options,
                   InferCallback callback) override {
    struct Call {
      grpc::ClientContext ctx;
      inference::ModelInferRequest req;
      inference::ModelInferResponse res;
      Clock::time_point start;
      int64_t send_ns = 0;
    };
    auto call = std::make_shared<Call>();
    call->start = Clock::now();
    auto req = build_request(model, inputs, options);
    if (!req.is_ok()) return callback(req.status());
    call->req = std::move(req).value();
    call->send_ns = ns_since(call->start);
    set_deadline(call->ctx, options.client_timeout_ms);
    {
      std::lock_guard<std::mutex> lock(async_mu_);
      ++in_flight_;
    }
    stub_->async()->ModelInfer(&call->ctx, &call->req, &call->res,
                               [this, call, model, callback = std::move(callback)](grpc::Status s) {
                                 if (!s.ok()) {
                                   callback(from_grpc(s, fmt::format("infer '{}'", model), url_));
                                 } else {
                                   Clock::time_point recv_start = Clock::now();
                                   auto result = parse_response(call->res);
                                   if (result.is_ok()) {
                                     result->timing = {call->send_ns, ns_since(recv_start), ns_since(call->start)};
                                   }
                                   callback(std::move(result));
                                 }
                                 std::lock_guard<std::mutex> lock(async_mu_);
                                 if (--in_flight_ == 0) async_done_.notify_all();
                               });
  }

 private:
  using Stub = inference::GRPCInferenceService::Stub;

  void set_deadline(grpc::ClientContext& ctx, int64_t timeout_ms) const {
    if (timeout_ms > 0) ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(timeout_ms));
  }

  template <class Req, class Res>
  Status call(const char* what, grpc::Status (Stub::*method)(grpc::ClientContext*, const Req&, Res*), const Req& req,
              Res* res) {
    grpc::ClientContext ctx;
    // Metadata calls are short; a dead server fails after connect_timeout_ms.
    set_deadline(ctx, options_.connect_timeout_ms);
    grpc::Status s = (stub_.get()->*method)(&ctx, req, res);
    if (!s.ok()) return from_grpc(s, what, url_);
    return Status::ok();
  }

  const std::string url_;
  std::unique_ptr<Stub> stub_;  // thread-safe: gRPC stubs may be shared
  const ClientOptions options_;
  std::mutex async_mu_;  // guards in_flight_
  std::condition_variable async_done_;
  int in_flight_ = 0;
};

}  // namespace

Result<std::unique_ptr<Client>> make_grpc_client(const std::string& url, const ClientOptions& options) {
  std::string target = url;
  if (target.rfind("grpc://", 0) == 0) target = target.substr(7);
  if (target.rfind("http://", 0) == 0 || target.rfind("https://", 0) == 0) {
    return invalid_argument("'{}': a gRPC URL is host:port (no http:// scheme)", url);
  }
  if (target.find(':') == std::string::npos) target += ":8001";
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(INT32_MAX);
  args.SetMaxSendMessageSize(INT32_MAX);
  auto channel = grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
  if (!channel) return invalid_argument("'{}': gRPC could not create a channel", url);
  return std::unique_ptr<Client>(new GrpcClient(target, std::move(channel), options));
}

}  // namespace kiln::client
