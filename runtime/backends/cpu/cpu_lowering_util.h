// Internal to the CPU backend: helpers shared by the op lowerings (cpu_lowering.cc) and the
// convolution lowering (cpu_conv.cc).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "oneapi/dnnl/dnnl.hpp"
#include "runtime/backends/cpu/cpu_compiler.h"

namespace parnet::cpu {

const Shape& ShapeOf(Compiler& c, const std::string& value);
// An FP32 descriptor that lets oneDNN choose the layout.
dnnl::memory::desc AnyDesc(const Shape& shape);

// An activation that directly follows `value` and can become an eltwise post-op: Relu, Sigmoid,
// or SiLU exported as Mul(v, Sigmoid(v)).
struct Activation {
  dnnl::algorithm alg;
  std::vector<const Node*> nodes;
  std::string output;
};

std::optional<Activation> FollowingActivation(Compiler& c, const std::string& value);
// Adds the activation following `value` (if any) as a post-op to `attr` and returns the name the
// primitive's output will carry; the absorbed nodes go to `fused`, which the caller marks only
// once its primitive exists.
std::string FuseActivation(Compiler& c, const std::string& value, dnnl::primitive_attr& attr,
                           std::vector<const Node*>& fused);
void MarkAllFused(Compiler& c, const std::vector<const Node*>& nodes);

struct WindowDims {
  dnnl::memory::dims strides, kernel, dilates, pad_l, pad_r;
};

// ONNX window attributes in oneDNN's terms (dilation counts the gaps: ONNX d -> d - 1).
StatusOr<WindowDims> OneDnnWindow(Compiler& c, const Node& node, const Shape& in,
                                  const std::vector<int64_t>& kernel, const Shape& out);

// nChw16c / nChw8c (what oneDNN's Winograd convolution writes), or nullopt.
std::optional<dnnl::memory::format_tag> ChannelBlocked(const dnnl::memory::desc& d);

// nChw16c when a Winograd convolution will read `value` (the layout it wants on this CPU), so
// that the value's other readers (a stream block's identity BN) can work in it too and the
// convolution's sum post-op finds its accumulator in its own layout; nullopt otherwise.
std::optional<dnnl::memory::desc> WinogradInputDesc(Compiler& c, const std::string& value);

// Conv (cpu_conv.cc); false when oneDNN does not cover it.
StatusOr<bool> LowerConv(Compiler& c, const Node& node);

}  // namespace parnet::cpu
