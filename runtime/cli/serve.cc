// parnet serve: the model repository on the Open Inference Protocol until SIGINT or SIGTERM.
#include <malloc.h>

#include <csignal>
#include <cstdlib>
#include <cstring>
#include <iostream>

#include "runtime/cli/commands.h"
#include "runtime/serve/host_policy.h"
#include "runtime/serve/server.h"

namespace parnet::cli {
namespace {

// glibc's malloc gives the free top of a heap back to the kernel once it exceeds M_TRIM_THRESHOLD
// and serves blocks over M_MMAP_THRESHOLD with mmap of their own (both adapt to the blocks
// freed, but slowly). A server whose requests are 588 KiB each (one 224x224 FP32 image) then
// faults in fresh zeroed pages for about half of them. On the floor model at c=1 that cost
// 0.3-0.4 ms of a 1.0-1.4 ms p50 in new servers; after thousands of requests the difference was
// within noise (docs/serving.md). The server keeps what it freed instead, as Triton does with the
// tcmalloc or jemalloc its documentation recommends preloading. Left alone when the user tunes
// glibc's malloc (GLIBC_TUNABLES) or asks for its defaults.
void KeepFreedMemory(bool release_freed_memory) {
  const char* tunables = std::getenv("GLIBC_TUNABLES");
  if (release_freed_memory || (tunables && std::strstr(tunables, "glibc.malloc."))) return;
  constexpr int kMmapThreshold = 32 << 20;  // glibc's largest: bigger blocks still get mmap
  constexpr int kTrimThreshold = 1 << 30;
  if (mallopt(M_MMAP_THRESHOLD, kMmapThreshold) != 1 ||
      mallopt(M_TRIM_THRESHOLD, kTrimThreshold) != 1) {
    std::cerr << "parnet serve: warning: malloc kept its defaults (mallopt refused)\n";
  }
}

}  // namespace

int RunServe(const ServeCommandOptions& options) {
  // Block the stop signals in every thread the server starts; this thread waits for them.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);

  KeepFreedMemory(options.release_freed_memory);

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
