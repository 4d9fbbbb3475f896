#include "runtime/serve/server.h"

#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/codegen/service_type.h>

#include <limits>
#include <set>

#include "runtime/core/log_internal.h"
#include "runtime/serve/grpc_frontend.h"
#include "runtime/serve/host_policy.h"

namespace parnet::serve {
namespace {

// Moves the calling thread, and so every thread the server starts from it (model workers, gRPC,
// HTTP), off the cores that host policies give to bound instances, when any core is left. Those
// instances then compute without the front ends preempting them.
Status KeepOffBoundCores(const HostPolicies& policies) {
  if (policies.empty()) return Status::Ok();
  std::set<int> bound;
  for (const auto& [name, cores] : policies) bound.insert(cores.begin(), cores.end());
  std::vector<int> rest;
  for (int c : AllowedCores()) {
    if (!bound.count(c)) rest.push_back(c);
  }
  if (rest.empty()) {
    Logger("serve")->warn("host policies name every core ({}); the front ends share them",
                          CpuListToString(AllowedCores()));
    return Status::Ok();
  }
  Logger("serve")->info("front ends on cores {}; host policies hold {}", CpuListToString(rest),
                        CpuListToString({bound.begin(), bound.end()}));
  return BindThisThread(rest);
}

}  // namespace

StatusOr<std::unique_ptr<Server>> Server::Start(const ServerOptions& options) {
  std::unique_ptr<Server> server(new Server());
  RETURN_IF_ERROR(KeepOffBoundCores(options.models.host_policies));
  ASSIGN_OR_RETURN(server->repository_,
                   ModelRepository::Load(options.model_repository, options.models));
  server->regions_ = std::make_unique<SharedMemoryRegions>(options.allow_client_shm);
  const int max_message = static_cast<int>(
      std::min<size_t>(options.max_message_bytes, std::numeric_limits<int>::max()));
  if (options.grpc_port >= 0) {
    server->service_ =
        MakeGrpcService(server->repository_.get(), &server->ready_, server->regions_.get());
    grpc::ServerBuilder builder;
    builder.AddListeningPort(options.host + ":" + std::to_string(options.grpc_port),
                             grpc::InsecureServerCredentials(), &server->grpc_port_);
    builder.RegisterService(server->service_.get());
    // gRPC sets SO_REUSEPORT by default: a second server on the same port then starts without
    // error and the kernel splits the clients between the two. Refuse the port instead, as
    // Triton does unless --reuse-grpc-port.
    builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
    // gRPC's default of 4 MiB holds fewer than 7 images of 224x224 FP32.
    builder.SetMaxReceiveMessageSize(max_message);
    builder.SetMaxSendMessageSize(max_message);
    server->grpc_ = builder.BuildAndStart();
    if (!server->grpc_ || server->grpc_port_ <= 0) {
      return Status(StatusCode::kUnavailable,
                    "cannot listen on " + options.host + ":" + std::to_string(options.grpc_port) +
                        " (gRPC); is another server using the port? choose another with "
                        "--grpc-port");
    }
  }
  HttpOptions http;
  http.host = options.host;
  http.max_body_bytes = options.max_message_bytes;
  http.threads = options.http_threads;
  if (options.http_port >= 0) {
    http.port = options.http_port;
    ASSIGN_OR_RETURN(server->http_,
                     HttpServer::Start(http, server->repository_.get(), &server->ready_,
                                       server->regions_.get(), false));
  }
  if (options.metrics_port >= 0) {
    http.port = options.metrics_port;
    http.threads = 2;
    ASSIGN_OR_RETURN(server->metrics_,
                     HttpServer::Start(http, server->repository_.get(), &server->ready_,
                                       server->regions_.get(), true));
  }
  server->ready_ = true;
  return server;
}

Server::~Server() { Shutdown(); }

void Server::Shutdown() {
  ready_ = false;
  if (grpc_) grpc_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  if (http_) http_->Stop();
  if (metrics_) metrics_->Stop();
}

}  // namespace parnet::serve
