#include "server/grpc/grpc_server.h"

#include <grpcpp/grpcpp.h>

#include <climits>
#include <deque>
#include <mutex>

#include "core/error.h"
#include "grpc_service.grpc.pb.h"
#include "server/grpc/grpc_codec.h"
#include "server/model_config.h"
#include "server/protocol.h"

namespace kiln::server {
namespace {

// One ModelStreamInfer stream: reads requests as they come, runs each
// through the core (many may be in flight), and writes each response or
// error message as it completes. Deletes itself when the stream is done.
class StreamReactor final
    : public grpc::ServerBidiReactor<inference::ModelInferRequest, inference::ModelStreamInferResponse> {
 public:
  explicit StreamReactor(ServerCore& core) : core_(core) { StartRead(&request_); }

  void OnReadDone(bool ok) override {
    if (!ok) {
      std::lock_guard<std::mutex> lock(mu_);
      reads_done_ = true;
      maybe_finish_locked();
      return;
    }
    std::string id = request_.id();
    Status named = check_model_name(request_.model_name());
    Result<InferRequest> decoded = named.is_ok() ? decode_grpc_request(request_) : Result<InferRequest>(named);
    if (!decoded.is_ok()) {
      push(error_response(decoded.status(), id));
    } else {
      {
        std::lock_guard<std::mutex> lock(mu_);
        ++pending_;
      }
      InferRequest request = std::move(decoded).value();
      const bool empty_final = request.empty_final_response;
      // A decoupled model's responses before the last (triton_final_response false, as Triton marks them).
      request.partial = [this, id](Result<InferResponse> result) { push(stream_response(result, id, false)); };
      core_.infer(std::move(request), [this, id, empty_final](Result<InferResponse> result) {
        std::lock_guard<std::mutex> lock(mu_);
        --pending_;
        // The final flag alone sends nothing unless the client asked for an empty final response.
        if (result.is_ok() && result.value().final_only && !empty_final) return maybe_finish_locked();
        push_locked(stream_response(result, id, true));
      });
    }
    StartRead(&request_);
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard<std::mutex> lock(mu_);
    writing_ = false;
    writes_.pop_front();
    if (!ok) broken_ = true;
    start_write_locked();
    maybe_finish_locked();
  }

  void OnDone() override {
    // A completion callback may still be leaving the lock it finished under.
    { std::lock_guard<std::mutex> lock(mu_); }
    delete this;
  }

 private:
  // A response (or its error) on the stream; `final` is its triton_final_response.
  static inference::ModelStreamInferResponse stream_response(const Result<InferResponse>& result, const std::string& id,
                                                             bool final) {
    if (!result.is_ok()) return error_response(result.status(), id);
    inference::ModelStreamInferResponse out;
    encode_grpc_response(result.value(), out.mutable_infer_response());
    (*out.mutable_infer_response()->mutable_parameters())["triton_final_response"].set_bool_param(final);
    return out;
  }

  static inference::ModelStreamInferResponse error_response(const Status& st, const std::string& id) {
    inference::ModelStreamInferResponse out;
    out.set_error_message(st.message());
    out.mutable_infer_response()->set_id(id);
    return out;
  }

  void push(inference::ModelStreamInferResponse r) {
    std::lock_guard<std::mutex> lock(mu_);
    push_locked(std::move(r));
  }

  void push_locked(inference::ModelStreamInferResponse r) {
    if (!broken_) writes_.push_back(std::move(r));
    start_write_locked();
    maybe_finish_locked();
  }

  void start_write_locked() {
    if (writing_ || writes_.empty() || broken_) {
      if (broken_) writes_.clear();
      return;
    }
    writing_ = true;
    StartWrite(&writes_.front());
  }

  void maybe_finish_locked() {
    if (finished_ || !reads_done_ || pending_ > 0 || writing_ || !writes_.empty()) return;
    finished_ = true;
    Finish(grpc::Status::OK);
  }

  ServerCore& core_;
  inference::ModelInferRequest request_;  // only touched by the read chain
  std::mutex mu_;
  std::deque<inference::ModelStreamInferResponse> writes_;  // guarded by mu_; front is being written
  int pending_ = 0;                                         // guarded by mu_
  bool writing_ = false;
  bool reads_done_ = false;
  bool broken_ = false;
  bool finished_ = false;
};

}  // namespace

class InferenceService final : public inference::GRPCInferenceService::CallbackService {
 public:
  explicit InferenceService(ServerCore& core) : core_(core) {}

  grpc::ServerUnaryReactor* ServerLive(grpc::CallbackServerContext* ctx, const inference::ServerLiveRequest*,
                                       inference::ServerLiveResponse* resp) override {
    resp->set_live(core_.live());
    return done(ctx, Status::ok());
  }

  grpc::ServerUnaryReactor* ServerReady(grpc::CallbackServerContext* ctx, const inference::ServerReadyRequest*,
                                        inference::ServerReadyResponse* resp) override {
    resp->set_ready(core_.ready());
    return done(ctx, Status::ok());
  }

  grpc::ServerUnaryReactor* ModelReady(grpc::CallbackServerContext* ctx, const inference::ModelReadyRequest* req,
                                       inference::ModelReadyResponse* resp) override {
    resp->set_ready(model_ready(core_, req->name(), req->version()));
    return done(ctx, Status::ok());
  }

  grpc::ServerUnaryReactor* ServerMetadata(grpc::CallbackServerContext* ctx, const inference::ServerMetadataRequest*,
                                           inference::ServerMetadataResponse* resp) override {
    *resp = server_metadata(core_);
    return done(ctx, Status::ok());
  }

  grpc::ServerUnaryReactor* ModelMetadata(grpc::CallbackServerContext* ctx, const inference::ModelMetadataRequest* req,
                                          inference::ModelMetadataResponse* resp) override {
    auto md = model_metadata(core_, req->name(), req->version());
    if (md.is_ok()) *resp = std::move(md).value();
    return done(ctx, md.status());
  }

  grpc::ServerUnaryReactor* ModelConfig(grpc::CallbackServerContext* ctx, const inference::ModelConfigRequest* req,
                                        inference::ModelConfigResponse* resp) override {
    auto cfg = model_config(core_, req->name(), req->version());
    if (cfg.is_ok()) *resp = std::move(cfg).value();
    return done(ctx, cfg.status());
  }

  grpc::ServerUnaryReactor* ModelStatistics(grpc::CallbackServerContext* ctx,
                                            const inference::ModelStatisticsRequest* req,
                                            inference::ModelStatisticsResponse* resp) override {
    auto stats = model_statistics(core_, req->name(), req->version());
    if (stats.is_ok()) *resp = std::move(stats).value();
    return done(ctx, stats.status());
  }

  grpc::ServerUnaryReactor* RepositoryIndex(grpc::CallbackServerContext* ctx,
                                            const inference::RepositoryIndexRequest* req,
                                            inference::RepositoryIndexResponse* resp) override {
    *resp = repository_index(core_, req->ready());
    return done(ctx, Status::ok());
  }

  grpc::ServerUnaryReactor* RepositoryModelLoad(grpc::CallbackServerContext* ctx,
                                                const inference::RepositoryModelLoadRequest* req,
                                                inference::RepositoryModelLoadResponse*) override {
    std::string config_json;
    for (const auto& [key, p] : req->parameters()) {
      if (key == "config") {
        if (!p.has_string_param()) return done(ctx, invalid_argument("parameter 'config' must be a string_param"));
        config_json = p.string_param();
      } else if (key.rfind("file:", 0) == 0) {
        return done(ctx, unimplemented("loading model files from the request is not supported"));
      }
    }
    return done(ctx, core_.load_model(req->model_name(), config_json));
  }

  grpc::ServerUnaryReactor* RepositoryModelUnload(grpc::CallbackServerContext* ctx,
                                                  const inference::RepositoryModelUnloadRequest* req,
                                                  inference::RepositoryModelUnloadResponse*) override {
    return done(ctx, core_.unload_model(req->model_name()));
  }

  grpc::ServerUnaryReactor* SystemSharedMemoryStatus(grpc::CallbackServerContext* ctx,
                                                     const inference::SystemSharedMemoryStatusRequest* req,
                                                     inference::SystemSharedMemoryStatusResponse* resp) override {
    auto regions = core_.shared_memory().status(req->name());
    if (regions.is_ok()) {
      for (const ShmRegionInfo& r : regions.value()) {
        auto& out = (*resp->mutable_regions())[r.name];
        out.set_name(r.name);
        out.set_key(r.key);
        out.set_offset(r.offset);
        out.set_byte_size(r.byte_size);
      }
    }
    return done(ctx, regions.status());
  }

  grpc::ServerUnaryReactor* SystemSharedMemoryRegister(grpc::CallbackServerContext* ctx,
                                                       const inference::SystemSharedMemoryRegisterRequest* req,
                                                       inference::SystemSharedMemoryRegisterResponse*) override {
    return done(ctx, core_.shared_memory().register_region(req->name(), req->key(), req->offset(), req->byte_size()));
  }

  grpc::ServerUnaryReactor* SystemSharedMemoryUnregister(grpc::CallbackServerContext* ctx,
                                                         const inference::SystemSharedMemoryUnregisterRequest* req,
                                                         inference::SystemSharedMemoryUnregisterResponse*) override {
    return done(ctx, core_.shared_memory().unregister(req->name()));
  }

  grpc::ServerUnaryReactor* CudaSharedMemoryStatus(grpc::CallbackServerContext* ctx,
                                                   const inference::CudaSharedMemoryStatusRequest*,
                                                   inference::CudaSharedMemoryStatusResponse*) override {
    return done(ctx, no_cuda_shm());
  }
  grpc::ServerUnaryReactor* CudaSharedMemoryRegister(grpc::CallbackServerContext* ctx,
                                                     const inference::CudaSharedMemoryRegisterRequest*,
                                                     inference::CudaSharedMemoryRegisterResponse*) override {
    return done(ctx, no_cuda_shm());
  }
  grpc::ServerUnaryReactor* CudaSharedMemoryUnregister(grpc::CallbackServerContext* ctx,
                                                       const inference::CudaSharedMemoryUnregisterRequest*,
                                                       inference::CudaSharedMemoryUnregisterResponse*) override {
    return done(ctx, no_cuda_shm());
  }

  grpc::ServerUnaryReactor* ModelInfer(grpc::CallbackServerContext* ctx, const inference::ModelInferRequest* req,
                                       inference::ModelInferResponse* resp) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    Status named = check_model_name(req->model_name());
    if (!named.is_ok()) {
      reactor->Finish(to_grpc_status(named));
      return reactor;
    }
    auto decoded = decode_grpc_request(*req);
    if (!decoded.is_ok()) {
      reactor->Finish(to_grpc_status(decoded.status()));
      return reactor;
    }
    core_.infer(std::move(decoded).value(), [reactor, resp](Result<InferResponse> result) {
      if (!result.is_ok()) {
        reactor->Finish(to_grpc_status(result.status()));
        return;
      }
      encode_grpc_response(result.value(), resp);
      reactor->Finish(grpc::Status::OK);
    });
    return reactor;
  }

  grpc::ServerBidiReactor<inference::ModelInferRequest, inference::ModelStreamInferResponse>* ModelStreamInfer(
      grpc::CallbackServerContext*) override {
    return new StreamReactor(core_);
  }

 private:
  static Status no_cuda_shm() {
    return unimplemented("CUDA shared memory is not supported by Kiln (use system shared memory)");
  }

  static grpc::ServerUnaryReactor* done(grpc::CallbackServerContext* ctx, const Status& st) {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    reactor->Finish(to_grpc_status(st));
    return reactor;
  }

  ServerCore& core_;
};

GrpcServer::GrpcServer(ServerCore& core, std::string address, int port)
    : core_(core), address_(std::move(address)), port_(port) {}

GrpcServer::~GrpcServer() {
  if (server_) {
    server_->Shutdown(std::chrono::system_clock::now());
    server_->Wait();
  }
}

Status GrpcServer::start() {
  service_ = std::make_unique<InferenceService>(core_);
  grpc::ServerBuilder builder;
  builder.AddListeningPort(address_ + ":" + std::to_string(port_), grpc::InsecureServerCredentials(), &bound_port_);
  const size_t limit = core_.options().max_request_bytes;
  builder.SetMaxReceiveMessageSize(static_cast<int>(std::min<size_t>(limit, INT_MAX)));
  builder.SetMaxSendMessageSize(INT_MAX);
  builder.RegisterService(service_.get());
  server_ = builder.BuildAndStart();
  if (!server_ || bound_port_ == 0) return unavailable("cannot listen for gRPC on {}:{}", address_, port_);
  return Status::ok();
}

void GrpcServer::shutdown(std::chrono::system_clock::time_point deadline) {
  if (!server_) return;
  server_->Shutdown(deadline);
  server_->Wait();
  server_.reset();
}

}  // namespace kiln::server
