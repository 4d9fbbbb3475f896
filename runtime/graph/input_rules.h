// Which spatial sizes a model accepts, derived from the graph's strides (not from names): an input
// whose H (W) passes through strided convolutions and pools accepts only multiples of the product
// of those strides, so that every strided op sees a size it divides evenly (for ParNet: 32).
#pragma once

#include <cstdint>
#include <string>

#include "runtime/graph/graph.h"

namespace parnet {

struct SpatialRule {
  int64_t multiple_h = 1;  // H must be a positive multiple of this
  int64_t multiple_w = 1;  // W likewise
};

// The rule for a rank-4 (N,C,H,W) or rank-3 (N,C,W) input of an imported graph; {1,1} otherwise.
SpatialRule SpatialRuleFor(const Graph& graph, const std::string& input);

}  // namespace parnet
