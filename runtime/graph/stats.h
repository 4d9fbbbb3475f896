// Counts that `parnet inspect` reports: ops by type, parameters and FLOPs of a specialized graph.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "runtime/graph/graph.h"

namespace parnet {

struct GraphStats {
  std::map<std::string, int64_t> ops_by_type;  // compute nodes that run per request
  int64_t parameters = 0;  // elements of floating-point constants read by compute nodes
  int64_t macs = 0;        // multiply-adds of Conv, Gemm and MatMul
  int64_t flops() const { return 2 * macs; }
};

// REQUIRES: graph.specialized.
GraphStats ComputeStats(const Graph& graph);

}  // namespace parnet
