// Lowering of graph nodes to oneDNN 2.x primitives (fp32). Each function returns false when oneDNN
// does not cover the node as given; oneDNN's own refusals arrive as dnnl::error and are handled
// by the compiler the same way (the node runs on its reference kernel).
#include <cstdlib>
#include <optional>

#include "runtime/backends/cpu/cpu_compiler.h"
#include "runtime/backends/cpu/cpu_layout.h"

namespace parnet::cpu {
namespace {

using dnnl::algorithm;
using dnnl::memory;
using dnnl::prop_kind;
using tag = memory::format_tag;
using dt = memory::data_type;

const Shape& ShapeOf(Compiler& c, const std::string& value) {
  return c.graph().FindType(value)->shape;
}

memory::desc AnyDesc(const Shape& shape) { return memory::desc(Dims(shape), dt::f32, tag::any); }

// An activation that directly follows `value` and can become an eltwise post-op: Relu, Sigmoid,
// or SiLU exported as Mul(v, Sigmoid(v)).
struct Activation {
  algorithm alg;
  std::vector<const Node*> nodes;
  std::string output;
};

std::optional<Activation> FollowingActivation(Compiler& c, const std::string& value) {
  const auto& readers = c.Consumers(value);
  const int uses = c.Uses(value);
  if (uses == 1 && readers.size() == 1) {
    const Node* n = readers[0];
    if (n->op_type == "Relu") return Activation{algorithm::eltwise_relu, {n}, n->outputs[0]};
    if (n->op_type == "Sigmoid") return Activation{algorithm::eltwise_logistic, {n}, n->outputs[0]};
  }
  if (uses == 2 && readers.size() == 2) {
    const Node* sig = readers[0]->op_type == "Sigmoid" ? readers[0] : readers[1];
    const Node* mul = sig == readers[0] ? readers[1] : readers[0];
    if (sig->op_type == "Sigmoid" && mul->op_type == "Mul" && c.Uses(sig->outputs[0]) == 1 &&
        ((mul->inputs[0] == value && mul->inputs[1] == sig->outputs[0]) ||
         (mul->inputs[1] == value && mul->inputs[0] == sig->outputs[0]))) {
      return Activation{algorithm::eltwise_swish, {sig, mul}, mul->outputs[0]};
    }
  }
  return std::nullopt;
}

// Adds the activation as a post-op and returns the name the primitive's output will carry; the
// absorbed nodes go to `fused`, which the caller marks only once its primitive exists (a oneDNN
// refusal before that leaves every node to run on its own).
std::string FuseActivation(Compiler& c, const std::string& value, dnnl::primitive_attr& attr,
                           std::vector<const Node*>& fused) {
  auto act = FollowingActivation(c, value);
  if (!act) return value;
  dnnl::post_ops ops;
  ops.append_eltwise(1.0f, act->alg, act->alg == algorithm::eltwise_swish ? 1.0f : 0.0f, 0.0f);
  attr.set_post_ops(ops);
  fused.insert(fused.end(), act->nodes.begin(), act->nodes.end());
  return act->output;
}

void MarkAllFused(Compiler& c, const std::vector<const Node*>& nodes) {
  for (const Node* n : nodes) c.MarkFused(*n);
}

struct WindowDims {
  memory::dims strides, kernel, dilates, pad_l, pad_r;
};

// ONNX window attributes in oneDNN's terms (dilation counts the gaps: ONNX d -> d - 1).
StatusOr<WindowDims> OneDnnWindow(Compiler& c, const Node& node, const Shape& in,
                                  const std::vector<int64_t>& kernel, const Shape& out) {
  OpContext ctx{node, c.graph().opset, {}, {}};
  ASSIGN_OR_RETURN(ops::Window w, ops::ComputeWindow(ctx, Shape(in.begin() + 2, in.end()), kernel));
  WindowDims d;
  for (size_t i = 0; i < kernel.size(); ++i) {
    const int64_t extent = (kernel[i] - 1) * w.dilations[i] + 1;
    d.strides.push_back(w.strides[i]);
    d.kernel.push_back(kernel[i]);
    d.dilates.push_back(w.dilations[i] - 1);
    d.pad_l.push_back(w.pad_begin[i]);
    // Right padding that makes oneDNN's floor formula give ONNX's size (ceil_mode included).
    d.pad_r.push_back((out[i + 2] - 1) * w.strides[i] + extent - in[i + 2] - w.pad_begin[i]);
  }
  return d;
}

// What a convolution absorbs as post-ops: a residual Add or a gate Mul (as a binary post-op, or
// the Add as a sum post-op into the other operand's buffer) and then an activation.
struct ConvFusion {
  dnnl::primitive_attr attr;
  std::unordered_map<int, memory> srcs;  // binary post-op operands
  memory accumulate;                     // with a sum post-op: the buffer the conv adds into
  std::optional<Activation> separate;    // an activation run after the conv, in place
  std::vector<const Node*> nodes;
  std::string output;
};

enum class Absorb { kActivationOnly, kBinary, kSum };

// The Add or Mul that alone reads the convolution's output, and its other operand, when oneDNN
// could take it as a post-op: an operand of the output's shape, or a per-channel gate {N,C,1,1}.
const Node* FollowingBinary(Compiler& c, const std::string& conv_out, std::string& other) {
  const auto& readers = c.Consumers(conv_out);
  if (c.Uses(conv_out) != 1 || readers.size() != 1) return nullptr;
  const Node* op = readers[0];
  if (op->op_type != "Add" && op->op_type != "Mul") return nullptr;
  other = op->inputs[0] == conv_out ? op->inputs[1] : op->inputs[0];
  const Shape& y = ShapeOf(c, conv_out);
  const Shape& o = ShapeOf(c, other);
  const bool gate = op->op_type == "Mul" && o == Shape{y[0], y[1], 1, 1};
  if (ShapeOf(c, op->outputs[0]) != y || (o != y && !gate) || !c.IsDefined(other)) return nullptr;
  return op;
}

ConvFusion PlanConvFusion(Compiler& c, const Node& conv, Absorb absorb,
                          bool with_activation = true) {
  ConvFusion f;
  f.output = conv.outputs[0];
  dnnl::post_ops ops;
  std::string other;
  const Node* op = absorb == Absorb::kActivationOnly ? nullptr : FollowingBinary(c, f.output, other);
  if (op != nullptr && absorb == Absorb::kBinary) {
    memory m = c.Value(other);
    ops.append_binary(op->op_type == "Add" ? algorithm::binary_add : algorithm::binary_mul,
                      m.get_desc());
    f.srcs[DNNL_ARG_ATTR_MULTIPLE_POST_OP(0) | DNNL_ARG_SRC_1] = m;
    f.nodes.push_back(op);
    f.output = op->outputs[0];
  } else if (op != nullptr && absorb == Absorb::kSum && op->op_type == "Add" &&
             ShapeOf(c, other) == ShapeOf(c, f.output) && c.OverwritableInPlace(other)) {
    ops.append_sum(1.0f);
    f.accumulate = c.Value(other);
    f.nodes.push_back(op);
    f.output = op->outputs[0];
  }
  if (auto act = FollowingActivation(c, f.output)) {
    if (with_activation) {
      ops.append_eltwise(1.0f, act->alg, act->alg == algorithm::eltwise_swish ? 1.0f : 0.0f, 0.0f);
    } else {
      f.separate = act;
    }
    f.nodes.insert(f.nodes.end(), act->nodes.begin(), act->nodes.end());
    f.output = act->output;
  }
  f.attr.set_post_ops(ops);
  f.attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return f;
}

// Winograd F(4x4, 3x3) (oneDNN's jit_wino_4x3) for 3x3 stride-1 convolutions: about 2.2x to 3.4x
// faster than brgconv on this CPU (docs/benchmarks.md) for 2.25x fewer multiplications, at the
// cost of rounding errors a few times larger than the direct algorithm's (the parity tests hold
// at 1e-4). PARNET_CPU_WINOGRAD=0 turns it off. oneDNN 2.6's Winograd takes a sum post-op and
// ReLU but not SiLU, which then runs as an in-place eltwise after it.
bool WinogradCandidate(const Shape& w, int64_t group, const WindowDims& win) {
  static const bool enabled = [] {
    const char* v = std::getenv("PARNET_CPU_WINOGRAD");
    return v == nullptr || std::string(v) != "0";
  }();
  return enabled && group == 1 && w.size() == 4 && w[2] == 3 && w[3] == 3 &&
         win.strides == memory::dims{1, 1} && win.dilates == memory::dims{0, 0} &&
         win.pad_l == memory::dims{1, 1} && win.pad_r == memory::dims{1, 1};
}

std::optional<dnnl::convolution_forward::primitive_desc> ChooseWinograd(
    Compiler& c, const Node& node, const dnnl::convolution_forward::desc& desc, ConvFusion& fusion) {
  for (Absorb absorb : {Absorb::kSum, Absorb::kActivationOnly}) {
    for (bool with_activation : {true, false}) {
      ConvFusion f = PlanConvFusion(c, node, absorb, with_activation);
      if (absorb == Absorb::kSum && !f.accumulate) continue;
      try {
        dnnl::convolution_forward::primitive_desc pd(desc, f.attr, c.engine());
        if (std::string(pd.impl_info_str()).find("wino") == std::string::npos) continue;
        if (f.accumulate && pd.dst_desc() != f.accumulate.get_desc()) continue;
        fusion = std::move(f);
        return pd;
      } catch (const dnnl::error&) {
        // Not with these post-ops: try fewer.
      }
    }
  }
  return std::nullopt;
}

// Picks the richest fusion that oneDNN runs with the same kernel as the convolution with only its
// activation: a post-op that pushes the convolution onto a slower implementation costs more than
// it saves. oneDNN 2.6 on AVX-512 (see docs/benchmarks.md) keeps brgconv for a per-channel gate
// {1,C,1,1} but falls back to x64:gemm:jit (about 5x slower) for a per-sample gate {N,C,1,1} with
// N > 1 and for a full-tensor binary Add at any batch. The Add then becomes a sum post-op (the
// convolution accumulates into the other operand's buffer), which brgconv keeps; the gate stays
// a binary primitive of its own after the convolution.
dnnl::convolution_forward::primitive_desc ChooseConvFusion(
    Compiler& c, const Node& node, const dnnl::convolution_forward::desc& desc, ConvFusion& fusion) {
  fusion = PlanConvFusion(c, node, Absorb::kActivationOnly);
  dnnl::convolution_forward::primitive_desc pd(desc, fusion.attr, c.engine());
  for (Absorb absorb : {Absorb::kBinary, Absorb::kSum}) {
    ConvFusion richer = PlanConvFusion(c, node, absorb);
    if (richer.nodes.size() == fusion.nodes.size()) continue;
    try {
      dnnl::convolution_forward::primitive_desc fused(desc, richer.attr, c.engine());
      const bool same_dst = richer.accumulate ? fused.dst_desc() == richer.accumulate.get_desc()
                                              : fused.dst_desc() == pd.dst_desc();
      if (std::string(fused.impl_info_str()) == pd.impl_info_str() && same_dst) {
        fusion = std::move(richer);
        return fused;
      }
    } catch (const dnnl::error&) {
      // No implementation with this post-op: try the next form, or run the op on its own.
    }
  }
  return pd;
}

// A grouped 3x3 stride-1 convolution (ParNet's second fusion block: 2 groups) as one Winograd
// convolution per group, since oneDNN 2.6's Winograd takes no groups: each group's input
// channels are reordered from a channel slice of the input, and the outputs concatenated. The
// copies cost a few percent of what Winograd saves over the grouped brgconv. Post-ops stay with
// the nodes that follow. Returns false (nothing added) when Winograd declines.
bool LowerGroupedWinograd(Compiler& c, const Node& node, const WindowDims& win) {
  const Shape& x = ShapeOf(c, node.inputs[0]);
  const Shape& w = ShapeOf(c, node.inputs[1]);
  const Shape& y = ShapeOf(c, node.outputs[0]);
  const int64_t groups = node.IntAttr("group", 1);
  const int64_t in_g = w[1], out_g = w[0] / groups;
  memory in = c.Value(node.inputs[0]);
  if (!StridesOf(in.get_desc())) in = c.Plain(node.inputs[0]);
  const bool has_bias = node.NumInputs() > 2;
  const Shape xg = {x[0], in_g, x[2], x[3]}, yg = {y[0], out_g, y[2], y[3]};
  const dnnl::convolution_forward::desc desc(
      prop_kind::forward_inference, algorithm::convolution_winograd, AnyDesc(xg),
      memory::desc({out_g, in_g, 3, 3}, dt::f32, tag::any),
      has_bias ? PlainDesc({out_g}) : memory::desc(), AnyDesc(yg), win.strides, win.dilates,
      win.pad_l, win.pad_r);
  dnnl::convolution_forward::primitive_desc pd;
  try {
    pd = dnnl::convolution_forward::primitive_desc(desc, UserScratchpad(), c.engine());
  } catch (const dnnl::error&) {
    return false;
  }
  if (std::string(pd.impl_info_str()).find("wino") == std::string::npos) return false;
  const float* weights = static_cast<const float*>(c.Value(node.inputs[1]).get_data_handle());
  std::vector<memory::desc> outs;
  std::unordered_map<int, memory> concat_args;
  for (int64_t g = 0; g < groups; ++g) {
    memory slice = c.ViewOf(in, in.get_desc().submemory_desc(Dims(xg), {0, g * in_g, 0, 0}));
    memory src = c.NewBuffer(pd.src_desc());
    c.AddPrimitive(dnnl::reorder(dnnl::reorder::primitive_desc(slice, src, UserScratchpad())),
                   {{DNNL_ARG_FROM, slice}, {DNNL_ARG_TO, src}});
    // Group g's weights are rows [g * out_g, (g + 1) * out_g) of the plain OIHW tensor.
    memory w_plain(memory::desc({out_g, in_g, 3, 3}, dt::f32, tag::oihw), c.engine(),
                   const_cast<float*>(weights + g * out_g * in_g * 9));
    std::unordered_map<int, memory> args = {
        {DNNL_ARG_SRC, src},
        {DNNL_ARG_WEIGHTS, c.ReorderNow(w_plain, pd.weights_desc())},
        {DNNL_ARG_DST, c.NewBuffer(pd.dst_desc())}};
    if (has_bias) {
      const float* bias = static_cast<const float*>(c.Value(node.inputs[2]).get_data_handle());
      memory b(PlainDesc({out_g}), c.engine(), const_cast<float*>(bias + g * out_g));
      args[DNNL_ARG_BIAS] = c.ReorderNow(b, PlainDesc({out_g}));
    }
    outs.push_back(pd.dst_desc());
    concat_args[DNNL_ARG_MULTIPLE_SRC + static_cast<int>(g)] = args[DNNL_ARG_DST];
    c.AddPrimitive(dnnl::convolution_forward(pd), std::move(args));
  }
  dnnl::concat::primitive_desc cat(1, outs, c.engine(), UserScratchpad());
  memory dst = c.NewBuffer(cat.dst_desc());
  concat_args[DNNL_ARG_DST] = dst;
  c.AddPrimitive(dnnl::concat(cat), std::move(concat_args));
  c.Define(node.outputs[0], dst);
  return true;
}

StatusOr<bool> LowerConv(Compiler& c, const Node& node) {
  const Graph& g = c.graph();
  if (!g.IsConstant(node.inputs[1]) || (node.NumInputs() > 2 && !g.IsConstant(node.inputs[2]))) {
    return false;  // weights computed at run time
  }
  const Shape& x = ShapeOf(c, node.inputs[0]);
  const Shape& w = ShapeOf(c, node.inputs[1]);
  const Shape& y = ShapeOf(c, node.outputs[0]);
  const int64_t group = node.IntAttr("group", 1);
  ASSIGN_OR_RETURN(WindowDims win,
                   OneDnnWindow(c, node, x, std::vector<int64_t>(w.begin() + 2, w.end()), y));
  memory::dims wdims = Dims(w);
  if (group > 1) {
    wdims = {group, w[0] / group};
    wdims.insert(wdims.end(), w.begin() + 1, w.end());
  }
  const bool has_bias = node.NumInputs() > 2;
  const memory::desc bias_md = has_bias ? PlainDesc({w[0]}) : memory::desc();
  const dnnl::convolution_forward::desc desc(
      prop_kind::forward_inference, algorithm::convolution_direct, AnyDesc(x),
      memory::desc(wdims, dt::f32, tag::any), bias_md, AnyDesc(y), win.strides, win.dilates,
      win.pad_l, win.pad_r);
  if (group > 1 && w[1] % 16 == 0 && (w[0] / group) % 16 == 0 &&
      WinogradCandidate({w[0], w[1] * group, w[2], w[3]}, 1, win) &&
      LowerGroupedWinograd(c, node, win)) {
    return true;
  }
  ConvFusion fusion;
  std::optional<dnnl::convolution_forward::primitive_desc> wino;
  if (WinogradCandidate(w, group, win)) {
    const dnnl::convolution_forward::desc wino_desc(
        prop_kind::forward_inference, algorithm::convolution_winograd, AnyDesc(x),
        memory::desc(wdims, dt::f32, tag::any), bias_md, AnyDesc(y), win.strides, win.dilates,
        win.pad_l, win.pad_r);
    wino = ChooseWinograd(c, node, wino_desc, fusion);
  }
  const dnnl::convolution_forward::primitive_desc pd =
      wino ? *wino : ChooseConvFusion(c, node, desc, fusion);
  // The weights as stored (plain OIHW), seen with the group split out when grouped.
  memory plain_w = c.Value(node.inputs[1]);
  memory w_view(memory::desc(wdims, dt::f32,
                             group > 1 ? (w.size() == 4 ? tag::goihw : tag::goiw)
                                       : (w.size() == 4 ? tag::oihw : tag::oiw)),
                c.engine(), plain_w.get_data_handle());
  std::unordered_map<int, memory> args = std::move(fusion.srcs);
  args[DNNL_ARG_SRC] = c.As(node.inputs[0], pd.src_desc());
  args[DNNL_ARG_WEIGHTS] = c.ReorderNow(w_view, pd.weights_desc());
  args[DNNL_ARG_DST] = fusion.accumulate ? fusion.accumulate : c.NewBuffer(pd.dst_desc());
  if (has_bias) args[DNNL_ARG_BIAS] = c.Value(node.inputs[2]);
  const memory dst = args[DNNL_ARG_DST];
  c.AddPrimitive(dnnl::convolution_forward(pd), std::move(args));
  if (fusion.separate) {
    const Activation& act = *fusion.separate;
    dnnl::eltwise_forward::primitive_desc act_pd(
        dnnl::eltwise_forward::desc(prop_kind::forward_inference, act.alg, dst.get_desc(),
                                    act.alg == algorithm::eltwise_swish ? 1.0f : 0.0f, 0.0f),
        UserScratchpad(), c.engine());
    c.AddPrimitive(dnnl::eltwise_forward(act_pd), {{DNNL_ARG_SRC, dst}, {DNNL_ARG_DST, dst}});
  }
  c.Define(fusion.output, dst);
  MarkAllFused(c, fusion.nodes);  // only now: everything that could throw has run
  return true;
}

StatusOr<bool> LowerBatchNorm(Compiler& c, const Node& node) {
  for (size_t i = 1; i < 5; ++i) {
    if (!c.graph().IsConstant(node.inputs[i])) return false;
  }
  memory src = c.Value(node.inputs[0]);
  const auto flags = dnnl::normalization_flags::use_global_stats |
                     dnnl::normalization_flags::use_scale | dnnl::normalization_flags::use_shift;
  dnnl::batch_normalization_forward::primitive_desc pd(
      dnnl::batch_normalization_forward::desc(prop_kind::forward_inference, src.get_desc(),
                                              node.FloatAttr("epsilon", 1e-5f), flags),
      UserScratchpad(), c.engine());
  memory dst = c.NewBuffer(pd.dst_desc());
  c.AddPrimitive(dnnl::batch_normalization_forward(pd),
                 {{DNNL_ARG_SRC, src},
                  {DNNL_ARG_SCALE, c.Value(node.inputs[1])},
                  {DNNL_ARG_SHIFT, c.Value(node.inputs[2])},
                  {DNNL_ARG_MEAN, c.Value(node.inputs[3])},
                  {DNNL_ARG_VARIANCE, c.Value(node.inputs[4])},
                  {DNNL_ARG_DST, dst}});
  c.Define(node.outputs[0], dst);
  return true;
}

StatusOr<bool> LowerEltwise(Compiler& c, const Node& node, algorithm alg) {
  memory src = c.Value(node.inputs[0]);
  dnnl::eltwise_forward::primitive_desc pd(
      dnnl::eltwise_forward::desc(prop_kind::forward_inference, alg, src.get_desc(), 0.0f, 0.0f),
      UserScratchpad(), c.engine());
  memory dst = c.NewBuffer(pd.dst_desc());
  c.AddPrimitive(dnnl::eltwise_forward(pd), {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}});
  c.Define(node.outputs[0], dst);
  return true;
}

// nChw16c / nChw8c (what oneDNN's Winograd convolution writes), or nullopt.
std::optional<memory::format_tag> ChannelBlocked(const memory::desc& d) {
  const auto& blocking = d.data.format_desc.blocking;
  if (d.data.format_kind != dnnl_blocked || d.data.ndims != 4 || blocking.inner_nblks != 1 ||
      blocking.inner_idxs[0] != 1) {
    return std::nullopt;
  }
  if (blocking.inner_blks[0] == 16) return memory::format_tag::aBcd16b;
  if (blocking.inner_blks[0] == 8) return memory::format_tag::aBcd8b;
  return std::nullopt;
}

// oneDNN's binary needs src0 to have the output's shape; src1 may broadcast (size-1 dims).
StatusOr<bool> LowerBinary(Compiler& c, const Node& node, algorithm alg) {
  std::string a = node.inputs[0], b = node.inputs[1];
  const Shape& y = ShapeOf(c, node.outputs[0]);
  if (ShapeOf(c, a) != y) {
    if (alg == algorithm::binary_div || ShapeOf(c, b) != y) return false;
    std::swap(a, b);  // Add and Mul commute
  }
  memory src0 = c.Value(a);
  memory src1;
  // oneDNN 2.6's jit binary wants both sources in one layout; mixed layouts (an NHWC operand
  // beside a Winograd conv's nChw16c output) run on ref:any, 50x slower: reorder the second.
  const std::optional<memory::format_tag> blocked = ChannelBlocked(src0.get_desc());
  if (ShapeOf(c, b) == y) {
    src1 = c.Value(b);
    if (blocked && src1.get_desc() != src0.get_desc()) src1 = c.As(b, src0.get_desc());
  } else {
    Shape padded = ShapeOf(c, b);
    padded.insert(padded.begin(), y.size() - padded.size(), 1);
    src1 = c.ViewOf(c.Plain(b), PlainDesc(padded));
    if (blocked && padded.size() == 4 && padded[1] == y[1] && padded[2] == 1 && padded[3] == 1) {
      // A per-channel gate {N,C,1,1}: the same channel blocking (a reorder of N*C values).
      const memory::desc want(Dims(padded), dt::f32, *blocked);
      memory gate = c.NewBuffer(want);
      c.AddPrimitive(dnnl::reorder(dnnl::reorder::primitive_desc(src1, gate, UserScratchpad())),
                     {{DNNL_ARG_FROM, src1}, {DNNL_ARG_TO, gate}});
      src1 = gate;
    }
  }
  dnnl::primitive_attr attr = UserScratchpad();
  std::vector<const Node*> fused;
  const std::string out_name = FuseActivation(c, node.outputs[0], attr, fused);
  dnnl::binary::primitive_desc pd(
      dnnl::binary::desc(alg, src0.get_desc(), src1.get_desc(), src0.get_desc()), attr, c.engine());
  memory dst = c.NewBuffer(pd.dst_desc());
  c.AddPrimitive(dnnl::binary(pd),
                 {{DNNL_ARG_SRC_0, src0}, {DNNL_ARG_SRC_1, src1}, {DNNL_ARG_DST, dst}});
  c.Define(out_name, dst);
  MarkAllFused(c, fused);
  return true;
}

StatusOr<bool> LowerPool(Compiler& c, const Node& node) {
  const Shape& x = ShapeOf(c, node.inputs[0]);
  const Shape& y = ShapeOf(c, node.outputs[0]);
  const bool global = node.op_type == "GlobalAveragePool";
  const std::vector<int64_t> kernel =
      global ? std::vector<int64_t>(x.begin() + 2, x.end()) : node.IntsAttr("kernel_shape");
  ASSIGN_OR_RETURN(WindowDims win, OneDnnWindow(c, node, x, kernel, y));
  algorithm alg = algorithm::pooling_max;
  if (node.op_type != "MaxPool") {
    const bool include_pad = node.IntAttr("count_include_pad", 0) != 0;
    if (include_pad && node.IntAttr("ceil_mode", 0) != 0) return false;  // ONNX counts differently
    alg = include_pad ? algorithm::pooling_avg_include_padding
                      : algorithm::pooling_avg_exclude_padding;
  }
  memory src = c.Value(node.inputs[0]);
  dnnl::pooling_v2_forward::primitive_desc pd(
      dnnl::pooling_v2_forward::desc(prop_kind::forward_inference, alg, src.get_desc(), AnyDesc(y),
                                     win.strides, win.kernel, win.dilates, win.pad_l, win.pad_r),
      UserScratchpad(), c.engine());
  memory dst = c.NewBuffer(pd.dst_desc());
  std::unordered_map<int, memory> args = {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}};
  if (pd.workspace_desc().get_size() > 0)
    args[DNNL_ARG_WORKSPACE] = c.NewBuffer(pd.workspace_desc());
  c.AddPrimitive(dnnl::pooling_v2_forward(pd), std::move(args));
  c.Define(node.outputs[0], dst);
  return true;
}

StatusOr<bool> LowerConcat(Compiler& c, const Node& node) {
  const int64_t rank = static_cast<int64_t>(ShapeOf(c, node.outputs[0]).size());
  int64_t axis = node.IntAttr("axis", c.graph().opset < 4 ? 1 : 0);
  if (axis < 0) axis += rank;
  std::vector<memory::desc> descs;
  std::unordered_map<int, memory> args;
  for (size_t i = 0; i < node.inputs.size(); ++i) {
    memory m = c.Value(node.inputs[i]);
    descs.push_back(m.get_desc());
    args[DNNL_ARG_MULTIPLE_SRC + static_cast<int>(i)] = m;
  }
  // Channels-last inputs give a channels-last output (oneDNN would order a stacked size-1 axis
  // by its arbitrary stride): ParNet's interleave, a stack along a new axis after the channels,
  // then reshapes to an NHWC tensor without a copy.
  bool channels_last = true;
  for (const memory::desc& d : descs) {
    auto strides = StridesOf(d);
    channels_last = channels_last && strides && ChannelsLast(d.dims(), *strides);
  }
  const memory::dims out_dims = Dims(ShapeOf(c, node.outputs[0]));
  dnnl::concat::primitive_desc pd =
      channels_last && axis > 0 && axis + 2 < rank
          ? dnnl::concat::primitive_desc(
                memory::desc(out_dims, dt::f32, ChannelsLastStrides(out_dims)),
                static_cast<int>(axis), descs, c.engine(), UserScratchpad())
          : dnnl::concat::primitive_desc(static_cast<int>(axis), descs, c.engine(),
                                         UserScratchpad());
  memory dst = c.NewBuffer(pd.dst_desc());
  args[DNNL_ARG_DST] = dst;
  c.AddPrimitive(dnnl::concat(pd), std::move(args));
  c.Define(node.outputs[0], dst);
  return true;
}

// Gemm with constant B as a matmul: Y = A x B (+ C as bias broadcast along rows).
StatusOr<bool> LowerGemm(Compiler& c, const Node& node) {
  const Graph& g = c.graph();
  if (node.IntAttr("transA", 0) != 0 || node.FloatAttr("alpha", 1.0f) != 1.0f ||
      node.FloatAttr("beta", 1.0f) != 1.0f || !g.IsConstant(node.inputs[1])) {
    return false;
  }
  const Shape& y = ShapeOf(c, node.outputs[0]);
  const int64_t k = ShapeOf(c, node.inputs[0])[1], n = y[1];
  const bool has_bias = node.NumInputs() > 2;
  // oneDNN's bias is one row broadcast down the M rows: C must be [N] or [1,N]. A C of [M,1] (a
  // column) or [M,N] has as many elements when M == N or M == 1 but means something else.
  if (has_bias) {
    const Shape& cs = ShapeOf(c, node.inputs[2]);
    if (!g.IsConstant(node.inputs[2]) || (cs != Shape{n} && cs != Shape{1, n})) return false;
  }
  // B as stored, seen as [K, N] (transposed in place when transB).
  const bool tb = node.IntAttr("transB", 0) != 0;
  memory b_view(memory::desc({k, n}, dt::f32, tb ? memory::dims{1, k} : memory::dims{n, 1}),
                c.engine(), c.Value(node.inputs[1]).get_data_handle());
  const memory::desc bias_md = has_bias ? PlainDesc({1, n}) : memory::desc();
  dnnl::matmul::primitive_desc pd(
      dnnl::matmul::desc(PlainDesc(ShapeOf(c, node.inputs[0])),
                         memory::desc({k, n}, dt::f32, tag::any), bias_md, PlainDesc(y)),
      UserScratchpad(), c.engine());
  memory dst = c.NewBuffer(pd.dst_desc());
  std::unordered_map<int, memory> args = {
      {DNNL_ARG_SRC, c.Plain(node.inputs[0])},
      {DNNL_ARG_WEIGHTS, c.ReorderNow(b_view, pd.weights_desc())},
      {DNNL_ARG_DST, dst}};
  if (has_bias) {
    args[DNNL_ARG_BIAS] = memory(bias_md, c.engine(), c.Value(node.inputs[2]).get_data_handle());
  }
  c.AddPrimitive(dnnl::matmul(pd), std::move(args));
  c.Define(node.outputs[0], dst);
  return true;
}

// Ops that only reinterpret a buffer: the output is a strided view of the input's memory when
// its layout allows (an NHWC activation reshaped along its channels stays NHWC), else of the
// input in plain layout.
bool LowerView(Compiler& c, const Node& node) {
  const memory in = c.Value(node.inputs[0]);
  const memory::dims to = Dims(ShapeOf(c, node.outputs[0]));
  if (auto strides = StridesOf(in.get_desc())) {
    if (auto view = ReshapeStrides(in.get_desc().dims(), *strides, to)) {
      c.Define(node.outputs[0], c.ViewOf(in, memory::desc(to, dt::f32, *view)));
      return true;
    }
  }
  memory plain = c.Plain(node.inputs[0]);
  c.Define(node.outputs[0], c.ViewOf(plain, PlainDesc(ShapeOf(c, node.outputs[0]))));
  return true;
}

bool IsZeroPad(Compiler& c, const Node& node) {
  std::vector<int64_t> pads = node.IntsAttr("pads");
  if (c.graph().opset >= 11) {
    if (!c.graph().IsConstant(node.inputs[1])) return false;
    pads = c.graph().constants.at(node.inputs[1]).ToInt64Vector().value();
  }
  for (int64_t p : pads) {
    if (p != 0) return false;
  }
  return true;
}

// Transpose as one oneDNN reorder from a permuted-strides view of the input. A channels-last input
// whose batch and two spatial dims stay in place (ParNet's channel shuffle) gets a channels-last
// output, so the shuffle is one copy between NHWC tensors; anything else is written plain.
bool LowerTranspose(Compiler& c, const Node& node) {
  const Shape& x = ShapeOf(c, node.inputs[0]);
  const Shape& y = ShapeOf(c, node.outputs[0]);
  if (x.empty()) return false;
  std::vector<int64_t> perm(x.size());
  for (size_t i = 0; i < perm.size(); ++i) perm[i] = static_cast<int64_t>(perm.size() - 1 - i);
  perm = node.IntsAttr("perm", perm);
  memory in = c.Value(node.inputs[0]);
  std::optional<memory::dims> in_strides = StridesOf(in.get_desc());
  if (!in_strides) {
    in = c.Plain(node.inputs[0]);
    in_strides = StridesOf(in.get_desc());
  }
  memory::dims view_strides(perm.size());
  for (size_t i = 0; i < perm.size(); ++i) view_strides[i] = (*in_strides)[perm[i]];
  const size_t r = perm.size();
  const bool keeps_n_h_w = r >= 4 && perm[0] == 0 && perm[r - 2] == static_cast<int64_t>(r - 2) &&
                           perm[r - 1] == static_cast<int64_t>(r - 1);
  const memory::desc dst_desc = keeps_n_h_w && ChannelsLast(Dims(x), *in_strides)
                                    ? memory::desc(Dims(y), dt::f32, ChannelsLastStrides(Dims(y)))
                                    : PlainDesc(y);
  memory src = c.ViewOf(in, memory::desc(Dims(y), dt::f32, view_strides));
  memory dst = c.NewBuffer(dst_desc);
  c.AddPrimitive(dnnl::reorder(dnnl::reorder::primitive_desc(src, dst, UserScratchpad())),
                 {{DNNL_ARG_FROM, src}, {DNNL_ARG_TO, dst}});
  c.Define(node.outputs[0], dst);
  return true;
}

// Softmax along one axis. Before opset 13 ONNX normalizes over all axes from `axis` on, which is
// the same only when `axis` is the last one.
bool LowerSoftmax(Compiler& c, const Node& node) {
  const Shape& x = ShapeOf(c, node.inputs[0]);
  const int64_t rank = static_cast<int64_t>(x.size());
  int64_t axis = node.IntAttr("axis", c.graph().opset >= 13 ? -1 : 1);
  if (axis < 0) axis += rank;
  if (c.graph().opset < 13 && axis != rank - 1) return false;
  memory src = c.Plain(node.inputs[0]);
  dnnl::softmax_forward::primitive_desc pd(
      dnnl::softmax_forward::desc(prop_kind::forward_inference, src.get_desc(),
                                  static_cast<int>(axis)),
      UserScratchpad(), c.engine());
  memory dst = c.NewBuffer(pd.dst_desc());
  c.AddPrimitive(dnnl::softmax_forward(pd), {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}});
  c.Define(node.outputs[0], dst);
  return true;
}

}  // namespace

StatusOr<bool> LowerToDnnl(Compiler& c, const Node& node) {
  const std::string& op = node.op_type;
  if (op == "Conv") return LowerConv(c, node);
  if (op == "BatchNormalization") return LowerBatchNorm(c, node);
  if (op == "Relu") return LowerEltwise(c, node, algorithm::eltwise_relu);
  if (op == "Sigmoid") return LowerEltwise(c, node, algorithm::eltwise_logistic);
  if (op == "Add") return LowerBinary(c, node, algorithm::binary_add);
  if (op == "Mul") return LowerBinary(c, node, algorithm::binary_mul);
  if (op == "Div") return LowerBinary(c, node, algorithm::binary_div);
  if (op == "GlobalAveragePool" || op == "AveragePool" || op == "MaxPool")
    return LowerPool(c, node);
  if (op == "Concat") return LowerConcat(c, node);
  if (op == "Gemm") return LowerGemm(c, node);
  if (op == "Reshape" || op == "Flatten" || op == "Squeeze" || op == "Unsqueeze" ||
      op == "Identity") {
    return LowerView(c, node);
  }
  if (op == "Pad" && IsZeroPad(c, node)) return LowerView(c, node);
  if (op == "Transpose") return LowerTranspose(c, node);
  if (op == "Softmax") return LowerSoftmax(c, node);
  return false;
}

}  // namespace parnet::cpu
