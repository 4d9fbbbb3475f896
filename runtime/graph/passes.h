// Graph optimizations on specialized graphs (every value's type known, weights constant). Each
// pass keeps the graph's outputs and their values (up to float rounding) and returns how many
// rewrites it made. Tests compare every pass's output with the unoptimized graph's.
#pragma once

#include <cstdint>

#include "runtime/core/status.h"
#include "runtime/graph/graph.h"

namespace parnet {

// Drops ops that return their input unchanged: Identity and Pad with all-zero pads.
StatusOr<int64_t> RemoveIdentityOps(Graph& graph);
// Conv -> BatchNormalization (the Conv's output read by nothing else) becomes one Conv whose
// weights and bias absorb the normalization: w' = w * g / sqrt(v + eps), b' = (b - m) * g /
// sqrt(v + eps) + beta.
StatusOr<int64_t> FoldBatchNormIntoConv(Graph& graph);
// Structural re-parameterization: Add(Conv3x3(x), Conv1x1(x)) with the same stride and groups
// becomes one 3x3 Conv (the 1x1 kernel added at the centre), and Add(Conv3x3/s2(x),
// Conv1x1(AvgPool2x2/s2(x))) becomes one 3x3/s2 Conv (the 1x1 kernel / 4 added to the 2x2
// bottom-right taps; exact because both branches see the same even-sized input).
StatusOr<int64_t> MergeParallelConvs(Graph& graph);

// Channel shuffles (ShuffleNet/ParNet: Reshape [N,C,H,W] -> [N,g,C/g,H,W], Transpose (0,2,1,3,4),
// Reshape back) are permutations of channels. When everything that reads the shuffled value is a
// Conv with constant weights, possibly behind per-channel ops (BatchNormalization with constant
// parameters, GlobalAveragePool, Relu, Sigmoid), the shuffle is removed and the permutation moves
// into those Convs' input channels (and the BNs' parameters). Exact: only the order of the terms
// of each sum changes. A grouped Conv takes it only when the permutation keeps every channel in
// its group. ParNet's interleaved concat before a fusion block cannot become a weight permutation
// this way: its grouped conv needs half of each input per group, so some copy stays.
StatusOr<int64_t> FoldChannelShuffles(Graph& graph);

struct OptimizeReport {
  int64_t identities_removed = 0;
  int64_t batchnorms_folded = 0;
  int64_t conv_pairs_merged = 0;
  int64_t channel_shuffles_folded = 0;
};
// All of the above, in an order where each enables the next.
StatusOr<OptimizeReport> Optimize(Graph& graph);

}  // namespace parnet
