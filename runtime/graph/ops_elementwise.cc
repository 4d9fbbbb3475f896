// Element-wise reference kernels: Relu, Sigmoid, Identity, Add, Mul, Div, Cast.
#include <cmath>
#include <cstring>
#include <limits>
#include <string>

#include "runtime/graph/kernel_util.h"
#include "runtime/graph/ops.h"

namespace parnet {
namespace {

StatusOr<std::vector<TensorType>> SameAsInput(const OpContext& ctx) {
  return std::vector<TensorType>{ctx.type(0)};
}

StatusOr<std::vector<TensorType>> InferUnaryFloat(const OpContext& ctx) {
  RETURN_IF_ERROR(ops::RequireDTypes(ctx, {DType::kFloat32, DType::kFloat64}));
  return SameAsInput(ctx);
}

StatusOr<std::vector<TensorType>> InferRelu(const OpContext& ctx) {
  RETURN_IF_ERROR(ops::RequireDTypes(ctx, {DType::kFloat32, DType::kFloat64, DType::kInt8,
                                           DType::kInt16, DType::kInt32, DType::kInt64}));
  return SameAsInput(ctx);
}

template <typename Op>
Status RunUnary(const OpContext& ctx, std::vector<Tensor>& out, Op op) {
  const Tensor& x = ctx.value(0);
  return ops::VisitNumeric(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if constexpr (!std::is_same_v<T, bool>) {
      const T* in = x.data<T>();
      T* o = out[0].data<T>();
      for (int64_t i = 0; i < x.num_elements(); ++i) o[i] = op(in[i]);
    }
  });
}

Status RunRelu(const OpContext& ctx, std::vector<Tensor>& out) {
  return RunUnary(ctx, out, [](auto v) { return v > decltype(v){0} ? v : decltype(v){0}; });
}

Status RunSigmoid(const OpContext& ctx, std::vector<Tensor>& out) {
  // 1 / (1 + exp(-v)) overflows harmlessly to 0 for very negative v; no special casing needed.
  return RunUnary(ctx, out, [](auto v) {
    using T = decltype(v);
    return static_cast<T>(1.0 / (1.0 + std::exp(-static_cast<double>(v))));
  });
}

Status RunIdentity(const OpContext& ctx, std::vector<Tensor>& out) {
  std::memcpy(out[0].raw_data(), ctx.value(0).raw_data(), ctx.value(0).num_bytes());
  return Status::Ok();
}

// Before opset 7, broadcasting was opt-in (broadcast=1, with an axis) and followed other rules;
// without it both shapes must be equal, which numpy broadcasting handles the same way.
Status CheckBinary(const Node& node, int64_t opset) {
  if (opset < 7 && node.IntAttr("broadcast", 0) != 0) {
    return Unimplemented(node.Describe() +
                         ": the legacy broadcast=1 attribute (opset < 7) is not "
                         "supported; re-export with opset 7 or newer");
  }
  return Status::Ok();
}

StatusOr<std::vector<TensorType>> InferBinary(const OpContext& ctx) {
  if (ctx.type(0).dtype != ctx.type(1).dtype) {
    return ctx.Error("inputs have different types " + DTypeName(ctx.type(0).dtype) + " and " +
                     DTypeName(ctx.type(1).dtype) + "; ONNX requires the same type");
  }
  RETURN_IF_ERROR(ops::RequireDTypes(
      ctx, {DType::kFloat32, DType::kFloat64, DType::kInt8, DType::kInt16, DType::kInt32,
            DType::kInt64, DType::kUInt8, DType::kUInt16, DType::kUInt32, DType::kUInt64}));
  ASSIGN_OR_RETURN(Shape shape, ops::BroadcastShapes(ctx, ctx.type(0).shape, ctx.type(1).shape));
  return std::vector<TensorType>{{ctx.type(0).dtype, shape}};
}

// `op(a, b, out)` writes out and returns nullptr, or returns what makes the element undefined.
template <typename Op>
Status RunBinary(const OpContext& ctx, std::vector<Tensor>& out, Op op) {
  const Tensor& a = ctx.value(0);
  const Tensor& b = ctx.value(1);
  const Shape& shape = out[0].shape();
  const auto sa = ops::BroadcastStrides(a.shape(), shape);
  const auto sb = ops::BroadcastStrides(b.shape(), shape);
  Status status;
  RETURN_IF_ERROR(ops::VisitNumeric(a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if constexpr (!std::is_same_v<T, bool>) {
      const T* pa = a.data<T>();
      const T* pb = b.data<T>();
      T* po = out[0].data<T>();
      ops::ForEachBroadcast(shape, sa, sb, [&](int64_t i, int64_t ia, int64_t ib) {
        if (!status.ok()) return;
        if (const char* problem = op(pa[ia], pb[ib], po[i])) {
          status = ctx.Error(std::string(problem) + " at output element " + std::to_string(i) +
                             " (" + std::to_string(pa[ia]) + " / " + std::to_string(pb[ib]) +
                             "); integer Div is undefined there: check the divisor's values");
        }
      });
    }
  }));
  return status;
}

Status RunAdd(const OpContext& ctx, std::vector<Tensor>& out) {
  return RunBinary(ctx, out, [](auto a, auto b, auto& o) -> const char* {
    o = static_cast<std::remove_reference_t<decltype(o)>>(a + b);
    return nullptr;
  });
}

Status RunMul(const OpContext& ctx, std::vector<Tensor>& out) {
  return RunBinary(ctx, out, [](auto a, auto b, auto& o) -> const char* {
    o = static_cast<std::remove_reference_t<decltype(o)>>(a * b);
    return nullptr;
  });
}

Status RunDiv(const OpContext& ctx, std::vector<Tensor>& out) {
  // Integer Div truncates toward zero, as C++ and ONNX's reference implementation do.
  // The smallest signed value divided by -1 does not fit (and traps on x86), like b == 0.
  return RunBinary(ctx, out, [](auto a, auto b, auto& o) -> const char* {
    using T = decltype(a);
    if constexpr (std::is_integral_v<T>) {
      if (b == 0) return "integer division by zero";
      if constexpr (std::is_signed_v<T>) {
        if (a == std::numeric_limits<T>::min() && b == T{-1}) {
          return "integer division overflow (the smallest value divided by -1)";
        }
      }
    }
    o = static_cast<T>(a / b);
    return nullptr;
  });
}

Status CheckCast(const Node& node, int64_t opset) {
  if (!node.HasAttr("to")) return InvalidArgument(node.Describe() + ": attribute 'to' is missing");
  const DType to = DTypeFromOnnx(static_cast<int>(node.IntAttr("to", 0)));
  if (to == DType::kUndefined || to == DType::kFloat16 || to == DType::kBFloat16) {
    return Unimplemented(node.Describe() + ": cast to ONNX type " +
                         std::to_string(node.IntAttr("to", 0)) +
                         " is not supported; supported: numeric types and BOOL (not FP16/BF16)");
  }
  return Status::Ok();
}

StatusOr<std::vector<TensorType>> InferCast(const OpContext& ctx) {
  const DType to = DTypeFromOnnx(static_cast<int>(ctx.node.IntAttr("to", 0)));
  if (ctx.type(0).dtype == DType::kFloat16 || ctx.type(0).dtype == DType::kBFloat16) {
    return ctx.Unsupported("cast from " + DTypeName(ctx.type(0).dtype) + " is not supported");
  }
  return std::vector<TensorType>{{to, ctx.type(0).shape}};
}

Status RunCast(const OpContext& ctx, std::vector<Tensor>& out) {
  const Tensor& x = ctx.value(0);
  return ops::VisitNumeric(x.dtype(), [&](auto in_tag) {
    using In = decltype(in_tag);
    const In* in = x.data<In>();
    (void)ops::VisitNumeric(out[0].dtype(), [&](auto out_tag) {
      using Out = decltype(out_tag);
      Out* o = out[0].data<Out>();
      for (int64_t i = 0; i < x.num_elements(); ++i) o[i] = static_cast<Out>(in[i]);
    });
  });
}

}  // namespace

std::vector<OpDef> ElementwiseOps() {
  return {
      {"Relu", OpKind::kCompute, 1, 1, 1, 1, ops::NoAttributes, InferRelu, RunRelu},
      {"Sigmoid", OpKind::kCompute, 1, 1, 1, 1, ops::NoAttributes, InferUnaryFloat, RunSigmoid},
      {"Identity", OpKind::kCompute, 1, 1, 1, 1, ops::NoAttributes, SameAsInput, RunIdentity},
      {"Add", OpKind::kCompute, 1, 2, 2, 1, CheckBinary, InferBinary, RunAdd},
      {"Mul", OpKind::kCompute, 1, 2, 2, 1, CheckBinary, InferBinary, RunMul},
      {"Div", OpKind::kCompute, 1, 2, 2, 1, CheckBinary, InferBinary, RunDiv},
      {"Cast", OpKind::kLoadTime, 6, 1, 1, 1, CheckCast, InferCast, RunCast},
  };
}

}  // namespace parnet
