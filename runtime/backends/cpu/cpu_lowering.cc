// Lowering of graph nodes to oneDNN 2.x primitives (fp32). Each function returns false when oneDNN
// does not cover the node as given; oneDNN's own refusals arrive as dnnl::error and are handled
// by the compiler the same way (the node runs on its reference kernel).
#include <cstdlib>
#include <optional>

#include "runtime/backends/cpu/cpu_compiler.h"
#include "runtime/backends/cpu/cpu_layout.h"
#include "runtime/backends/cpu/cpu_lowering_util.h"

namespace parnet::cpu {

using dnnl::algorithm;
using dnnl::memory;
using dnnl::prop_kind;
using tag = memory::format_tag;
using dt = memory::data_type;

const Shape& ShapeOf(Compiler& c, const std::string& value) {
  return c.graph().FindType(value)->shape;
}

memory::desc AnyDesc(const Shape& shape) { return memory::desc(Dims(shape), dt::f32, tag::any); }

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

namespace {

StatusOr<bool> LowerBatchNorm(Compiler& c, const Node& node) {
  for (size_t i = 1; i < 5; ++i) {
    if (!c.graph().IsConstant(node.inputs[i])) return false;
  }
  memory src = c.Value(node.inputs[0]);
  // A stream block's identity BN reads the same input as its Winograd convolution: normalize in
  // the convolution's layout (one reorder, shared with it) so the branch it feeds can be the
  // convolution's sum accumulator.
  if (auto blocked = WinogradInputDesc(c, node.inputs[0]); blocked && StridesOf(src.get_desc()))
    src = c.As(node.inputs[0], *blocked);
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
      // A per-channel gate {N,C,1,1} in the same channel blocking. When C is a multiple of the
      // block, nChw16c of a 1x1 image puts every value where plain NCHW does: a view.
      const memory::desc want(Dims(padded), dt::f32, *blocked);
      const int64_t block = *blocked == memory::format_tag::aBcd16b ? 16 : 8;
      if (padded[1] % block == 0) {
        src1 = c.ViewOf(src1, want);
      } else {
        memory gate = c.NewBuffer(want);
        c.AddPrimitive(dnnl::reorder(dnnl::reorder::primitive_desc(src1, gate, UserScratchpad())),
                       {{DNNL_ARG_FROM, src1}, {DNNL_ARG_TO, gate}});
        src1 = gate;
      }
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
