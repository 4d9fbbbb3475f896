// Which spatial sizes a model accepts, derived from the graph's strides (not from names): an input
// whose H (W) passes through strided convolutions and pools accepts only multiples of the product
// of those strides, so that every strided op sees a size it divides evenly (for ParNet: 32).
#pragma once

#include <cstdint>
#include <string>

#include "runtime/graph/graph.h"

namespace parnet {

struct SpatialRule {
  // H must be a positive multiple of this; always >= 1. A stride product beyond int64 saturates
  // at INT64_MAX, which no real size is a multiple of.
  int64_t multiple_h = 1;
  int64_t multiple_w = 1;  // W likewise
};

// The rule for a rank-4 (N,C,H,W) or rank-3 (N,C,W) input of an imported graph; {1,1} otherwise.
SpatialRule SpatialRuleFor(const Graph& graph, const std::string& input);

}  // namespace parnet
