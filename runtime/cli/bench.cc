// `parnet bench`: latency percentiles, throughput and achieved GFLOP/s per batch size, with the
// machine and library facts a reader needs to compare numbers.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "runtime/cli/commands.h"
#include "runtime/cli/plan_commands.h"
#include "runtime/core/cpu_affinity.h"
#include "runtime/transport/mpi_transport.h"
#include "runtime/exec/engine.h"
#include "runtime/graph/stats.h"

namespace parnet::cli {

double Percentile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  const double pos = q * static_cast<double>(v.size() - 1);
  const size_t lo = static_cast<size_t>(pos);
  const size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (pos - static_cast<double>(lo));
}

std::string CpuModel() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  }
  return "unknown";
}

namespace {

struct Case {
  int batch = 0;
  std::vector<double> ms;  // one latency per timed run
  double p50 = 0, p90 = 0, p99 = 0, images_per_s = 0, gflops = 0;
};



std::string Affinity() {
  const std::vector<int> cores = AllowedCores();
  return cores.empty() ? "unknown" : CpuListToString(cores);
}

Shape InputShape(const Engine& engine, int batch, int size) {
  Shape shape = engine.input_type(engine.input_names()[0]).shape;
  shape[0] = batch;
  for (size_t d = 2; d < shape.size(); ++d) {
    if (shape[d] < 0) shape[d] = size > 0 ? size : 224;
  }
  return shape;
}

StatusOr<Case> Measure(Engine& engine, const BenchOptions& options, int batch) {
  const std::string input = engine.input_names()[0];
  Tensor x(DType::kFloat32, InputShape(engine, batch, options.size));
  std::mt19937 rng(0);
  std::normal_distribution<float> normal;
  for (int64_t i = 0; i < x.num_elements(); ++i) x.data<float>()[i] = normal(rng);
  RETURN_IF_ERROR(engine.CheckInputShape(input, x.dtype(), x.shape()));
  ASSIGN_OR_RETURN(Graph specialized, engine.SpecializedFor({{input, x.shape()}}));
  const double flops = static_cast<double>(ComputeStats(specialized).flops());
  Case c;
  c.batch = batch;
  for (int i = 0; i < options.warmup; ++i) RETURN_IF_ERROR(engine.Run({{input, x}}).status());
  const auto start = std::chrono::steady_clock::now();
  auto elapsed = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  while (static_cast<int>(c.ms.size()) < options.min_iters || elapsed() < options.seconds) {
    const auto t0 = std::chrono::steady_clock::now();
    RETURN_IF_ERROR(engine.Run({{input, x}}).status());
    c.ms.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    if (options.idle_us > 0) std::this_thread::sleep_for(std::chrono::microseconds(options.idle_us));
  }
  c.p50 = Percentile(c.ms, 0.5);
  c.p90 = Percentile(c.ms, 0.9);
  c.p99 = Percentile(c.ms, 0.99);
  c.images_per_s = batch * 1000.0 / c.p50;
  c.gflops = flops / (c.p50 * 1e6);
  return c;
}

Status WriteReports(const BenchOptions& options, const std::vector<Case>& cases,
                    const nlohmann::json& machine) {
  if (!options.csv.empty()) {
    std::ofstream csv(options.csv);
    csv << "batch,p50_ms,p90_ms,p99_ms,images_per_s,gflops,runs\n";
    for (const Case& c : cases) {
      csv << c.batch << ',' << c.p50 << ',' << c.p90 << ',' << c.p99 << ',' << c.images_per_s << ','
          << c.gflops << ',' << c.ms.size() << '\n';
    }
    if (!csv) return Internal("cannot write '" + options.csv + "'");
  }
  if (!options.json.empty()) {
    nlohmann::json j = {
        {"machine", machine}, {"idle_us", options.idle_us}, {"cases", nlohmann::json::array()}};
    for (const Case& c : cases) {
      j["cases"].push_back({{"batch", c.batch},
                            {"p50_ms", c.p50},
                            {"p90_ms", c.p90},
                            {"p99_ms", c.p99},
                            {"images_per_s", c.images_per_s},
                            {"gflops", c.gflops},
                            {"latencies_ms", c.ms}});
    }
    std::ofstream out(options.json);
    out << j.dump(2) << '\n';
    if (!out) return Internal("cannot write '" + options.json + "'");
  }
  return Status::Ok();
}

Status Bench(const BenchOptions& options) {
  EngineOptions engine_options;
  engine_options.backend = options.backend;
  engine_options.threads = options.threads;
  ASSIGN_OR_RETURN(auto engine, Engine::Load(options.model, engine_options));
  // The Engine applies --threads when it runs; until then OpenMP reports its default.
  const int threads = options.threads > 0 ? options.threads : omp_get_max_threads();
  const nlohmann::json machine = {{"cpu", CpuModel()},
                                  {"backend", engine->backend_description()},
                                  {"threads", threads},
                                  {"affinity", Affinity()},
                                  {"model", options.model}};
  std::printf("model:    %s\ncpu:      %s\nbackend:  %s\nthreads:  %d (OpenMP), affinity cpus %s\n",
              options.model.c_str(), CpuModel().c_str(), engine->backend_description().c_str(),
              threads, Affinity().c_str());
  if (options.idle_us > 0) std::printf("idle:     %d us after each timed run\n", options.idle_us);
  std::printf("\n%6s %10s %10s %10s %12s %10s %6s\n", "batch", "p50 ms", "p90 ms", "p99 ms",
              "images/s", "GFLOP/s", "runs");
  std::vector<Case> cases;
  for (int batch : options.batches) {
    if (batch < 1)
      return InvalidArgument("--batch values must be >= 1, got " + std::to_string(batch));
    ASSIGN_OR_RETURN(Case c, Measure(*engine, options, batch));
    std::printf("%6d %10.3f %10.3f %10.3f %12.1f %10.1f %6zu\n", c.batch, c.p50, c.p90, c.p99,
                c.images_per_s, c.gflops, c.ms.size());
    cases.push_back(std::move(c));
  }
  std::printf("(GFLOP/s: 2 x multiply-adds of Conv/Gemm/MatMul of the graph as run, over p50)\n");
  return WriteReports(options, cases, machine);
}

}  // namespace

int RunBench(const BenchOptions& options) {
  if (!options.plan.empty() || transport::LaunchedByMpirun()) {
    if (options.idle_us > 0) {
      std::cerr << "parnet bench: --idle-us applies to one engine in this process; drop it "
                   "when measuring a plan\n";
      return 1;
    }
    return BenchOnPlan(options);
  }
  const Status status = Bench(options);
  if (!status.ok()) {
    std::cerr << "parnet bench: " << status.ToString() << "\n";
    return 1;
  }
  return 0;
}

}  // namespace parnet::cli
