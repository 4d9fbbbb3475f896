// `parnet partition`: place a model's stages on a cluster's devices and write the Plan.
#include <chrono>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>

#include <google/protobuf/text_format.h>

#include "partitioner/cluster.h"
#include "partitioner/cost.h"
#include "partitioner/plan.h"
#include "partitioner/search.h"
#include "partitioner/stages.h"
#include "proto/text_proto.h"
#include "runtime/cli/plan_commands.h"
#include "runtime/graph/onnx_import.h"
#include "runtime/graph/specialize.h"

namespace parnet::cli {

std::map<std::string, Shape> ModelInputShapes(const Graph& graph, int batch, int size) {
  std::map<std::string, Shape> shapes;
  for (const std::string& name : graph.inputs) {
    Shape shape = graph.FindType(name)->shape;
    for (size_t d = 0; d < shape.size(); ++d) {
      if (d == 0) shape[d] = batch;
      if (shape[d] < 0) shape[d] = size > 0 ? size : 224;
    }
    shapes[name] = shape;
  }
  return shapes;
}

StatusOr<Profile> LoadProfile(const std::string& path, const std::string& model_sha256,
                              const std::map<std::string, Shape>& shapes) {
  Profile profile;
  RETURN_IF_ERROR(LoadTextProto(path, "profile", "proto/profile.proto; write profiles with " +
                                std::string("`parnet profile`"), &profile));
  if (profile.model_sha256() != model_sha256) {
    return FailedPrecondition("profile '" + path + "' was measured on another model; run " +
                              "`parnet profile` on this one");
  }
  for (const auto& [name, shape] : shapes) {  // per image: batch is scaled, resolution is not
    std::string dims;
    for (size_t d = 1; d < shape.size(); ++d) dims += (d > 1 ? "," : "") + std::to_string(shape[d]);
    auto it = profile.input_shapes().find(name);
    if (it == profile.input_shapes().end() || it->second != dims) {
      return FailedPrecondition("profile '" + path + "' was measured with input '" + name + "' " +
                                (it == profile.input_shapes().end() ? "absent" : it->second) +
                                ", not " + dims + "; run `parnet profile --size` at this size");
    }
  }
  return profile;
}

namespace {

int Fail(const Status& status) {
  std::cerr << "parnet partition: " << status.message() << "\n";
  return 1;
}

}  // namespace

int RunPartition(const PartitionOptions& options) {
  using namespace partition;
  auto graph = LoadOnnxModel(options.model);
  if (!graph.ok()) return Fail(graph.status());
  auto sha = Sha256OfFile(options.model);
  if (!sha.ok()) return Fail(sha.status());
  auto cluster = LoadCluster(options.cluster);
  if (!cluster.ok()) return Fail(cluster.status());
  if (options.batch < 1) return Fail(InvalidArgument("--batch must be at least 1"));
  PlanTarget target{options.model, *sha, *cluster,
                    ModelInputShapes(*graph, options.batch, options.size), options.batch,
                    "roofline (cluster file)"};
  SpecializeOptions spec;
  spec.input_shapes = target.input_shapes;
  auto specialized = Specialize(*graph, spec);
  if (!specialized.ok()) return Fail(specialized.status());
  auto stages = DiscoverStages(*specialized);
  if (!stages.ok()) return Fail(stages.status());
  std::optional<Profile> profile;
  if (!options.profile.empty()) {
    auto loaded = LoadProfile(options.profile, *sha, target.input_shapes);
    if (!loaded.ok()) return Fail(loaded.status());
    profile = *loaded;
    target.cost_source = "profile " + options.profile;
  }
  auto costs = BuildCostModel(*stages, *cluster, profile ? &*profile : nullptr, options.batch);
  if (!costs.ok()) return Fail(costs.status());

  const auto begin = std::chrono::steady_clock::now();
  SearchResult best = FindBestPlacement(*stages, *costs);
  const double search_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
  // On one host's core sets, the other choice: every stage on all the cores.
  std::string choice;
  if (auto merged = MergeCoreSets(*cluster); merged && !options.no_merge) {
    auto merged_costs =
        BuildCostModel(*stages, *merged, profile ? &*profile : nullptr, options.batch);
    if (merged_costs.ok()) {
      Placement one{std::vector<int>(stages->stages.size(), 0)};
      Schedule schedule = Simulate(*stages, *merged_costs, one);
      // A one-device plan runs as one Engine: with a profile, its measured whole-model time.
      if (profile) {
        auto whole = WholeModelMs(*profile, merged->devices(0).cores_size(), options.batch);
        if (whole.ok()) {
          const double scale = *whole / schedule.latency_ms;
          schedule.latency_ms = *whole;
          for (partition::StageRun& run : schedule.runs) {
            run.start_ms *= scale;
            run.finish_ms *= scale;
          }
        }
      }
      std::ostringstream line;
      line << "all " << merged->devices(0).cores_size() << " cores on every stage: "
           << schedule.latency_ms << " ms; stages side by side on " << cluster->devices_size()
           << " core sets: " << best.schedule.latency_ms << " ms -> ";
      if (schedule.latency_ms < best.schedule.latency_ms) {
        target.cluster = *merged;
        best.schedule = std::move(schedule);
        line << "all cores";
      } else {
        line << "core sets";
      }
      choice = line.str();
    } else {
      choice = "not compared with all cores on every stage: " + merged_costs.status().message();
    }
  }
  Plan plan = MakePlan(target, *specialized, *stages, best.schedule);
  if (Status valid = ValidatePlan(plan, *specialized); !valid.ok()) return Fail(valid);

  std::cout << "model " << options.model << ": " << stages->stages.size() << " stages, "
            << stages->total_flops / 1e9 << " GFLOP at batch " << options.batch << "\n";
  for (const Stage& stage : plan.stages()) {
    std::cout << "  stage " << stage.id() << " " << stage.name() << ": " << stage.nodes_size()
              << " nodes, " << stage.gflop() << " GFLOP"
              << (stage.recomputable() ? ", recomputable" : "") << "\n";
  }
  if (!choice.empty()) std::cout << choice << "\n";
  std::cout << "placement:\n";
  for (const DeviceAssignment& a : plan.devices()) {
    std::cout << "  " << a.device() << ":";
    for (const auto& run : a.runs()) std::cout << " " << plan.stages(run.stage()).name();
    if (a.runs().empty()) std::cout << " (idle)";
    std::cout << "\n";
  }
  std::cout << "predicted latency " << plan.predicted_latency_ms() << " ms (" << plan.cost_source()
            << "); searched " << best.nodes_visited << " partial plans in " << search_s << " s\n";
  if (options.explain) {
    auto alternatives = Alternatives(*stages, *costs);
    std::cout << "\n" << ExplainTable(plan, alternatives);
    const std::string svg = options.svg.empty() ? (options.out.empty() ? "plan" : options.out) +
                                                      ".svg"
                                                : options.svg;
    std::ofstream(svg) << GanttSvg(plan, "predicted schedule: " + options.model);
    std::cout << "wrote the Gantt chart to " << svg << "\n";
  }
  if (!options.out.empty()) {
    if (Status saved = SavePlan(plan, options.out); !saved.ok()) return Fail(saved);
    std::cout << "wrote " << options.out << "\n";
  }
  return 0;
}

}  // namespace parnet::cli
