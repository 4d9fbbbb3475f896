// Internal to the CPU backend: strided views of oneDNN memories, so that reshapes, unsqueezes and
// transposes of channels-last (NHWC) activations stay views or one copy instead of a round trip
// through plain layout.
#pragma once

#include <optional>
#include <vector>

#include "oneapi/dnnl/dnnl.hpp"

namespace parnet::cpu {

// The per-dimension strides of `desc` when it is a plain strided layout (no inner blocks, no
// offset); nullopt for blocked formats such as nChw16c.
std::optional<dnnl::memory::dims> StridesOf(const dnnl::memory::desc& desc);

// Strides that view a tensor of dims `from` with strides `strides` as dims `to` (same element
// count) without copying, or nullopt when the elements are not laid out that way (numpy's
// attempt_nocopy_reshape). Size-1 dimensions may get any stride.
std::optional<dnnl::memory::dims> ReshapeStrides(const dnnl::memory::dims& from,
                                                 const dnnl::memory::dims& strides,
                                                 const dnnl::memory::dims& to);

// True when the smallest stride among dims 1..rank-3 (the channel-like dims) is below the stride
// of the last dimension: an NHWC-style layout (rank >= 4, sizes > 1 only).
bool ChannelsLast(const dnnl::memory::dims& dims, const dnnl::memory::dims& strides);

// Dense strides with dim 0 outermost, then the last two dims (spatial), then dims 1..rank-3 in
// row-major order innermost: NHWC generalized to [N, c1, ..., ck, H, W]. Merging or splitting
// the channel dims of such a tensor stays a view, and the 4-D result is NHWC.
dnnl::memory::dims ChannelsLastStrides(const dnnl::memory::dims& dims);

}  // namespace parnet::cpu
