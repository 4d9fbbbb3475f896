// Stage discovery: groups a model's compute nodes into stages, the units the partitioner places.
//
// Found from the graph's structure and op costs alone, never from node names:
//  1. Single-entry/single-exit regions whose branches could not usefully run in parallel (a block
//     with its 3x3, 1x1, identity and gate branches; a gate on its own) collapse into one unit.
//     A region is the set of nodes strictly dominated by a join's immediate dominator and
//     post-dominated by the join; it collapses when its work over its critical path (its
//     parallelism) is below StageOptions::min_parallelism.
//  2. Units in a chain (one predecessor whose only successor is this unit) join one stage.
// What remains are the fork and join points between stages: for ParNet, the stem, the three
// streams, the fusions and the head. Fused and unfused exports of a model give the same stages.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "runtime/core/status.h"
#include "runtime/graph/graph.h"

namespace parnet::partition {

struct StageOptions {
  // A region whose work / critical-path work is below this collapses into one unit: running its
  // branches side by side could save at most 1 - 1/min_parallelism of its time.
  double min_parallelism = 1.5;
  // The shared stem may be recomputed on several devices: the stages, taken in topological order
  // from the model's inputs, whose every predecessor is recomputable and whose summed FLOPs stay
  // within this share of the model's.
  double max_recompute_share = 0.15;
};

struct StageInfo {
  std::string name;                  // common module path of its nodes, or "stage<i>"
  std::vector<int> nodes;            // indices into the graph's nodes, ascending (topological)
  std::vector<std::string> node_names;  // their names (what plans and profiles record)
  std::vector<std::string> inputs;   // values read from other stages or from the request
  std::vector<std::string> outputs;  // values read by other stages or returned in the reply
  double flops = 0;                  // 2 x multiply-adds
  double bytes = 0;                  // activations read and written plus weights
  bool recomputable = false;
};

// Values that stage `from` produces and stage `to` reads. kRequest as `from`: the model's inputs;
// kReply as `to`: the model's outputs.
struct StageEdge {
  static constexpr int kRequest = -1;
  static constexpr int kReply = -2;
  int from = kRequest;
  int to = kReply;
  std::vector<std::string> values;
  double bytes = 0;
};

struct StageGraph {
  std::vector<StageInfo> stages;  // in a topological order
  std::vector<StageEdge> edges;
  std::map<std::string, double> value_bytes;  // size of every value that crosses stages
  double total_flops = 0;

  std::vector<int> Predecessors(int stage) const;  // stage indices, ascending (no kRequest)
  std::vector<int> Successors(int stage) const;    // stage indices, ascending (no kReply)
};

// REQUIRES: graph.specialized (every value's type known, load-time subgraphs folded).
StatusOr<StageGraph> DiscoverStages(const Graph& graph, const StageOptions& options = {});

// The stage as a model of its own: its nodes, the constants they read, its inputs and outputs
// with their (static) types. Not marked specialized, so an Engine compiles it like any model.
// REQUIRES: `graph` is the specialized graph `stages` came from.
Graph ExtractStage(const Graph& graph, const StageInfo& stage);

}  // namespace parnet::partition
