// The Open Inference Protocol's HTTP/REST form, with Triton's binary tensor extension
// (Inference-Header-Content-Length), and the Prometheus /metrics endpoint. Each server owns its
// listening thread; Stop() or the destructor ends it.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "runtime/serve/model_repository.h"
#include "runtime/serve/shared_memory.h"

namespace httplib {
class Server;
}

namespace parnet::serve {

struct HttpOptions {
  std::string host = "0.0.0.0";
  int port = 8000;              // 0: any free port (port() tells which)
  size_t max_body_bytes = 64u << 20;
  int threads = 64;             // connections served at once (each keep-alive client holds one)
};

class HttpServer {
 public:
  // Serves the protocol (`metrics_only` false) or /metrics (true) for `repository`, which must
  // outlive the server, as must `regions` (the shared memory extension's). Returns once the
  // port is bound.
  static StatusOr<std::unique_ptr<HttpServer>> Start(const HttpOptions& options,
                                                     const ModelRepository* repository,
                                                     const std::atomic<bool>* ready,
                                                     SharedMemoryRegions* regions,
                                                     bool metrics_only);
  ~HttpServer();
  void Stop();
  int port() const { return port_; }

 private:
  HttpServer() = default;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;
};

}  // namespace parnet::serve
