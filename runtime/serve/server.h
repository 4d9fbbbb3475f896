// `parnet serve`: a model repository behind the Open Inference Protocol on gRPC and HTTP, and
// Prometheus metrics, on Triton's default ports. Start() returns once every model is warmed up
// and every port listens; Shutdown() (or the destructor) stops accepting, lets running requests
// finish and answers queued ones UNAVAILABLE.
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "runtime/serve/http_frontend.h"
#include "runtime/serve/model_repository.h"
#include "runtime/serve/shared_memory.h"

namespace grpc {
class Server;
class Service;
}  // namespace grpc

namespace parnet::serve {

struct ServerOptions {
  std::string model_repository;
  std::string host = "0.0.0.0";
  int grpc_port = 8001;  // 0: any free port; -1: off
  int http_port = 8000;
  int metrics_port = 8002;
  size_t max_message_bytes = 64u << 20;  // gRPC messages and HTTP bodies
  int http_threads = 64;
  // Whether clients may register shared memory regions (Triton's --allow-client-shm): a region
  // can name any shared memory object the server may open, so only for trusted clients.
  bool allow_client_shm = false;
  ServeOptions models;
};

class Server {
 public:
  static StatusOr<std::unique_ptr<Server>> Start(const ServerOptions& options);
  ~Server();
  void Shutdown();

  // The bound ports (useful with port 0); -1 when off.
  int grpc_port() const { return grpc_port_; }
  int http_port() const { return http_ ? http_->port() : -1; }
  int metrics_port() const { return metrics_ ? metrics_->port() : -1; }
  const ModelRepository& repository() const { return *repository_; }

 private:
  Server() = default;
  // Before the repository: destroyed after it, so that a batch finishing while the models stop
  // still writes its outputs into live regions.
  std::unique_ptr<SharedMemoryRegions> regions_;
  std::unique_ptr<ModelRepository> repository_;
  std::atomic<bool> ready_{false};
  std::unique_ptr<grpc::Service> service_;
  std::unique_ptr<grpc::Server> grpc_;
  std::unique_ptr<HttpServer> http_, metrics_;
  int grpc_port_ = -1;
};

}  // namespace parnet::serve
