// GrpcServer: inference.GRPCInferenceService (KServe v2 + Triton extensions)
// on gRPC's callback API: handlers never block a gRPC thread on inference;
// ModelInfer completes from the scheduler's callback, and ModelStreamInfer
// keeps any number of requests of one stream in flight.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "kiln/status.h"
#include "server/server_core.h"

namespace grpc {
class Server;
}

namespace kiln::server {

class InferenceService;

class GrpcServer {
 public:
  GrpcServer(ServerCore& core, std::string address, int port);
  ~GrpcServer();
  GrpcServer(const GrpcServer&) = delete;
  GrpcServer& operator=(const GrpcServer&) = delete;

  Status start();
  int port() const { return bound_port_; }
  // Stops accepting calls and waits for running ones until `deadline`, then cancels them.
  void shutdown(std::chrono::system_clock::time_point deadline);

 private:
  ServerCore& core_;
  std::string address_;
  int port_;
  int bound_port_ = 0;
  std::unique_ptr<InferenceService> service_;
  std::unique_ptr<grpc::Server> server_;
};

}  // namespace kiln::server
