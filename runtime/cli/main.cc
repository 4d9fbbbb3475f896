// parnet: one program, one subcommand per job.
#include <CLI/CLI.hpp>
#include <iostream>

#include "runtime/cli/commands.h"
#include "runtime/cli/plan_commands.h"
#include "runtime/core/logging.h"

int main(int argc, char** argv) {
  CLI::App app{"parnet: serve ParNet-style networks across devices"};
  app.require_subcommand(1);
  std::string log_level = "warn";
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error, critical or off")
      ->capture_default_str();

  parnet::cli::InspectOptions inspect;
  CLI::App* inspect_cmd = app.add_subcommand(
      "inspect", "Print a model after import: ops, shapes, parameters and FLOPs");
  inspect_cmd->add_option("--model,-m", inspect.model, "ONNX model file")->required();
  inspect_cmd->add_option("--shape", inspect.shapes,
                          "Input shape as name=N,C,H,W (repeatable); dynamic N defaults to 1 and "
                          "dynamic H, W of an image input to 224");
  inspect_cmd->add_flag("--summary", inspect.summary_only, "Omit the per-node table");
  inspect_cmd->add_flag("--blocks", inspect.blocks,
                        "Group nodes into blocks by the module path in their names");

  parnet::cli::RunOptions run;
  CLI::App* run_cmd =
      app.add_subcommand("run", "Run a batch through a model and print the top classes");
  run_cmd->add_option("--model,-m", run.model, "ONNX model file")->required();
  run_cmd->add_option("--input,-i", run.inputs, "One .npy batch (FP32, NCHW) or PNG/JPEG images")
      ->required();
  run_cmd->add_option("--output,-o", run.output, "Write the logits to this .npy file");
  run_cmd->add_option("--labels", run.labels, "Class names, one per line");
  run_cmd->add_option("--backend", run.backend, "cpu (oneDNN) or reference")->capture_default_str();
  run_cmd->add_option("--threads", run.threads, "Threads (0: OpenMP default)")
      ->capture_default_str();
  run_cmd->add_option("--top", run.top, "Classes printed per item")->capture_default_str();
  run_cmd->add_option("--image-size", run.image_size,
                      "Crop size for images (default: the model's H, else 224)");
  run_cmd->add_option("--plan", run.plan,
                      "Run across the devices of this plan (parnet partition); under mpirun "
                      "without it, parnet partitions for the job");
  run_cmd->add_option("--timeout", run.timeout_s, "With a plan: seconds to wait for a device")
      ->capture_default_str();

  parnet::cli::EvalOptions eval;
  CLI::App* eval_cmd =
      app.add_subcommand("eval", "Accuracy, confusion matrix and speed on a test set");
  eval_cmd->add_option("--model,-m", eval.model, "ONNX model file")->required();
  eval_cmd->add_option("--dataset", eval.dataset, "fashion-mnist")->capture_default_str();
  eval_cmd->add_option("--data-dir", eval.data_dir, "Folder with the IDX files")
      ->capture_default_str();
  eval_cmd->add_option("--labels", eval.labels, "Class names (default: <model>/../../labels.txt)");
  eval_cmd->add_option("--predictions", eval.predictions,
                       "Write every image's logits to this .npy");
  eval_cmd->add_option("--backend", eval.backend, "cpu (oneDNN) or reference")
      ->capture_default_str();
  eval_cmd->add_option("--threads", eval.threads, "Threads (0: OpenMP default)")
      ->capture_default_str();
  eval_cmd->add_option("--batch", eval.batch, "Images per run")->capture_default_str();
  eval_cmd->add_option("--limit", eval.limit, "Evaluate only the first N images (0: all)");
  eval_cmd->add_option("--show", eval.show, "Print the predicted labels of the first N images");
  eval_cmd->add_option("--plan", eval.plan, "Run on this plan's devices (parnet partition)");

  parnet::cli::BenchOptions bench;
  CLI::App* bench_cmd = app.add_subcommand("bench", "Latency percentiles, throughput and GFLOP/s");
  bench_cmd->add_option("--model,-m", bench.model, "ONNX model file")->required();
  bench_cmd->add_option("--batch", bench.batches, "Batch sizes, e.g. 1,8")
      ->delimiter(',')
      ->capture_default_str();
  bench_cmd->add_option("--size", bench.size, "H = W for dynamic spatial dims (default 224)");
  bench_cmd->add_option("--backend", bench.backend, "cpu (oneDNN) or reference")
      ->capture_default_str();
  bench_cmd->add_option("--threads", bench.threads, "Threads (0: OpenMP default)")
      ->capture_default_str();
  bench_cmd->add_option("--warmup", bench.warmup, "Untimed runs per case")->capture_default_str();
  bench_cmd->add_option("--seconds", bench.seconds, "Timed seconds per case")
      ->capture_default_str();
  bench_cmd->add_option("--min-iters", bench.min_iters, "Timed runs at least")
      ->capture_default_str();
  bench_cmd->add_option("--idle-us", bench.idle_us,
                        "Sleep this long after each timed run (the gaps a served model sees at "
                        "concurrency 1)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  bench_cmd->add_option("--csv", bench.csv, "Write the results as CSV");
  bench_cmd->add_option("--json", bench.json, "Write the results (with every latency) as JSON");
  bench_cmd->add_option("--plan", bench.plan,
                        "Measure this plan's devices against its prediction (or run under "
                        "mpirun without it)");
  bench_cmd->add_option("--svg", bench.svg,
                        "With a plan: write the measured Gantt chart here (and the predicted one "
                        "beside it)");
  bench_cmd->add_option("--timeout", bench.timeout_s, "With a plan: seconds to wait for a device")
      ->capture_default_str();

  parnet::cli::ServeCommandOptions serve;
  CLI::App* serve_cmd = app.add_subcommand(
      "serve", "Serve a model repository over the Open Inference Protocol (gRPC and HTTP)");
  serve_cmd->add_option("--model-repository", serve.model_repository,
                        "Folder of <model>/config.pbtxt and <model>/<version>/model.onnx")
      ->required();
  serve_cmd->add_option("--host", serve.host, "Address to listen on")->capture_default_str();
  serve_cmd->add_option("--grpc-port", serve.grpc_port, "gRPC port (0: any free, -1: off)")
      ->capture_default_str();
  serve_cmd->add_option("--http-port", serve.http_port, "HTTP port (0: any free, -1: off)")
      ->capture_default_str();
  serve_cmd->add_option("--metrics-port", serve.metrics_port,
                        "Prometheus /metrics port (0: any free, -1: off)")
      ->capture_default_str();
  serve_cmd->add_option("--max-message-mb", serve.max_message_mb,
                        "Largest gRPC message / HTTP body in MiB")
      ->capture_default_str();
  serve_cmd->add_option("--http-threads", serve.http_threads, "HTTP connections served at once")
      ->capture_default_str();
  serve_cmd->add_option("--threads", serve.threads,
                        "Threads per model instance (0: the cores split among instances)")
      ->capture_default_str();
  serve_cmd->add_option("--max-queue", serve.max_queue,
                        "Queued requests per model when its config sets no max_queue_size")
      ->capture_default_str();
  serve_cmd->add_option("--backend", serve.backend, "cpu (oneDNN) or reference")
      ->capture_default_str();
  serve_cmd->add_option("--host-policy", serve.host_policies,
                        "NAME,cpu-cores=LIST (e.g. pin,cpu-cores=1): instance groups with "
                        "host_policy: \"NAME\" run on those cores only; repeatable");
  serve_cmd->add_flag("--allow-client-shm", serve.allow_client_shm,
                      "Let clients register system shared memory regions (Triton's shared "
                      "memory extension); only for trusted local clients");

  parnet::cli::ProfileOptions profile;
  CLI::App* profile_cmd = app.add_subcommand(
      "profile", "Measure every stage of a model on this CPU (for partition --profile)");
  profile_cmd->add_option("--model,-m", profile.model, "ONNX model file")->required();
  profile_cmd->add_option("--batch", profile.batches, "Batch sizes, e.g. 1,8")
      ->delimiter(',')
      ->capture_default_str();
  profile_cmd->add_option("--threads", profile.threads, "Thread counts, e.g. 1,2")
      ->delimiter(',')
      ->capture_default_str();
  profile_cmd->add_option("--size", profile.size, "H = W for dynamic spatial dims (default 224)");
  profile_cmd->add_option("--seconds", profile.seconds, "Timed seconds per stage and case")
      ->capture_default_str();
  profile_cmd->add_option("--out,-o", profile.out, "Profile file (text format)")
      ->capture_default_str();

  parnet::cli::PartitionOptions partition;
  CLI::App* partition_cmd = app.add_subcommand(
      "partition", "Place a model's stages on a cluster's devices and write the Plan");
  partition_cmd->add_option("--model,-m", partition.model, "ONNX model file")->required();
  partition_cmd->add_option("--cluster,-c", partition.cluster, "Cluster description (.pbtxt)")
      ->required();
  partition_cmd->add_option("--profile", partition.profile,
                            "Measured stage times (parnet profile); default: roofline");
  partition_cmd->add_option("--batch", partition.batch, "Batch size")->capture_default_str();
  partition_cmd->add_option("--size", partition.size, "H = W for dynamic spatial dims (224)");
  partition_cmd->add_option("--out,-o", partition.out, "Write the Plan here (text format)");
  partition_cmd->add_flag("--explain", partition.explain,
                          "Compare with the alternatives and draw the schedule (SVG)");
  partition_cmd->add_option("--svg", partition.svg, "Gantt chart path (default <out>.svg)");
  partition_cmd->add_flag("--no-merge", partition.no_merge,
                          "Keep the cluster's core sets even when all cores as one device would "
                          "be faster");

  CLI11_PARSE(app, argc, argv);
  if (auto status = parnet::SetLogLevel(log_level); !status.ok()) {
    std::cerr << "parnet: " << status.message() << "\n";
    return 2;
  }
  if (inspect_cmd->parsed()) return parnet::cli::RunInspect(inspect);
  if (run_cmd->parsed()) return parnet::cli::RunRun(run);
  if (eval_cmd->parsed()) return parnet::cli::RunEval(eval);
  if (bench_cmd->parsed()) return parnet::cli::RunBench(bench);
  if (serve_cmd->parsed()) return parnet::cli::RunServe(serve);
  if (profile_cmd->parsed()) return parnet::cli::RunProfile(profile);
  if (partition_cmd->parsed()) return parnet::cli::RunPartition(partition);
  return 2;
}
