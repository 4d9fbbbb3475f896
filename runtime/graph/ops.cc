#include "runtime/graph/ops.h"

#include <algorithm>

namespace parnet {

StatusOr<const Tensor*> OpContext::RequireValue(size_t i, std::string_view role) const {
  if (!HasInput(i))
    return Error("input " + std::to_string(i) + " (" + std::string(role) +
                 ") is required but missing");
  if (in_values[i] == nullptr) {
    return Error("input " + std::to_string(i) + " '" + node.inputs[i] + "' (" + std::string(role) +
                 ") must be known at load time, but it depends on runtime data; parnet folds "
                 "shape computations at load and cannot run data-dependent shapes: export the "
                 "model so that this input is a constant or computed from input shapes only");
  }
  return in_values[i];
}

StatusOr<std::vector<int64_t>> OpContext::RequireInts(size_t i, std::string_view role) const {
  ASSIGN_OR_RETURN(const Tensor* t, RequireValue(i, role));
  auto ints = t->ToInt64Vector();
  if (!ints.ok())
    return Error("input '" + node.inputs[i] + "' (" + std::string(role) +
                 "): " + ints.status().message());
  return ints;
}

Status OpContext::Error(const std::string& message) const {
  return InvalidArgument(node.Describe() + ": " + message);
}

Status OpContext::Unsupported(const std::string& message) const {
  return Unimplemented(node.Describe() + ": " + message);
}

namespace {

const std::vector<OpDef>& Table() {
  static const std::vector<OpDef> table = [] {
    std::vector<OpDef> all;
    for (auto part : {ElementwiseOps(), LinearOps(), PoolNormOps(), ShapeOps()}) {
      all.insert(all.end(), part.begin(), part.end());
    }
    return all;
  }();
  return table;
}

}  // namespace

const OpDef* FindOp(std::string_view op_type) {
  for (const OpDef& def : Table()) {
    if (def.type == op_type) return &def;
  }
  return nullptr;
}

std::vector<std::string_view> SupportedOps(OpKind kind) {
  std::vector<std::string_view> names;
  for (const OpDef& def : Table()) {
    if (def.kind == kind) names.push_back(def.type);
  }
  std::sort(names.begin(), names.end());
  return names;
}

namespace ops {

StatusOr<int64_t> NormalizeAxis(const OpContext& ctx, int64_t axis, int64_t rank) {
  if (rank == 0) {
    return ctx.Error("axis " + std::to_string(axis) +
                     " refers to a scalar (rank 0), which has no axes; the input needs rank >= 1");
  }
  if (axis < -rank || axis >= rank) {
    return ctx.Error("axis " + std::to_string(axis) + " is out of range for rank " +
                     std::to_string(rank) + "; use -" + std::to_string(rank) + ".." +
                     std::to_string(rank - 1));
  }
  return axis < 0 ? axis + rank : axis;
}

StatusOr<Shape> BroadcastShapes(const OpContext& ctx, const Shape& a, const Shape& b) {
  const size_t rank = std::max(a.size(), b.size());
  Shape out(rank);
  for (size_t i = 0; i < rank; ++i) {
    const int64_t da = i < rank - a.size() ? 1 : a[i - (rank - a.size())];
    const int64_t db = i < rank - b.size() ? 1 : b[i - (rank - b.size())];
    if (da != db && da != 1 && db != 1) {
      return ctx.Error("shapes " + ShapeToString(a) + " and " + ShapeToString(b) +
                       " cannot be broadcast (numpy rules: dimensions must match or be 1)");
    }
    out[i] = da == 1 ? db : da;
  }
  return out;
}

Status NoAttributes(const Node& node, int64_t opset) { return Status::Ok(); }

Status RequireDTypes(const OpContext& ctx, std::initializer_list<DType> dtypes) {
  for (size_t i = 0; i < ctx.in_types.size(); ++i) {
    if (!ctx.HasInput(i)) continue;
    const DType d = ctx.in_types[i].dtype;
    if (std::find(dtypes.begin(), dtypes.end(), d) == dtypes.end()) {
      std::string names;
      for (DType ok : dtypes) names += (names.empty() ? "" : ", ") + DTypeName(ok);
      return ctx.Unsupported("input " + std::to_string(i) + " '" + ctx.node.inputs[i] +
                             "' has type " + DTypeName(d) + "; supported: " + names);
    }
  }
  return Status::Ok();
}

Status RequireSameDType(const OpContext& ctx) {
  for (size_t i = 1; i < ctx.in_types.size(); ++i) {
    if (!ctx.HasInput(i) || ctx.in_types[i].dtype == ctx.in_types[0].dtype) continue;
    return ctx.Error("input " + std::to_string(i) + " '" + ctx.node.inputs[i] + "' is " +
                     DTypeName(ctx.in_types[i].dtype) + " but input 0 '" + ctx.node.inputs[0] +
                     "' is " + DTypeName(ctx.in_types[0].dtype) +
                     "; ONNX requires one element type for all inputs: cast them to the same type");
  }
  return Status::Ok();
}

}  // namespace ops

}  // namespace parnet

namespace parnet::ops {

Status CheckWindowAttributes(const Node& node, bool allow_ceil_mode) {
  const std::string auto_pad = node.StringAttr("auto_pad", "NOTSET");
  if (auto_pad != "NOTSET" && auto_pad != "SAME_UPPER" && auto_pad != "SAME_LOWER" &&
      auto_pad != "VALID") {
    return InvalidArgument(node.Describe() + ": attribute auto_pad='" + auto_pad +
                           "' is not valid; use NOTSET, SAME_UPPER, SAME_LOWER or VALID");
  }
  if (!allow_ceil_mode && node.IntAttr("ceil_mode", 0) != 0) {
    return Unimplemented(node.Describe() + ": attribute ceil_mode=1 is not supported here");
  }
  for (const char* key : {"strides", "dilations"}) {
    for (int64_t v : node.IntsAttr(key)) {
      if (v < 1) {
        return InvalidArgument(node.Describe() + ": attribute " + key + " must be >= 1, got " +
                               std::to_string(v));
      }
    }
  }
  for (int64_t v : node.IntsAttr("pads")) {
    if (v < 0) {
      return Unimplemented(node.Describe() + ": negative pads are not supported, got " +
                           std::to_string(v));
    }
  }
  return Status::Ok();
}

StatusOr<Window> ComputeWindow(const OpContext& ctx, const Shape& in_spatial,
                               const std::vector<int64_t>& kernel) {
  const size_t rank = in_spatial.size();
  const Node& node = ctx.node;
  Window w;
  w.kernel = kernel;
  w.strides = node.IntsAttr("strides", std::vector<int64_t>(rank, 1));
  w.dilations = node.IntsAttr("dilations", std::vector<int64_t>(rank, 1));
  std::vector<int64_t> pads = node.IntsAttr("pads", std::vector<int64_t>(2 * rank, 0));
  if (kernel.size() != rank || w.strides.size() != rank || w.dilations.size() != rank ||
      pads.size() != 2 * rank) {
    return ctx.Error("kernel_shape, strides, dilations and pads must have " + std::to_string(rank) +
                     " (pads " + std::to_string(2 * rank) + ") entries for an input with " +
                     std::to_string(rank) + " spatial dims");
  }
  const std::string auto_pad = node.StringAttr("auto_pad", "NOTSET");
  const bool ceil_mode = node.IntAttr("ceil_mode", 0) != 0;
  w.pad_begin.resize(rank);
  w.pad_end.resize(rank);
  w.out.resize(rank);
  for (size_t i = 0; i < rank; ++i) {
    const int64_t extent = (kernel[i] - 1) * w.dilations[i] + 1;
    if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
      w.out[i] = (in_spatial[i] + w.strides[i] - 1) / w.strides[i];
      const int64_t total =
          std::max<int64_t>(0, (w.out[i] - 1) * w.strides[i] + extent - in_spatial[i]);
      const int64_t small = total / 2;
      w.pad_begin[i] = auto_pad == "SAME_UPPER" ? small : total - small;
      w.pad_end[i] = total - w.pad_begin[i];
      continue;
    }
    if (auto_pad == "NOTSET") {
      w.pad_begin[i] = pads[i];
      w.pad_end[i] = pads[i + rank];
    }
    const int64_t span = in_spatial[i] + w.pad_begin[i] + w.pad_end[i] - extent;
    if (span < 0) {
      return ctx.Error(
          "the window (extent " + std::to_string(extent) + ") is larger than the padded input (" +
          std::to_string(in_spatial[i] + w.pad_begin[i] + w.pad_end[i]) + ") along spatial dim " +
          std::to_string(i) + "; the input is too small for this model");
    }
    w.out[i] = (ceil_mode ? (span + w.strides[i] - 1) / w.strides[i] : span / w.strides[i]) + 1;
  }
  return w;
}

}  // namespace parnet::ops
