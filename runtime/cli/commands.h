// Subcommands of the `parnet` program. Each returns the process exit code and prints its own
// errors; main.cc only parses the command line.
#pragma once

#include <string>
#include <vector>

namespace parnet::cli {

struct InspectOptions {
  std::string model;
  std::vector<std::string> shapes;  // "name=1,3,224,224"
  bool summary_only = false;
  bool blocks = false;  // group nodes by the module path in their names (torch exports)
};
int RunInspect(const InspectOptions& options);

}  // namespace parnet::cli

namespace parnet::cli {

struct RunOptions {
  std::string model;
  std::vector<std::string> inputs;  // one .npy batch, or one or more PNG/JPEG images
  std::string output;               // .npy for the logits (optional)
  std::string labels;               // one class name per line (optional)
  std::string backend = "cpu";
  int threads = 0;
  int top = 5;
  int image_size = 0;  // 0: the model's static H, else 224
  std::string plan;        // run across the plan's devices (threads in-process, or MPI ranks)
  double timeout_s = 60;   // with a plan: the longest wait for another device
};
int RunRun(const RunOptions& options);

}  // namespace parnet::cli

namespace parnet::cli {

struct EvalOptions {
  std::string model;
  std::string dataset = "fashion-mnist";
  std::string data_dir = "/usr/share/datasets/fashion-mnist";
  std::string labels;       // default: <model dir>/../labels.txt when it exists
  std::string predictions;  // write the logits of every image to this .npy
  std::string backend = "cpu";
  int threads = 0;
  int batch = 256;
  int limit = 0;  // 0: the whole test set
  int show = 0;   // print the predictions for the first N images
  std::string plan;  // run on this plan's devices (in-process core sets)
};
int RunEval(const EvalOptions& options);

}  // namespace parnet::cli

namespace parnet::cli {

struct BenchOptions {
  std::string model;
  std::vector<int> batches = {1, 8};
  int size = 0;  // H = W for dynamic spatial dims; 0: the model's own, else 224
  std::string backend = "cpu";
  int threads = 0;
  int warmup = 3;
  double seconds = 5.0;  // per case, after warm-up
  int min_iters = 10;
  // Idle time after each timed run, as a served model at concurrency 1 idles while the reply
  // travels and the next request arrives; 0: back to back.
  int idle_us = 0;
  std::string csv;
  std::string json;
  std::string plan;  // measure the plan's devices against its prediction
  std::string svg;   // with a plan: where to write the measured Gantt chart (none if empty)
  double timeout_s = 60;
};
int RunBench(const BenchOptions& options);

// Shared by bench, profile and bench --plan: the q-quantile (0..1) of `v`, interpolated between
// ranks (REQUIRES: `v` not empty), and the CPU's model name from /proc/cpuinfo.
double Percentile(std::vector<double> v, double q);
std::string CpuModel();

}  // namespace parnet::cli

namespace parnet::cli {

struct ServeCommandOptions {
  std::string model_repository;
  std::string host = "0.0.0.0";
  int grpc_port = 8001;  // 0: any free port; -1: off
  int http_port = 8000;
  int metrics_port = 8002;
  int max_message_mb = 64;
  int http_threads = 64;
  bool allow_client_shm = false;
  int threads = 0;
  int max_queue = 1024;
  std::string backend = "cpu";
  std::vector<std::string> host_policies;  // "NAME,cpu-cores=LIST", as Triton's --host-policy
};
int RunServe(const ServeCommandOptions& options);

}  // namespace parnet::cli
