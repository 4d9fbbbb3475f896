// Placement search for the latency objective under the schedule model (schedule.h).
//
// Exact: depth-first branch and bound over stages in the schedule order. Each stage goes to one
// allowed device, or (recomputable stages) everywhere. Partial schedules are exact because the
// simulation never revisits an added stage. A branch is cut when a lower bound (the longest
// remaining path at each stage's cheapest cost from its earliest start, and the remaining work
// spread over all devices) cannot beat the best complete plan. Identical devices are symmetric:
// of two devices that a swap maps onto each other and that hold the same stages so far, only
// the first is tried.
#pragma once

#include <cstdint>
#include <vector>

#include "partitioner/schedule.h"

namespace parnet::partition {

struct SearchOptions {
  std::vector<int> devices;     // devices that may be used (empty: all); device 0 always is
  bool allow_recompute = true;  // recomputable stages may run everywhere
  // Drop recomputed copies nobody reads from the result (PruneReplicas). Tests comparing with
  // BruteForcePlacement turn it off so that both optimize exactly the same objective.
  bool prune_replicas = true;
};

struct SearchResult {
  Placement placement;
  Schedule schedule;
  int64_t nodes_visited = 0;
};

SearchResult FindBestPlacement(const StageGraph& graph, const CostModel& costs,
                               const SearchOptions& options = {});

// Every placement in the same space, evaluated one by one. For tests of FindBestPlacement.
SearchResult BruteForcePlacement(const StageGraph& graph, const CostModel& costs,
                                 const SearchOptions& options = {});

// Classes of interchangeable devices: class_of[d] == class_of[e] when swapping d and e maps
// stage costs and links onto themselves. Device 0 (where requests arrive) is always alone.
std::vector<int> SymmetryClasses(const CostModel& costs);

}  // namespace parnet::partition
