#include "partitioner/cost.h"

#include <algorithm>
#include <cmath>

#include "partitioner/cluster.h"

namespace parnet::partition {
namespace {

// The timing of `stage` at `threads` threads nearest to `batch` (the largest profiled batch not
// above it, else the smallest above it), or null.
StatusOr<const StageTiming*> NearestTiming(const Profile& profile, const StageInfo& stage,
                                           int threads, int batch) {
  // The largest profiled batch not above `batch`, else the smallest above it.
  const StageTiming* below = nullptr;
  const StageTiming* above = nullptr;
  for (const StageTiming& t : profile.timings()) {
    if (t.stage() != stage.name || t.threads() != threads || t.batch() < 1) continue;
    if (!t.nodes().empty() &&
        !std::equal(t.nodes().begin(), t.nodes().end(), stage.node_names.begin(),
                    stage.node_names.end())) {
      return FailedPrecondition("the profile's stage '" + stage.name + "' holds other nodes than " +
                                "this split of the model; run `parnet profile` again");
    }
    if (t.batch() <= batch) {
      if (below == nullptr || t.batch() > below->batch()) below = &t;
    } else if (above == nullptr || t.batch() < above->batch()) {
      above = &t;
    }
  }
  return below != nullptr ? below : above;
}

// The measured time of `stage` at `threads` threads, scaled to `batch`; NOT_FOUND names the fix.
// Scaling: at one thread, time grows with the batch. At T threads, the work that grows with the
// batch spreads over the T threads, and what the threads lose at the profiled batch b0 (sync,
// too little parallel work: t_T(b0) - t_1(b0) / T) stays fixed:
//   t_T(b) = t_1(b0) * (b / b0) / T + (t_T(b0) - t_1(b0) / T),
// when the profile also has the stage at one thread and b0; otherwise linearly, t_T(b0) * b / b0.
StatusOr<double> ProfiledMs(const Profile& profile, const StageInfo& stage, int threads,
                            int batch) {
  ASSIGN_OR_RETURN(const StageTiming* nearest, NearestTiming(profile, stage, threads, batch));
  if (nearest == nullptr) {
    return NotFound("the profile has no timing of stage '" + stage.name + "' at " +
                    std::to_string(threads) + " thread(s); run `parnet profile --threads " +
                    std::to_string(threads) + "` on this model again");
  }
  const double scale = static_cast<double>(batch) / nearest->batch();
  const double linear = nearest->median_ms() * scale;
  if (threads == 1 || batch == nearest->batch()) return linear;
  ASSIGN_OR_RETURN(const StageTiming* single, NearestTiming(profile, stage, 1, nearest->batch()));
  if (single == nullptr || single->batch() != nearest->batch()) return linear;
  const double parallel = single->median_ms() * scale / threads;
  const double lost = std::max(0.0, nearest->median_ms() - single->median_ms() / threads);
  return parallel + lost;
}

}  // namespace

StatusOr<double> WholeModelMs(const Profile& profile, int threads, int batch) {
  StageInfo whole;
  whole.name = kWholeModel;
  return ProfiledMs(profile, whole, threads, batch);
}

double RooflineMs(double flops, double bytes, double gflops, double memory_gbps) {
  double seconds = flops / (gflops * 1e9);
  if (memory_gbps > 0) seconds = std::max(seconds, bytes / (memory_gbps * 1e9));
  return seconds * 1e3;
}

StatusOr<CostModel> BuildCostModel(const StageGraph& graph, const Cluster& cluster,
                                   const Profile* profile, int batch) {
  const int n = cluster.devices_size();
  CostModel costs;
  costs.stage_ms.assign(graph.stages.size(), std::vector<double>(n, 0));
  for (int d = 0; d < n; ++d) {
    const Device& device = cluster.devices(d);
    const int threads = std::max(1, device.cores_size());
    const bool profiled = profile != nullptr && device.kind() == Device::CPU &&
                          profile->device_kind() == "cpu";
    if (profiled) {
      // Measured here: as measured. Elsewhere: scaled by the device's stated speed.
      const bool here = device.host().empty() || device.host() == "localhost" ||
                        device.host() == profile->host();
      auto peak = profile->peak_gflops().find(threads);
      const double scale = !here && device.gflops() > 0 && peak != profile->peak_gflops().end()
                               ? peak->second / device.gflops()
                               : 1.0;
      for (size_t s = 0; s < graph.stages.size(); ++s) {
        ASSIGN_OR_RETURN(double ms, ProfiledMs(*profile, graph.stages[s], threads, batch));
        costs.stage_ms[s][d] = ms * scale;
      }
      continue;
    }
    if (!(device.gflops() > 0)) {
      return FailedPrecondition(
          "device '" + device.name() + "' has no speed: give it `gflops` (and `memory_gbps`) in " +
          "the cluster file, or pass a profile of its kind (`parnet profile`)");
    }
    for (size_t s = 0; s < graph.stages.size(); ++s) {
      costs.stage_ms[s][d] = RooflineMs(graph.stages[s].flops, graph.stages[s].bytes,
                                        device.gflops(), device.memory_gbps());
    }
  }
  costs.link_latency_ms.assign(n, std::vector<double>(n, 0));
  costs.link_ms_per_byte.assign(n, std::vector<double>(n, 0));
  for (int a = 0; a < n; ++a) {
    for (int b = 0; b < n; ++b) {
      if (a == b) continue;
      const Link* link = FindLink(cluster, a, b);
      if (link == nullptr) {
        costs.link_latency_ms[a][b] = CostModel::kNoLink;
        continue;
      }
      costs.link_latency_ms[a][b] = link->latency_us() / 1e3;
      costs.link_ms_per_byte[a][b] = 8.0 / (link->bandwidth_gbit_s() * 1e9) * 1e3;
    }
  }
  return costs;
}

}  // namespace parnet::partition
