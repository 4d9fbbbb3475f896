// The partitioner's subcommands: `parnet profile` and `parnet partition`.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "proto/profile.pb.h"
#include "runtime/core/status.h"
#include "runtime/exec/plan_runner.h"
#include "runtime/graph/graph.h"

namespace parnet::cli {

struct ProfileOptions {
  std::string model;
  std::vector<int> batches = {1, 8};
  std::vector<int> threads = {1};
  int size = 0;  // H = W for dynamic spatial dims; 0: 224
  double seconds = 0.3;  // timed seconds per stage and case, after warm-up
  std::string out = "profile.pbtxt";
};
int RunProfile(const ProfileOptions& options);

struct PartitionOptions {
  std::string model;
  std::string cluster;
  std::string profile;  // optional: measured stage times
  int batch = 1;
  int size = 0;
  std::string out;  // the Plan (text format)
  bool explain = false;
  std::string svg;  // Gantt chart path (default <out>.svg)
  bool no_merge = false;  // do not consider all cores as one device (CPU core sets of one host)
};
int RunPartition(const PartitionOptions& options);

// Runs the shipped ways of `parnet run` / `parnet bench` on a plan: the plan file, or under
// mpirun without one, a plan made for the job (plan_run.cc).
struct RunOptions;
struct BenchOptions;
int RunOnPlan(const RunOptions& options);
int BenchOnPlan(const BenchOptions& options);
// The runner for `model`: the plan file (in-process, or one rank per device under mpirun), or
// under mpirun without one, a plan made for the job (rank 0 partitions, the others receive it).
StatusOr<std::unique_ptr<PlanRunner>> MakePlanRunner(const std::string& model,
                                                     const std::string& plan, int batch, int size,
                                                     double timeout_s);
// GFLOP/s of a 3x3 convolution 128->128 at 56x56 and GB/s of a 64 MB Add, at `threads`.
StatusOr<std::pair<double, double>> MeasurePeak(int threads);

// Every input of `graph` with batch `batch` and dynamic H, W set to `size` (0: 224).
std::map<std::string, Shape> ModelInputShapes(const Graph& graph, int batch, int size);
// A profile, refused when it was measured on another model or at other input sizes.
StatusOr<Profile> LoadProfile(const std::string& path, const std::string& model_sha256,
                              const std::map<std::string, Shape>& shapes);

}  // namespace parnet::cli
