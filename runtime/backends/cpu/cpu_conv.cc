// Lowering of Conv to oneDNN 2.x (fp32): the choice of algorithm (Winograd for 3x3 stride 1,
// direct otherwise) and of what the convolution absorbs as post-ops.
#include <cstdlib>
#include <optional>

#include "runtime/backends/cpu/cpu_compiler.h"
#include "runtime/backends/cpu/cpu_layout.h"
#include "runtime/backends/cpu/cpu_lowering_util.h"

namespace parnet::cpu {
namespace {

using dnnl::algorithm;
using dnnl::memory;
using dnnl::prop_kind;
using tag = memory::format_tag;
using dt = memory::data_type;

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
  const Node* op =
      absorb == Absorb::kActivationOnly ? nullptr : FollowingBinary(c, f.output, other);
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
// Whether oneDNN has a Winograd kernel on this CPU that reads nChw16c (AVX-512 in oneDNN 2.6),
// asked once with a small convolution; false when PARNET_CPU_WINOGRAD=0.
bool WinogradAvailable() {
  static const bool available = [] {
    const char* v = std::getenv("PARNET_CPU_WINOGRAD");
    if (v != nullptr && std::string(v) == "0") return false;
    try {
      const dnnl::engine engine(dnnl::engine::kind::cpu, 0);
      const memory::desc act({1, 16, 8, 8}, dt::f32, tag::any);
      const dnnl::convolution_forward::primitive_desc pd(
          {prop_kind::forward_inference,
           algorithm::convolution_winograd,
           act,
           memory::desc({16, 16, 3, 3}, dt::f32, tag::any),
           act,
           {1, 1},
           {1, 1},
           {1, 1}},
          engine);
      return std::string(pd.impl_info_str()).find("wino") != std::string::npos &&
             pd.src_desc() == memory::desc({1, 16, 8, 8}, dt::f32, tag::aBcd16b);
    } catch (const dnnl::error&) {
      return false;
    }
  }();
  return available;
}

bool WinogradCandidate(const Shape& w, int64_t group, const WindowDims& win) {
  const bool enabled = WinogradAvailable();
  return enabled && group == 1 && w.size() == 4 && w[2] == 3 && w[3] == 3 &&
         win.strides == memory::dims{1, 1} && win.dilates == memory::dims{0, 0} &&
         win.pad_l == memory::dims{1, 1} && win.pad_r == memory::dims{1, 1};
}

std::optional<dnnl::convolution_forward::primitive_desc> ChooseWinograd(
    Compiler& c, const Node& node, const dnnl::convolution_forward::desc& desc,
    ConvFusion& fusion) {
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
    Compiler& c, const Node& node, const dnnl::convolution_forward::desc& desc,
    ConvFusion& fusion) {
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

}  // namespace

std::optional<memory::desc> WinogradInputDesc(Compiler& c, const std::string& value) {
  const Shape& x = ShapeOf(c, value);
  if (x.size() != 4 || x[1] % 16 != 0) return std::nullopt;
  for (const Node* n : c.Consumers(value)) {
    if (n->op_type != "Conv" || n->inputs[0] != value || !c.graph().IsConstant(n->inputs[1]))
      continue;
    const Shape& w = ShapeOf(c, n->inputs[1]);
    if (w.size() != 4) continue;
    auto win = OneDnnWindow(c, *n, x, {w[2], w[3]}, ShapeOf(c, n->outputs[0]));
    if (win.ok() && WinogradCandidate(w, n->IntAttr("group", 1), *win) && w[0] % 16 == 0)
      return memory::desc(Dims(x), dt::f32, tag::aBcd16b);
  }
  return std::nullopt;
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

}  // namespace parnet::cpu
