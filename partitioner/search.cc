#include "partitioner/search.h"

#include <algorithm>
#include <cmath>

namespace parnet::partition {
namespace {

std::vector<int> AllowedDevices(const CostModel& costs, const SearchOptions& options) {
  std::vector<int> devices = options.devices;
  if (devices.empty()) {
    for (int d = 0; d < costs.num_devices(); ++d) devices.push_back(d);
  }
  if (std::find(devices.begin(), devices.end(), 0) == devices.end()) devices.push_back(0);
  std::sort(devices.begin(), devices.end());
  devices.erase(std::unique(devices.begin(), devices.end()), devices.end());
  return devices;
}

class BranchAndBound {
 public:
  BranchAndBound(const StageGraph& graph, const CostModel& costs, const SearchOptions& options)
      : graph_(graph), costs_(costs), options_(options),
        devices_(AllowedDevices(costs, options)), classes_(SymmetryClasses(costs)),
        order_(ScheduleOrder(graph, costs)) {
    const size_t n = graph.stages.size();
    cheapest_.resize(n);
    for (size_t s = 0; s < n; ++s) {
      cheapest_[s] = costs.stage_ms[s][devices_[0]];
      for (int d : devices_) cheapest_[s] = std::min(cheapest_[s], costs.stage_ms[s][d]);
    }
    // A stage that reaches no output (dead nodes the model computes for nothing) never delays
    // the reply: it must not count in a bound.
    reaches_reply_.assign(n, false);
    for (const StageEdge& e : graph.edges) {
      if (e.to == StageEdge::kReply && e.from >= 0) reaches_reply_[e.from] = true;
    }
    tail_.assign(n, 0);
    for (int k = static_cast<int>(n) - 1; k >= 0; --k) {
      const int s = order_[k];
      double after = 0;
      for (int t : graph.Successors(s)) {
        if (!reaches_reply_[t]) continue;
        after = std::max(after, tail_[t]);
        reaches_reply_[s] = true;
      }
      tail_[s] = cheapest_[s] + after;
    }
    position_.resize(n);
    for (size_t k = 0; k < n; ++k) position_[order_[k]] = static_cast<int>(k);
  }

  SearchResult Run() {
    // The first bound: everything on device 0.
    Placement all_on_0{std::vector<int>(graph_.stages.size(), 0)};
    best_.placement = all_on_0;
    best_.schedule = Simulate(graph_, costs_, all_on_0, devices_);
    Simulator root(graph_, costs_, order_, devices_);
    Placement partial{std::vector<int>(graph_.stages.size(), 0)};
    Recurse(root, partial);
    best_.nodes_visited = visited_;
    if (!options_.prune_replicas) return best_;
    Placement pruned = PruneReplicas(graph_, best_.placement, devices_);
    Schedule schedule = Simulate(graph_, costs_, pruned, devices_);
    if (schedule.latency_ms <= best_.schedule.latency_ms) {
      best_.placement = std::move(pruned);
      best_.schedule = std::move(schedule);
    }
    return best_;
  }

 private:
  double LowerBound(const Simulator& sim) const {
    const int n = static_cast<int>(order_.size());
    std::vector<double> earliest(n, 0);
    double bound = 0, remaining = 0;
    for (int k = sim.added(); k < n; ++k) {
      const int s = order_[k];
      double start = 0;
      for (int p : graph_.Predecessors(s)) {
        double ready;
        if (position_[p] < sim.added()) {
          ready = std::numeric_limits<double>::infinity();
          for (int d : sim.DevicesOf(p)) ready = std::min(ready, sim.LocalFinish(p, d));
        } else {
          ready = earliest[p] + cheapest_[p];
        }
        start = std::max(start, ready);
      }
      earliest[s] = start;
      if (!reaches_reply_[s]) continue;
      bound = std::max(bound, start + tail_[s]);
      remaining += cheapest_[s];
    }
    double first_free = std::numeric_limits<double>::infinity();
    for (int d : devices_) first_free = std::min(first_free, sim.device_free(d));
    return std::max(bound, first_free + remaining / static_cast<double>(devices_.size()));
  }

  // Devices worth trying for the next stage: one of each group of interchangeable devices.
  std::vector<int> Candidates(const Simulator& sim) const {
    std::vector<int> out;
    for (int d : devices_) {
      bool mirror = false;
      for (int e : out) {
        mirror |= classes_[e] == classes_[d] && sim.StagesOn(e) == sim.StagesOn(d);
      }
      if (!mirror) out.push_back(d);
    }
    const int stage = order_[sim.added()];
    if (options_.allow_recompute && graph_.stages[stage].recomputable && devices_.size() > 1) {
      out.push_back(Placement::kEverywhere);
    }
    return out;
  }

  void Recurse(const Simulator& sim, Placement& partial) {
    ++visited_;
    const int n = static_cast<int>(order_.size());
    if (sim.added() == n) {
      Simulator done = sim;
      done.Finish();
      if (done.schedule().latency_ms < best_.schedule.latency_ms) {
        best_.placement = partial;
        best_.schedule = done.schedule();
      }
      return;
    }
    if (LowerBound(sim) >= best_.schedule.latency_ms * (1 - 1e-12)) return;
    const int stage = order_[sim.added()];
    struct Child {
      double finish;
      int device;
      Simulator sim;
    };
    std::vector<Child> children;
    for (int d : Candidates(sim)) {
      Simulator child = sim;
      child.Add(d);
      double finish = 0;
      for (int e : child.DevicesOf(stage)) finish = std::max(finish, child.LocalFinish(stage, e));
      children.push_back({finish, d, std::move(child)});
    }
    // Most promising first, so that good plans bound the rest early.
    std::stable_sort(children.begin(), children.end(),
                     [](const Child& a, const Child& b) { return a.finish < b.finish; });
    for (const Child& child : children) {
      partial.device[stage] = child.device;
      Recurse(child.sim, partial);
    }
  }

  const StageGraph& graph_;
  const CostModel& costs_;
  SearchOptions options_;
  std::vector<int> devices_;
  std::vector<int> classes_;
  std::vector<int> order_;
  std::vector<int> position_;
  std::vector<double> cheapest_, tail_;
  std::vector<bool> reaches_reply_;
  SearchResult best_;
  int64_t visited_ = 0;
};

bool Same(double a, double b) { return a == b || std::abs(a - b) <= 1e-12 * std::max(a, b); }

bool SwapIsSymmetry(const CostModel& costs, int i, int j) {
  for (const auto& row : costs.stage_ms) {
    if (!Same(row[i], row[j])) return false;
  }
  auto same_link = [&](int a, int b, int c, int d) {
    return Same(costs.link_latency_ms[a][b], costs.link_latency_ms[c][d]) &&
           Same(costs.link_ms_per_byte[a][b], costs.link_ms_per_byte[c][d]);
  };
  if (!same_link(i, j, j, i)) return false;
  for (int k = 0; k < costs.num_devices(); ++k) {
    if (k == i || k == j) continue;
    if (!same_link(i, k, j, k) || !same_link(k, i, k, j)) return false;
  }
  return true;
}

}  // namespace

std::vector<int> SymmetryClasses(const CostModel& costs) {
  const int n = costs.num_devices();
  std::vector<int> class_of(n);
  int classes = 0;
  for (int d = 0; d < n; ++d) {
    class_of[d] = classes;
    for (int e = 1; e < d && d > 0; ++e) {
      if (SwapIsSymmetry(costs, e, d)) {
        class_of[d] = class_of[e];
        break;
      }
    }
    if (class_of[d] == classes) ++classes;
  }
  return class_of;
}

SearchResult FindBestPlacement(const StageGraph& graph, const CostModel& costs,
                               const SearchOptions& options) {
  return BranchAndBound(graph, costs, options).Run();
}

SearchResult BruteForcePlacement(const StageGraph& graph, const CostModel& costs,
                                 const SearchOptions& options) {
  const std::vector<int> devices = AllowedDevices(costs, options);
  const size_t n = graph.stages.size();
  std::vector<std::vector<int>> choices(n);
  for (size_t s = 0; s < n; ++s) {
    choices[s] = devices;
    if (options.allow_recompute && graph.stages[s].recomputable && devices.size() > 1) {
      choices[s].push_back(Placement::kEverywhere);
    }
  }
  SearchResult best;
  best.schedule.latency_ms = std::numeric_limits<double>::infinity();
  std::vector<size_t> digit(n, 0);
  while (true) {
    Placement placement;
    for (size_t s = 0; s < n; ++s) placement.device.push_back(choices[s][digit[s]]);
    Schedule schedule = Simulate(graph, costs, placement, devices);
    ++best.nodes_visited;
    if (schedule.latency_ms < best.schedule.latency_ms) {
      best.placement = placement;
      best.schedule = std::move(schedule);
    }
    size_t s = 0;
    while (s < n && ++digit[s] == choices[s].size()) digit[s++] = 0;
    if (s == n) break;
  }
  return best;
}

}  // namespace parnet::partition
