// `parnet run` and `parnet bench` on a Plan: in one process (a thread per device, pinned to its
// cores) or under mpirun (rank i runs device i). Under mpirun without --plan, every rank measures
// its own cores, rank 0 partitions for the job and sends the plan to the others.
#include <google/protobuf/text_format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <random>

#include "partitioner/cluster.h"
#include "partitioner/cost.h"
#include "partitioner/plan.h"
#include "partitioner/search.h"
#include "partitioner/stages.h"
#include "runtime/cli/commands.h"
#include "runtime/cli/plan_commands.h"
#include "runtime/exec/plan_runner.h"
#include "runtime/graph/onnx_import.h"
#include "runtime/graph/specialize.h"
#include "runtime/io/npy.h"
#include "runtime/transport/mpi_transport.h"

namespace parnet::cli {
namespace {

// Shared memory between ranks of one host, and a conservative network between hosts: the job
// does not say how fast its links are, so these are stated assumptions (docs/distributed.md).
constexpr double kSameHostGbits = 100, kSameHostUs = 5;
constexpr double kOtherHostGbits = 10, kOtherHostUs = 50;

// Rank 0 partitions `model` for the job; every rank gets the plan's text.
StatusOr<Plan> PlanForJob(const std::string& model, transport::Transport& mpi, int batch,
                          int size) {
  ASSIGN_OR_RETURN(auto layout, transport::GatherJobLayout());
  const int threads = static_cast<int>(layout[mpi.self()].cores.size());
  ASSIGN_OR_RETURN(auto peak, MeasurePeak(threads));
  ASSIGN_OR_RETURN(auto peaks, mpi.GatherAtZero({peak.first, peak.second}));
  std::string text;
  if (mpi.self() == 0) {
    Cluster cluster;
    cluster.set_name("mpirun job");
    for (size_t r = 0; r < layout.size(); ++r) {
      Device* d = cluster.add_devices();
      d->set_name("rank" + std::to_string(r));
      d->set_host(layout[r].host);
      d->set_kind(Device::CPU);
      for (int c : layout[r].cores) d->add_cores(c);
      d->set_gflops(peaks[r][0]);
      d->set_memory_gbps(peaks[r][1]);
      for (size_t o = 0; o < r; ++o) {
        Link* link = cluster.add_links();
        link->set_a("rank" + std::to_string(o));
        link->set_b(d->name());
        const bool same = layout[o].host == layout[r].host;
        link->set_bandwidth_gbit_s(same ? kSameHostGbits : kOtherHostGbits);
        link->set_latency_us(same ? kSameHostUs : kOtherHostUs);
      }
    }
    ASSIGN_OR_RETURN(Graph graph, LoadOnnxModel(model));
    ASSIGN_OR_RETURN(std::string sha, partition::Sha256OfFile(model));
    partition::PlanTarget target{model, sha, cluster, ModelInputShapes(graph, batch, size), batch,
                                 "roofline (peaks measured by each rank)"};
    SpecializeOptions spec;
    spec.input_shapes = target.input_shapes;
    ASSIGN_OR_RETURN(Graph specialized, Specialize(graph, spec));
    ASSIGN_OR_RETURN(auto stages, partition::DiscoverStages(specialized));
    ASSIGN_OR_RETURN(auto costs, partition::BuildCostModel(stages, cluster, nullptr, batch));
    const auto best = partition::FindBestPlacement(stages, costs);
    const Plan plan = partition::MakePlan(target, specialized, stages, best.schedule);
    google::protobuf::TextFormat::PrintToString(plan, &text);
    std::printf("plan for this job (%zu ranks), predicted %.3f ms:\n", layout.size(),
                plan.predicted_latency_ms());
    for (const DeviceAssignment& a : plan.devices()) {
      std::printf("  %s:", a.device().c_str());
      for (const auto& run : a.runs()) std::printf(" %s", plan.stages(run.stage()).name().c_str());
      std::printf("%s\n", a.runs().empty() ? " (idle)" : "");
    }
  }
  ASSIGN_OR_RETURN(text, transport::BroadcastText(text));
  Plan plan;
  if (!google::protobuf::TextFormat::ParseFromString(text, &plan)) {
    return Internal("the plan rank 0 sent does not parse");
  }
  return plan;
}

}  // namespace

StatusOr<std::unique_ptr<PlanRunner>> MakePlanRunner(const std::string& model,
                                                     const std::string& path, int batch, int size,
                                                     double timeout_s) {
  std::unique_ptr<transport::Transport> transport;
  if (transport::LaunchedByMpirun()) {
    ASSIGN_OR_RETURN(transport, transport::MakeMpiTransport());
  }
  StatusOr<Plan> plan = InvalidArgument(
      "no --plan: give one (parnet partition --out), or start under mpirun");
  if (!path.empty()) {
    plan = partition::LoadPlan(path);
  } else if (transport) {
    plan = PlanForJob(model, *transport, batch, size);
  }
  if (!plan.ok()) {
    // Under mpirun the other ranks would wait for this one in a collective: end the job.
    if (transport) transport->Abort(plan.status().ToString());
    return plan.status();
  }
  if (!transport) transport = transport::MakeInProcessTransport(plan->cluster().devices_size());
  PlanRunnerOptions options;
  options.timeout_s = timeout_s;
  return PlanRunner::Create(model, *plan, std::move(transport), options);
}

namespace {

int Fail(const char* command, const Status& status) {
  std::cerr << "parnet " << command << ": " << status.ToString() << "\n";
  return 1;
}

}  // namespace

int RunOnPlan(const RunOptions& options) {
  if (options.inputs.size() != 1) {
    return Fail("run", InvalidArgument("with a plan, give one .npy batch as --input"));
  }
  auto batch = io::ReadNpy(options.inputs[0]);
  if (!batch.ok()) return Fail("run", batch.status());
  const int n = batch->rank() == 4 ? static_cast<int>(batch->dim(0)) : 1;
  const int size = batch->rank() == 4 ? static_cast<int>(batch->dim(2)) : 0;
  auto runner = MakePlanRunner(options.model, options.plan, n, size, options.timeout_s);
  if (!runner.ok()) return Fail("run", runner.status());
  if (!(*runner)->is_leader()) {
    const Status followed = (*runner)->Follow();
    return followed.ok() ? 0 : Fail("run", followed);
  }
  const std::string input = (*runner)->input_shapes().begin()->first;
  std::vector<StageTrace> timings;
  auto outputs = (*runner)->Run({{input, *batch}}, &timings);
  if (!outputs.ok() && (*runner)->distributed()) (*runner)->Abort(outputs.status().ToString());
  if (!outputs.ok()) return Fail("run", outputs.status());
  if (Status stopped = (*runner)->Stop(); !stopped.ok()) return Fail("run", stopped);
  const Tensor& logits = (*outputs)[0];
  std::printf("ran %s on %d device(s) of the plan\n", logits.TypeString().c_str(),
              (*runner)->plan().cluster().devices_size());
  if (!options.output.empty()) {
    if (Status s = io::WriteNpy(options.output, logits); !s.ok()) return Fail("run", s);
    std::printf("wrote %s %s\n", logits.TypeString().c_str(), options.output.c_str());
  }
  return 0;
}

namespace {

// A stage the runner did not time on its own (a one-device plan runs as one Engine) has none.
double Median(const std::vector<double>& v) { return v.empty() ? 0 : Percentile(v, 0.5); }

// The plan with its predicted times replaced by the medians measured over `requests`.
Plan MeasuredPlan(const Plan& plan, const std::vector<std::vector<StageTrace>>& all,
                  const std::vector<int64_t>& requests, double latency_ms) {
  Plan measured = plan;
  std::map<std::pair<int, int>, std::vector<double>> starts, finishes;  // (stage, device)
  for (int64_t id : requests) {
    if (id >= static_cast<int64_t>(all.size())) continue;
    for (const StageTrace& t : all[id]) {
      starts[{t.stage, t.device}].push_back(t.start_ms);
      finishes[{t.stage, t.device}].push_back(t.finish_ms);
    }
  }
  std::map<std::pair<int, std::string>, double> finish_on;  // (stage, device name)
  for (int d = 0; d < measured.devices_size(); ++d) {
    for (auto& run : *measured.mutable_devices(d)->mutable_runs()) {
      run.set_start_ms(Median(starts[{run.stage(), d}]));
      run.set_finish_ms(Median(finishes[{run.stage(), d}]));
      run.set_cost_ms(run.finish_ms() - run.start_ms());
      finish_on[{run.stage(), measured.devices(d).device()}] = run.finish_ms();
    }
  }
  // A transfer is drawn from its producer's finish to the first start of a stage that reads it
  // on the receiving device (the reply: to the measured latency).
  for (auto& t : *measured.mutable_transfers()) {
    const double begin = t.stage() < 0 ? 0 : finish_on[{t.stage(), t.from_device()}];
    double end = latency_ms;
    if (!t.reply()) {
      const int to = partition::DeviceIndex(measured.cluster(), t.to_device());
      for (const auto& run : measured.devices(to).runs()) {
        const Stage& stage = measured.stages(run.stage());
        for (const std::string& v : t.values()) {
          if (std::count(stage.inputs().begin(), stage.inputs().end(), v)) {
            end = std::min(end, run.start_ms());
          }
        }
      }
    }
    t.set_start_ms(begin);
    t.set_finish_ms(std::max(begin, end));
  }
  measured.set_predicted_latency_ms(latency_ms);
  return measured;
}

// How long stages waited for data beyond their producer's finish and their own device being
// free: the time transfers added.
double TransferDelayMs(const Plan& measured) {
  double total = 0;
  for (const Transfer& t : measured.transfers()) {
    if (t.reply()) {
      total += std::max(0.0, t.finish_ms() - t.start_ms());
      continue;
    }
    const int to = partition::DeviceIndex(measured.cluster(), t.to_device());
    double device_free = 0;
    for (const auto& run : measured.devices(to).runs()) {
      if (run.start_ms() >= t.finish_ms() - 1e-9) {
        total += std::max(0.0, t.finish_ms() - std::max(t.start_ms(), device_free));
        break;
      }
      device_free = run.finish_ms();
    }
  }
  return total;
}

Status BenchLeader(const BenchOptions& options, PlanRunner& runner) {
  const Plan& plan = runner.plan();
  const auto& [input, dims] = *runner.input_shapes().begin();
  std::printf("plan: %d devices (%s), made for batch %d, predicted %.3f ms (%s)\n",
              plan.cluster().devices_size(), plan.cluster().name().c_str(), plan.batch(),
              plan.predicted_latency_ms(), plan.cost_source().c_str());
  std::printf("\n%6s %10s %10s %10s %12s %14s %10s\n", "batch", "p50 ms", "p90 ms", "p99 ms",
              "images/s", "predicted ms", "measured/");
  std::vector<int64_t> plan_batch_requests;
  double plan_batch_latency = 0;
  std::mt19937 rng(0);
  std::normal_distribution<float> normal;
  for (int batch : options.batches) {
    Shape shape = dims;
    shape[0] = batch;
    if (options.size > 0 && shape.size() == 4) shape[2] = shape[3] = options.size;
    Tensor x(DType::kFloat32, shape);
    for (int64_t i = 0; i < x.num_elements(); ++i) x.data<float>()[i] = normal(rng);
    for (int i = 0; i < options.warmup; ++i) RETURN_IF_ERROR(runner.Run({{input, x}}).status());
    std::vector<double> ms;
    std::vector<int64_t> ids;
    const auto begin = std::chrono::steady_clock::now();
    auto elapsed = [&] {
      return std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
    };
    while (static_cast<int>(ms.size()) < options.min_iters || elapsed() < options.seconds) {
      const auto t0 = std::chrono::steady_clock::now();
      ASSIGN_OR_RETURN(int64_t id, runner.Submit({{input, x}}));
      RETURN_IF_ERROR(runner.Collect(id).status());
      ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
                       .count());
      ids.push_back(id);
    }
    // Throughput with consecutive requests in flight (pipelined), as many as were timed above.
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<int64_t> in_flight;
    for (size_t i = 0; i < ms.size(); ++i) {
      ASSIGN_OR_RETURN(int64_t id, runner.Submit({{input, x}}));
      in_flight.push_back(id);
      if (in_flight.size() >= 3) {
        RETURN_IF_ERROR(runner.Collect(in_flight.front()).status());
        in_flight.erase(in_flight.begin());
      }
    }
    for (int64_t id : in_flight) RETURN_IF_ERROR(runner.Collect(id).status());
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double p50 = Median(ms);
    const bool predicted = batch == plan.batch() && (options.size <= 0 || shape == dims);
    std::printf("%6d %10.3f %10.3f %10.3f %12.1f", batch, p50, Percentile(ms, 0.9),
                Percentile(ms, 0.99), batch * ms.size() / seconds);
    if (predicted) {
      std::printf(" %14.3f %9.2fx\n", plan.predicted_latency_ms(),
                  p50 / plan.predicted_latency_ms());
      plan_batch_requests = ids;
      plan_batch_latency = p50;
    } else {
      std::printf(" %14s %10s\n", "-", "-");
    }
  }
  std::printf("(images/s: 3 requests in flight, so consecutive batches pipeline)\n");
  RETURN_IF_ERROR(runner.Stop());
  ASSIGN_OR_RETURN(auto all, runner.GatherTimings());
  if (plan_batch_requests.empty()) return Status::Ok();

  const Plan measured = MeasuredPlan(plan, all, plan_batch_requests, plan_batch_latency);
  std::printf("\nper stage at batch %d (medians):\n%-34s %-8s %10s %10s %10s %10s\n", plan.batch(),
              "stage", "device", "pred ms", "meas ms", "pred end", "meas end");
  for (int d = 0; d < plan.devices_size(); ++d) {
    for (int i = 0; i < plan.devices(d).runs_size(); ++i) {
      const auto& p = plan.devices(d).runs(i);
      const auto& m = measured.devices(d).runs(i);
      std::printf("%-34s %-8s %10.3f %10.3f %10.3f %10.3f\n",
                  plan.stages(p.stage()).name().substr(0, 34).c_str(),
                  plan.devices(d).device().c_str(), p.cost_ms(), m.cost_ms(), p.finish_ms(),
                  m.finish_ms());
    }
  }
  if (plan.transfers_size() > 0) {
    std::printf("transfers (predicted / measured as drawn, ms):\n");
    for (int i = 0; i < plan.transfers_size(); ++i) {
      const Transfer& p = plan.transfers(i);
      const Transfer& m = measured.transfers(i);
      std::printf("  %-8s -> %-8s %8.3f MB  %8.3f-%8.3f / %8.3f-%8.3f\n", p.from_device().c_str(),
                  p.to_device().c_str(), p.mbytes(), p.start_ms(), p.finish_ms(), m.start_ms(),
                  m.finish_ms());
    }
  }
  const double delay = TransferDelayMs(measured);
  std::printf("latency: predicted %.3f ms, measured %.3f ms (%+.1f%%); transfers added %.3f ms "
              "(%.1f%% of it)\n",
              plan.predicted_latency_ms(), plan_batch_latency,
              100 * (plan_batch_latency / plan.predicted_latency_ms() - 1), delay,
              100 * delay / plan_batch_latency);
  if (options.svg.empty()) {
    std::printf("(--svg FILE writes the measured Gantt chart, and FILE.predicted.svg the plan's)\n");
    return Status::Ok();
  }
  const std::string stem = options.svg.substr(0, options.svg.rfind('.'));
  std::ofstream(options.svg) << partition::GanttSvg(measured, "measured schedule: " + options.model);
  std::ofstream(stem + ".predicted.svg")
      << partition::GanttSvg(plan, "predicted schedule: " + options.model);
  std::printf("wrote %s and %s.predicted.svg\n", options.svg.c_str(), stem.c_str());
  return Status::Ok();
}

}  // namespace

int BenchOnPlan(const BenchOptions& options) {
  auto runner = MakePlanRunner(options.model, options.plan, options.batches.front(), options.size,
                           options.timeout_s);
  if (!runner.ok()) return Fail("bench", runner.status());
  if (!(*runner)->is_leader()) {
    if (Status s = (*runner)->Follow(); !s.ok()) return Fail("bench", s);
    return (*runner)->GatherTimings().ok() ? 0 : 1;
  }
  const Status status = BenchLeader(options, **runner);
  // The followers wait in Follow() or GatherTimings(): under MPI a failed leader ends the job.
  if (!status.ok() && (*runner)->distributed()) (*runner)->Abort(status.ToString());
  return status.ok() ? 0 : Fail("bench", status);
}

}  // namespace parnet::cli
