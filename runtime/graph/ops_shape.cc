// Reference kernels for ops that move data without arithmetic: Concat, Pad, Flatten, Reshape,
// Transpose, and the load-time ops Constant, Shape, Gather, Unsqueeze, Squeeze, Slice. They copy
// bytes, so they serve every element type.
#include <algorithm>
#include <cstring>
#include <numeric>

#include "runtime/graph/kernel_util.h"
#include "runtime/graph/ops.h"

namespace parnet {
namespace {

StatusOr<std::vector<TensorType>> One(DType dtype, Shape shape) {
  return std::vector<TensorType>{{dtype, std::move(shape)}};
}

Status CopyAll(const OpContext& ctx, std::vector<Tensor>& out) {
  std::memcpy(out[0].raw_data(), ctx.value(0).raw_data(), ctx.value(0).num_bytes());
  return Status::Ok();
}

// ---- Concat ----
// Before opset 4 the axis was optional with default 1; from 4 on it is required.
int64_t ConcatAxis(const OpContext& ctx) { return ctx.node.IntAttr("axis", ctx.opset < 4 ? 1 : 0); }

StatusOr<std::vector<TensorType>> InferConcat(const OpContext& ctx) {
  const TensorType& first = ctx.type(0);
  const int64_t rank = static_cast<int64_t>(first.shape.size());
  ASSIGN_OR_RETURN(int64_t axis, ops::NormalizeAxis(ctx, ConcatAxis(ctx), rank));
  Shape out = first.shape;
  out[axis] = 0;
  for (size_t i = 0; i < ctx.in_types.size(); ++i) {
    const TensorType& t = ctx.type(i);
    bool match = t.dtype == first.dtype && t.shape.size() == first.shape.size();
    for (int64_t d = 0; match && d < rank; ++d) match = d == axis || t.shape[d] == first.shape[d];
    if (!match) {
      return ctx.Error("input " + std::to_string(i) + " is " + t.ToString() + " but input 0 is " +
                       first.ToString() +
                       "; all inputs need the same type and shape except along axis " +
                       std::to_string(axis));
    }
    out[axis] += t.shape[axis];
  }
  return One(first.dtype, out);
}

Status RunConcat(const OpContext& ctx, std::vector<Tensor>& out) {
  Tensor& y = out[0];
  const int64_t axis = ops::NormalizeAxis(ctx, ConcatAxis(ctx), y.rank()).value();
  const size_t esize = DTypeSize(y.dtype());
  int64_t outer = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= y.dim(d);
  const int64_t out_row = y.num_elements() / std::max<int64_t>(outer, 1) * esize;
  auto* dst = static_cast<std::byte*>(y.raw_data());
  int64_t col = 0;
  for (const Tensor* in : ctx.in_values) {
    const int64_t row = in->num_elements() / std::max<int64_t>(outer, 1) * esize;
    const auto* src = static_cast<const std::byte*>(in->raw_data());
    for (int64_t o = 0; o < outer; ++o) std::memcpy(dst + o * out_row + col, src + o * row, row);
    col += row;
  }
  return Status::Ok();
}

// ---- Pad ----
Status CheckPad(const Node& node, int64_t opset) {
  const std::string mode = node.StringAttr("mode", "constant");
  if (mode != "constant") {
    return Unimplemented(node.Describe() + ": mode='" + mode +
                         "' is not supported; supported: constant");
  }
  return Status::Ok();
}

StatusOr<std::vector<int64_t>> PadAmounts(const OpContext& ctx) {
  if (ctx.opset < 11) return ctx.node.IntsAttr("pads");
  return ctx.RequireInts(1, "pads");
}

StatusOr<std::vector<TensorType>> InferPad(const OpContext& ctx) {
  ASSIGN_OR_RETURN(std::vector<int64_t> pads, PadAmounts(ctx));
  Shape out = ctx.type(0).shape;
  if (pads.size() != 2 * out.size()) {
    return ctx.Error("pads has " + std::to_string(pads.size()) +
                     " values; need 2 x rank = " + std::to_string(2 * out.size()));
  }
  for (size_t d = 0; d < out.size(); ++d) {
    if (pads[d] < 0 || pads[d + out.size()] < 0) {
      return ctx.Error("negative pads are not supported, got " + ShapeToString(pads));
    }
    out[d] += pads[d] + pads[d + out.size()];
  }
  if (ctx.HasInput(2) &&
      (ctx.type(2).dtype != ctx.type(0).dtype || NumElements(ctx.type(2).shape) != 1)) {
    return ctx.Error("constant_value must be one " + DTypeName(ctx.type(0).dtype) + " value, got " +
                     ctx.type(2).ToString());
  }
  return One(ctx.type(0).dtype, out);
}

Status RunPad(const OpContext& ctx, std::vector<Tensor>& out) {
  const Tensor& x = ctx.value(0);
  Tensor& y = out[0];
  const std::vector<int64_t> pads = PadAmounts(ctx).value();
  const size_t esize = DTypeSize(x.dtype());
  // Fill with the pad value, then copy each innermost row of x to its place.
  RETURN_IF_ERROR(ops::VisitNumeric(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T value = static_cast<T>(ctx.node.FloatAttr("value", 0.0f));
    if (ctx.opset >= 11 && ctx.HasInput(2)) value = ctx.value(2).data<T>()[0];
    std::fill_n(y.data<T>(), y.num_elements(), value);
  }));
  if (x.num_elements() == 0) return Status::Ok();
  const int64_t rank = x.rank();
  if (rank == 0) {  // a scalar has nothing to pad (pads is empty) and no innermost row
    std::memcpy(y.raw_data(), x.raw_data(), esize);
    return Status::Ok();
  }
  const auto ys = ops::Strides(y.shape());
  const int64_t row = x.dim(rank - 1);
  std::vector<int64_t> idx(rank, 0);
  const auto* src = static_cast<const std::byte*>(x.raw_data());
  auto* dst = static_cast<std::byte*>(y.raw_data());
  for (int64_t r = 0; r < x.num_elements() / row; ++r) {
    int64_t off = 0;
    for (int64_t d = 0; d < rank; ++d) off += (idx[d] + pads[d]) * ys[d];
    std::memcpy(dst + off * esize, src + r * row * esize, row * esize);
    for (int64_t d = rank - 1; d-- > 0;) {
      if (++idx[d] < x.dim(d)) break;
      idx[d] = 0;
    }
  }
  return Status::Ok();
}

// ---- Flatten, Reshape ----
StatusOr<std::vector<TensorType>> InferFlatten(const OpContext& ctx) {
  const Shape& s = ctx.type(0).shape;
  const int64_t rank = static_cast<int64_t>(s.size());
  int64_t axis = ctx.node.IntAttr("axis", 1);
  if (axis < 0) axis += rank;
  if (axis < 0 || axis > rank) {
    return ctx.Error("axis " + std::to_string(ctx.node.IntAttr("axis", 1)) +
                     " is out of range for rank " + std::to_string(rank));
  }
  const int64_t outer = NumElements(Shape(s.begin(), s.begin() + axis));
  return One(ctx.type(0).dtype, {outer, NumElements(s) / std::max<int64_t>(outer, 1)});
}

StatusOr<std::vector<TensorType>> InferReshape(const OpContext& ctx) {
  ASSIGN_OR_RETURN(std::vector<int64_t> target, ctx.RequireInts(1, "shape"));
  const Shape& in = ctx.type(0).shape;
  const bool allow_zero = ctx.node.IntAttr("allowzero", 0) != 0;
  Shape out(target.size());
  int64_t infer_at = -1, known = 1;
  for (size_t i = 0; i < target.size(); ++i) {
    if (target[i] == -1) {
      if (infer_at >= 0) return ctx.Error("shape " + ShapeToString(target) + " has two -1");
      infer_at = static_cast<int64_t>(i);
      continue;
    }
    if (target[i] < -1) return ctx.Error("shape " + ShapeToString(target) + " has a value < -1");
    out[i] = target[i] == 0 && !allow_zero ? (i < in.size() ? in[i] : -1) : target[i];
    if (out[i] < 0)
      return ctx.Error("shape " + ShapeToString(target) + " copies dim " + std::to_string(i) +
                       " that input " + ShapeToString(in) + " does not have");
    known *= out[i];
  }
  if (infer_at >= 0) {
    if (known == 0 || NumElements(in) % known != 0) {
      return ctx.Error("cannot infer the -1 in " + ShapeToString(target) + " for input " +
                       ShapeToString(in));
    }
    out[infer_at] = NumElements(in) / known;
  }
  if (NumElements(out) != NumElements(in)) {
    return ctx.Error("cannot reshape " + ShapeToString(in) + " (" +
                     std::to_string(NumElements(in)) + " elements) to " + ShapeToString(out));
  }
  return One(ctx.type(0).dtype, out);
}

// ---- Transpose ----
std::vector<int64_t> Permutation(const OpContext& ctx) {
  const int64_t rank = static_cast<int64_t>(ctx.type(0).shape.size());
  std::vector<int64_t> reversed(rank);
  std::iota(reversed.rbegin(), reversed.rend(), 0);
  return ctx.node.IntsAttr("perm", reversed);
}

StatusOr<std::vector<TensorType>> InferTranspose(const OpContext& ctx) {
  const Shape& in = ctx.type(0).shape;
  const std::vector<int64_t> perm = Permutation(ctx);
  std::vector<int64_t> sorted = perm;
  std::sort(sorted.begin(), sorted.end());
  for (size_t i = 0; i < sorted.size(); ++i) {
    if (sorted.size() != in.size() || sorted[i] != static_cast<int64_t>(i)) {
      return ctx.Error("perm " + ShapeToString(perm) + " is not a permutation of 0.." +
                       std::to_string(static_cast<int64_t>(in.size()) - 1));
    }
  }
  Shape out(in.size());
  for (size_t i = 0; i < in.size(); ++i) out[i] = in[perm[i]];
  return One(ctx.type(0).dtype, out);
}

Status RunTranspose(const OpContext& ctx, std::vector<Tensor>& out) {
  const Tensor& x = ctx.value(0);
  const std::vector<int64_t> perm = Permutation(ctx);
  const auto xs = ops::Strides(x.shape());
  std::vector<int64_t> src_strides(perm.size());
  for (size_t i = 0; i < perm.size(); ++i) src_strides[i] = xs[perm[i]];
  const size_t esize = DTypeSize(x.dtype());
  const auto* src = static_cast<const std::byte*>(x.raw_data());
  auto* dst = static_cast<std::byte*>(out[0].raw_data());
  const std::vector<int64_t> unused(perm.size(), 0);
  ops::ForEachBroadcast(out[0].shape(), src_strides, unused, [&](int64_t i, int64_t s, int64_t) {
    std::memcpy(dst + i * esize, src + s * esize, esize);
  });
  return Status::Ok();
}

// ---- Constant ----
StatusOr<Tensor> ConstantValue(const Node& node) {
  auto attr = [&](const char* key) { return node.attributes.find(key); };
  if (auto it = attr("value"); it != node.attributes.end()) return it->second.t;
  if (auto it = attr("value_float"); it != node.attributes.end())
    return Tensor::Scalar(it->second.f);
  if (auto it = attr("value_int"); it != node.attributes.end()) return Tensor::Scalar(it->second.i);
  if (auto it = attr("value_floats"); it != node.attributes.end()) {
    const auto& v = it->second.floats;
    return Tensor::FromVector<float>({static_cast<int64_t>(v.size())}, v);
  }
  if (auto it = attr("value_ints"); it != node.attributes.end()) {
    const auto& v = it->second.ints;
    return Tensor::FromVector<int64_t>({static_cast<int64_t>(v.size())}, v);
  }
  return Unimplemented(node.Describe() +
                       ": supported are the attributes value, value_float(s) and value_int(s)");
}

Status CheckConstant(const Node& node, int64_t opset) {
  RETURN_IF_ERROR(ConstantValue(node).status());
  if (!ConstantValue(node)->defined()) {
    return Unimplemented(node.Describe() + ": the constant's element type is not supported");
  }
  return Status::Ok();
}

StatusOr<std::vector<TensorType>> InferConstant(const OpContext& ctx) {
  ASSIGN_OR_RETURN(Tensor t, ConstantValue(ctx.node));
  return One(t.dtype(), t.shape());
}

Status RunConstant(const OpContext& ctx, std::vector<Tensor>& out) {
  ASSIGN_OR_RETURN(Tensor t, ConstantValue(ctx.node));
  std::memcpy(out[0].raw_data(), t.raw_data(), t.num_bytes());
  return Status::Ok();
}

// ---- Shape ----
std::pair<int64_t, int64_t> ShapeRange(const OpContext& ctx) {
  const int64_t rank = static_cast<int64_t>(ctx.type(0).shape.size());
  auto clamp = [&](int64_t v) { return std::clamp<int64_t>(v < 0 ? v + rank : v, 0, rank); };
  return {clamp(ctx.node.IntAttr("start", 0)), clamp(ctx.node.IntAttr("end", rank))};
}

StatusOr<std::vector<TensorType>> InferShape(const OpContext& ctx) {
  auto [start, end] = ShapeRange(ctx);
  if (!ctx.type(0).IsStatic()) {
    return ctx.Error("the shape of '" + ctx.node.inputs[0] +
                     "' is not known at load: " + ctx.type(0).ToString());
  }
  return One(DType::kInt64, {std::max<int64_t>(end - start, 0)});
}

Status RunShape(const OpContext& ctx, std::vector<Tensor>& out) {
  auto [start, end] = ShapeRange(ctx);
  for (int64_t i = start; i < end; ++i) out[0].data<int64_t>()[i - start] = ctx.type(0).shape[i];
  return Status::Ok();
}

// ---- Gather ----
StatusOr<std::vector<TensorType>> InferGather(const OpContext& ctx) {
  const Shape& data = ctx.type(0).shape;
  if (data.empty()) return ctx.Error("data must have rank >= 1");
  ASSIGN_OR_RETURN(int64_t axis, ops::NormalizeAxis(ctx, ctx.node.IntAttr("axis", 0),
                                                    static_cast<int64_t>(data.size())));
  if (ctx.type(1).dtype != DType::kInt64 && ctx.type(1).dtype != DType::kInt32) {
    return ctx.Error("indices must be INT64 or INT32, got " + DTypeName(ctx.type(1).dtype));
  }
  Shape out(data.begin(), data.begin() + axis);
  out.insert(out.end(), ctx.type(1).shape.begin(), ctx.type(1).shape.end());
  out.insert(out.end(), data.begin() + axis + 1, data.end());
  return One(ctx.type(0).dtype, out);
}

Status RunGather(const OpContext& ctx, std::vector<Tensor>& out) {
  const Tensor& x = ctx.value(0);
  const int64_t axis = ops::NormalizeAxis(ctx, ctx.node.IntAttr("axis", 0), x.rank()).value();
  ASSIGN_OR_RETURN(std::vector<int64_t> indices, ctx.value(1).ToInt64Vector());
  int64_t outer = 1, inner = DTypeSize(x.dtype());
  for (int64_t d = 0; d < axis; ++d) outer *= x.dim(d);
  for (int64_t d = axis + 1; d < x.rank(); ++d) inner *= x.dim(d);
  const int64_t n = x.dim(axis);
  const auto* src = static_cast<const std::byte*>(x.raw_data());
  auto* dst = static_cast<std::byte*>(out[0].raw_data());
  for (int64_t o = 0; o < outer; ++o) {
    for (size_t j = 0; j < indices.size(); ++j) {
      int64_t k = indices[j] < 0 ? indices[j] + n : indices[j];
      if (k < 0 || k >= n) {
        return ctx.Error("index " + std::to_string(indices[j]) + " is out of range for a dim of " +
                         std::to_string(n));
      }
      std::memcpy(dst + (o * indices.size() + j) * inner, src + (o * n + k) * inner, inner);
    }
  }
  return Status::Ok();
}

// ---- Unsqueeze, Squeeze: axes come from an attribute before opset 13, an input from 13 on ----
StatusOr<std::vector<int64_t>> SqueezeAxes(const OpContext& ctx) {
  if (ctx.opset < 13) return ctx.node.IntsAttr("axes");
  if (!ctx.HasInput(1)) return std::vector<int64_t>{};
  return ctx.RequireInts(1, "axes");
}

StatusOr<std::vector<TensorType>> InferUnsqueeze(const OpContext& ctx) {
  ASSIGN_OR_RETURN(std::vector<int64_t> axes, SqueezeAxes(ctx));
  const Shape& in = ctx.type(0).shape;
  const int64_t rank = static_cast<int64_t>(in.size() + axes.size());
  std::vector<bool> inserted(rank, false);
  for (int64_t a : axes) {
    ASSIGN_OR_RETURN(int64_t axis, ops::NormalizeAxis(ctx, a, rank));
    if (inserted[axis]) return ctx.Error("axis " + std::to_string(a) + " is repeated");
    inserted[axis] = true;
  }
  Shape out;
  for (int64_t d = 0, j = 0; d < rank; ++d) out.push_back(inserted[d] ? 1 : in[j++]);
  return One(ctx.type(0).dtype, out);
}

StatusOr<std::vector<TensorType>> InferSqueeze(const OpContext& ctx) {
  ASSIGN_OR_RETURN(std::vector<int64_t> axes, SqueezeAxes(ctx));
  const Shape& in = ctx.type(0).shape;
  const int64_t rank = static_cast<int64_t>(in.size());
  std::vector<bool> drop(rank, axes.empty());
  if (axes.empty()) {
    for (int64_t d = 0; d < rank; ++d) drop[d] = in[d] == 1;
  }
  for (int64_t a : axes) {
    ASSIGN_OR_RETURN(int64_t axis, ops::NormalizeAxis(ctx, a, rank));
    if (in[axis] != 1) {
      return ctx.Error("cannot squeeze axis " + std::to_string(a) + " of " + ShapeToString(in) +
                       ": its size is not 1");
    }
    drop[axis] = true;
  }
  Shape out;
  for (int64_t d = 0; d < rank; ++d) {
    if (!drop[d]) out.push_back(in[d]);
  }
  return One(ctx.type(0).dtype, out);
}

// ---- Slice ----
struct SliceSpec {
  std::vector<int64_t> start, step;
  Shape out;
};

StatusOr<SliceSpec> ComputeSlice(const OpContext& ctx) {
  std::vector<int64_t> starts, ends, axes, steps;
  if (ctx.opset < 10) {
    starts = ctx.node.IntsAttr("starts");
    ends = ctx.node.IntsAttr("ends");
    axes = ctx.node.IntsAttr("axes");
  } else {
    ASSIGN_OR_RETURN(starts, ctx.RequireInts(1, "starts"));
    ASSIGN_OR_RETURN(ends, ctx.RequireInts(2, "ends"));
    if (ctx.HasInput(3)) {
      ASSIGN_OR_RETURN(axes, ctx.RequireInts(3, "axes"));
    }
    if (ctx.HasInput(4)) {
      ASSIGN_OR_RETURN(steps, ctx.RequireInts(4, "steps"));
    }
  }
  const Shape& in = ctx.type(0).shape;
  const int64_t rank = static_cast<int64_t>(in.size());
  if (axes.empty()) {
    axes.resize(starts.size());
    std::iota(axes.begin(), axes.end(), 0);
  }
  if (steps.empty()) steps.assign(starts.size(), 1);
  if (ends.size() != starts.size() || axes.size() != starts.size() ||
      steps.size() != starts.size()) {
    return ctx.Error("starts, ends, axes and steps must have the same length");
  }
  SliceSpec spec{std::vector<int64_t>(rank, 0), std::vector<int64_t>(rank, 1), in};
  for (size_t i = 0; i < starts.size(); ++i) {
    ASSIGN_OR_RETURN(int64_t axis, ops::NormalizeAxis(ctx, axes[i], rank));
    const int64_t dim = in[axis], step = steps[i];
    if (step == 0) return ctx.Error("a step of 0 is not allowed");
    auto clamp = [&](int64_t v, int64_t lo, int64_t hi) {
      if (v < 0) v += dim;
      return std::clamp(v, lo, hi);
    };
    // Per the ONNX spec: clamp to [0, dim] for positive steps and [-1, dim-1] for negative ones.
    const int64_t s = step > 0 ? clamp(starts[i], 0, dim) : clamp(starts[i], -1, dim - 1);
    const int64_t e = step > 0 ? clamp(ends[i], 0, dim) : clamp(ends[i], -1, dim - 1);
    const int64_t count = step > 0 ? (e - s + step - 1) / step : (s - e - step - 1) / (-step);
    spec.start[axis] = s;
    spec.step[axis] = step;
    spec.out[axis] = std::max<int64_t>(count, 0);
  }
  return spec;
}

StatusOr<std::vector<TensorType>> InferSlice(const OpContext& ctx) {
  ASSIGN_OR_RETURN(SliceSpec spec, ComputeSlice(ctx));
  return One(ctx.type(0).dtype, spec.out);
}

Status RunSlice(const OpContext& ctx, std::vector<Tensor>& out) {
  ASSIGN_OR_RETURN(SliceSpec spec, ComputeSlice(ctx));
  const Tensor& x = ctx.value(0);
  const auto xs = ops::Strides(x.shape());
  std::vector<int64_t> strides(xs.size());
  int64_t base = 0;
  for (size_t d = 0; d < xs.size(); ++d) {
    strides[d] = xs[d] * spec.step[d];
    base += spec.start[d] * xs[d];
  }
  const size_t esize = DTypeSize(x.dtype());
  const auto* src = static_cast<const std::byte*>(x.raw_data()) + base * esize;
  auto* dst = static_cast<std::byte*>(out[0].raw_data());
  const std::vector<int64_t> unused(xs.size(), 0);
  ops::ForEachBroadcast(spec.out, strides, unused, [&](int64_t i, int64_t s, int64_t) {
    std::memcpy(dst + i * esize, src + s * esize, esize);
  });
  return Status::Ok();
}

}  // namespace

std::vector<OpDef> ShapeOps() {
  return {
      {"Concat", OpKind::kCompute, 1, 1, SIZE_MAX, 1, ops::NoAttributes, InferConcat, RunConcat},
      {"Pad", OpKind::kCompute, 2, 1, 3, 1, CheckPad, InferPad, RunPad},
      {"Flatten", OpKind::kCompute, 1, 1, 1, 1, ops::NoAttributes, InferFlatten, CopyAll},
      {"Reshape", OpKind::kCompute, 5, 2, 2, 1, ops::NoAttributes, InferReshape, CopyAll},
      {"Transpose", OpKind::kCompute, 1, 1, 1, 1, ops::NoAttributes, InferTranspose, RunTranspose},
      {"Constant", OpKind::kLoadTime, 1, 0, 0, 1, CheckConstant, InferConstant, RunConstant},
      {"Shape", OpKind::kLoadTime, 1, 1, 1, 1, ops::NoAttributes, InferShape, RunShape, true},
      {"Gather", OpKind::kLoadTime, 1, 2, 2, 1, ops::NoAttributes, InferGather, RunGather},
      // Reshapes, so they also run on runtime data: torch exports torch.stack (ParNet's interleaved
      // concat) as Unsqueeze + Concat.
      {"Unsqueeze", OpKind::kCompute, 1, 1, 2, 1, ops::NoAttributes, InferUnsqueeze, CopyAll},
      {"Squeeze", OpKind::kCompute, 1, 1, 2, 1, ops::NoAttributes, InferSqueeze, CopyAll},
      {"Slice", OpKind::kLoadTime, 1, 1, 5, 1, ops::NoAttributes, InferSlice, RunSlice},
  };
}

}  // namespace parnet
