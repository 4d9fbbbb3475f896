#include "partitioner/schedule.h"

#include <algorithm>
#include <cassert>
#include <set>

namespace parnet::partition {
namespace {
constexpr double kNever = std::numeric_limits<double>::infinity();
}

std::vector<int> ScheduleOrder(const StageGraph& graph, const CostModel& costs) {
  const int n = static_cast<int>(graph.stages.size());
  std::vector<double> cheapest(n), to_reply(n, 0);
  for (int s = 0; s < n; ++s) {
    cheapest[s] = *std::min_element(costs.stage_ms[s].begin(), costs.stage_ms[s].end());
  }
  for (int s = n - 1; s >= 0; --s) {  // stages are already in a topological order
    double after = 0;
    for (int t : graph.Successors(s)) after = std::max(after, to_reply[t]);
    to_reply[s] = cheapest[s] + after;
  }
  std::vector<int> indegree(n, 0);
  for (int s = 0; s < n; ++s) indegree[s] = static_cast<int>(graph.Predecessors(s).size());
  std::set<std::pair<double, int>> ready;  // (-path to reply, stage)
  for (int s = 0; s < n; ++s) {
    if (indegree[s] == 0) ready.insert({-to_reply[s], s});
  }
  std::vector<int> order;
  while (!ready.empty()) {
    const int s = ready.begin()->second;
    ready.erase(ready.begin());
    order.push_back(s);
    for (int t : graph.Successors(s)) {
      if (--indegree[t] == 0) ready.insert({-to_reply[t], t});
    }
  }
  assert(static_cast<int>(order.size()) == n);
  return order;
}

Simulator::Simulator(const StageGraph& graph, const CostModel& costs, std::vector<int> order,
                     std::vector<int> everywhere)
    : graph_(&graph), costs_(&costs), order_(std::move(order)), everywhere_(std::move(everywhere)) {
  const int d = costs.num_devices();
  if (everywhere_.empty()) {
    for (int i = 0; i < d; ++i) everywhere_.push_back(i);
  }
  const size_t n = graph.stages.size();
  device_free_.assign(d, 0);
  link_free_.assign(d, std::vector<double>(d, 0));
  finish_.assign(n, std::vector<double>(d, kNever));
  devices_of_.resize(n);
  stages_on_.assign(d, std::vector<bool>(n, false));
  arrived_.resize(d);
}

double Simulator::Arrival(int producer, const std::vector<std::string>& values, int to) {
  double latest = 0;
  TransferRun transfer;
  transfer.stage = producer;
  transfer.to = to;
  for (const std::string& value : values) {
    auto& here = arrived_[to];
    auto it = std::find_if(here.begin(), here.end(), [&](const auto& p) { return p.first == value; });
    if (it != here.end()) {
      latest = std::max(latest, it->second);
    } else {
      transfer.values.push_back(value);
      transfer.bytes += graph_->value_bytes.at(value);
    }
  }
  if (transfer.values.empty()) return latest;
  // The producer ran on one device (a stage that ran everywhere is always local).
  transfer.from = producer == StageEdge::kRequest ? 0 : devices_of_[producer].front();
  const double ready = producer == StageEdge::kRequest ? 0 : finish_[producer][transfer.from];
  double& link = link_free_[transfer.from][to];
  transfer.start_ms = std::max(ready, link);
  transfer.finish_ms = transfer.start_ms + costs_->TransferMs(transfer.from, to, transfer.bytes);
  link = transfer.finish_ms;
  for (const std::string& value : transfer.values) arrived_[to].push_back({value, transfer.finish_ms});
  latest = std::max(latest, transfer.finish_ms);
  schedule_.transfers.push_back(std::move(transfer));
  return latest;
}

void Simulator::RunOn(int stage, int d) {
  double ready = 0;
  for (const StageEdge& edge : graph_->edges) {
    if (edge.to != stage) continue;
    if (edge.from == StageEdge::kRequest) {
      if (d != 0) ready = std::max(ready, Arrival(edge.from, edge.values, d));
    } else if (finish_[edge.from][d] < kNever) {
      ready = std::max(ready, finish_[edge.from][d]);
    } else {
      ready = std::max(ready, Arrival(edge.from, edge.values, d));
    }
  }
  StageRun run{stage, d, std::max(ready, device_free_[d]), 0};
  run.finish_ms = run.start_ms + costs_->stage_ms[stage][d];
  device_free_[d] = run.finish_ms;
  finish_[stage][d] = run.finish_ms;
  devices_of_[stage].push_back(d);
  stages_on_[d][stage] = true;
  schedule_.runs.push_back(run);
}

void Simulator::Add(int device) {
  assert(added_ < static_cast<int>(order_.size()));
  const int stage = order_[added_++];
  if (device == Placement::kEverywhere) {
    for (int d : everywhere_) RunOn(stage, d);
  } else {
    RunOn(stage, device);
  }
}

void Simulator::AddOn(const std::vector<int>& devices) {
  assert(added_ < static_cast<int>(order_.size()));
  const int stage = order_[added_++];
  for (int d : devices) RunOn(stage, d);
}

void Simulator::Finish() {
  double latency = 0;
  for (const StageEdge& edge : graph_->edges) {
    if (edge.to != StageEdge::kReply) continue;
    double arrival = 0;
    if (edge.from >= 0 && finish_[edge.from][0] < kNever) {
      arrival = finish_[edge.from][0];
    } else if (edge.from >= 0) {
      const size_t before = schedule_.transfers.size();
      arrival = Arrival(edge.from, edge.values, 0);
      for (size_t i = before; i < schedule_.transfers.size(); ++i) {
        schedule_.transfers[i].to_reply = true;
      }
    }
    latency = std::max(latency, arrival);
  }
  schedule_.latency_ms = latency;
}

Schedule Simulate(const StageGraph& graph, const CostModel& costs, const Placement& placement,
                  const std::vector<int>& everywhere) {
  Simulator sim(graph, costs, ScheduleOrder(graph, costs), everywhere);
  for (int stage : sim.order()) {
    const bool listed = static_cast<size_t>(stage) < placement.replicas.size() &&
                        !placement.replicas[stage].empty();
    if (placement.device[stage] == Placement::kEverywhere && listed) {
      sim.AddOn(placement.replicas[stage]);
    } else {
      sim.Add(placement.device[stage]);
    }
  }
  sim.Finish();
  return sim.schedule();
}

Placement PruneReplicas(const StageGraph& graph, const Placement& placement,
                        const std::vector<int>& everywhere) {
  const int n = static_cast<int>(graph.stages.size());
  Placement out = placement;
  out.replicas.assign(n, {});
  // Devices each stage runs on, settled from the last stage back.
  std::vector<std::set<int>> on(n);
  for (int s = n - 1; s >= 0; --s) {
    if (placement.device[s] != Placement::kEverywhere) {
      on[s] = {placement.device[s]};
      continue;
    }
    std::set<int> needed;
    for (int t : graph.Successors(s)) needed.insert(on[t].begin(), on[t].end());
    for (const StageEdge& e : graph.edges) {
      if (e.from == s && e.to == StageEdge::kReply) needed.insert(0);
    }
    std::set<int> allowed(everywhere.begin(), everywhere.end());
    std::set<int> kept;
    for (int d : needed) {
      if (allowed.empty() || allowed.count(d)) kept.insert(d);
    }
    if (kept.empty()) kept.insert(everywhere.empty() ? 0 : everywhere.front());
    on[s] = kept;
    out.replicas[s].assign(kept.begin(), kept.end());
    if (kept.size() == 1) out.device[s] = *kept.begin();
  }
  return out;
}

}  // namespace parnet::partition
