// parnet serve: the model repository on the Open Inference Protocol until SIGINT or SIGTERM.
#include <csignal>
#include <iostream>

#include "runtime/cli/commands.h"
#include "runtime/serve/host_policy.h"
#include "runtime/serve/server.h"

namespace parnet::cli {

int RunServe(const ServeCommandOptions& options) {
  // Block the stop signals in every thread the server starts; this thread waits for them.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);

  serve::ServerOptions server_options;
  server_options.model_repository = options.model_repository;
  server_options.host = options.host;
  server_options.grpc_port = options.grpc_port;
  server_options.http_port = options.http_port;
  server_options.metrics_port = options.metrics_port;
  server_options.max_message_bytes = static_cast<size_t>(options.max_message_mb) << 20;
  server_options.http_threads = options.http_threads;
  server_options.allow_client_shm = options.allow_client_shm;
  server_options.models.backend = options.backend;
  server_options.models.threads = options.threads;
  server_options.models.default_max_queue = static_cast<uint32_t>(options.max_queue);
  for (const auto& policy : options.host_policies) {
    if (Status s = serve::AddHostPolicy(policy, &server_options.models.host_policies); !s.ok()) {
      std::cerr << "parnet serve: " << s.message() << "\n";
      return 2;
    }
  }
  auto server = serve::Server::Start(server_options);
  if (!server.ok()) {
    std::cerr << "parnet serve: " << server.status().message() << "\n";
    return 1;
  }
  std::string models;
  for (const auto* m : (*server)->repository().All()) {
    models += (models.empty() ? "" : ", ") + m->name() + ":" + std::to_string(m->version());
  }
  // Tests and scripts read the ports from this line.
  std::cout << "parnet serve: ready: grpc " << (*server)->grpc_port() << " http "
            << (*server)->http_port() << " metrics " << (*server)->metrics_port()
            << " models " << models << std::endl;
  int signal = 0;
  sigwait(&stop, &signal);
  std::cout << "parnet serve: stopping (signal " << signal << ")" << std::endl;
  (*server)->Shutdown();
  return 0;
}

}  // namespace parnet::cli
