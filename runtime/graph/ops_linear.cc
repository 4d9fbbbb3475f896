// Reference kernels for the ops that do the arithmetic: Conv, Gemm, MatMul.
#include <algorithm>

#include "runtime/graph/kernel_util.h"
#include "runtime/graph/ops.h"

namespace parnet {
namespace {

Status CheckConv(const Node& node, int64_t opset) {
  return ops::CheckWindowAttributes(node, /*allow_ceil_mode=*/false);
}

StatusOr<std::vector<TensorType>> InferConv(const OpContext& ctx) {
  RETURN_IF_ERROR(ops::RequireDTypes(ctx, {DType::kFloat32}));
  const Shape& x = ctx.type(0).shape;
  const Shape& w = ctx.type(1).shape;
  if (x.size() != 3 && x.size() != 4) {
    return ctx.Unsupported("input has shape " + ShapeToString(x) +
                           "; supported: 1-D or 2-D convolution (rank 3 or 4 input)");
  }
  if (w.size() != x.size()) {
    return ctx.Error("weight shape " + ShapeToString(w) + " does not match input rank " +
                     std::to_string(x.size()));
  }
  const int64_t group = ctx.node.IntAttr("group", 1);
  if (group < 1 || x[1] != w[1] * group || w[0] % group != 0) {
    return ctx.Error("input channels " + std::to_string(x[1]) + ", weight " + ShapeToString(w) +
                     " and group " + std::to_string(group) +
                     " disagree: need C_in == W[1] * group and W[0] divisible by group");
  }
  if (ctx.HasInput(2) && ctx.type(2).shape != Shape{w[0]}) {
    return ctx.Error("bias shape " + ShapeToString(ctx.type(2).shape) + " must be [" +
                     std::to_string(w[0]) + "]");
  }
  const Shape spatial(x.begin() + 2, x.end());
  const std::vector<int64_t> kernel(w.begin() + 2, w.end());
  const auto attr_kernel = ctx.node.IntsAttr("kernel_shape", kernel);
  if (attr_kernel != kernel) {
    return ctx.Error("kernel_shape " + ShapeToString(attr_kernel) + " disagrees with the weight " +
                     ShapeToString(w));
  }
  ASSIGN_OR_RETURN(ops::Window win, ops::ComputeWindow(ctx, spatial, kernel));
  Shape out = {x[0], w[0]};
  out.insert(out.end(), win.out.begin(), win.out.end());
  return std::vector<TensorType>{{DType::kFloat32, out}};
}

// Direct convolution; 1-D runs as 2-D with height 1. Each output plane is independent, which is
// where the OpenMP loop splits; the innermost loop runs along a contiguous output row.
Status RunConv(const OpContext& ctx, std::vector<Tensor>& outputs) {
  const Tensor& x = ctx.value(0);
  const Tensor& w = ctx.value(1);
  Tensor& y = outputs[0];
  const bool one_d = x.rank() == 3;
  Shape spatial(x.shape().begin() + 2, x.shape().end());
  ASSIGN_OR_RETURN(ops::Window win,
                   ops::ComputeWindow(ctx, spatial, Shape(w.shape().begin() + 2, w.shape().end())));
  if (one_d) {
    for (auto* v : {&win.kernel, &win.strides, &win.dilations, &win.pad_begin, &win.out}) {
      v->insert(v->begin(), 1);
    }
    win.pad_begin[0] = 0;
    spatial.insert(spatial.begin(), 1);
  }
  const int64_t n_batch = x.dim(0), c_in = x.dim(1), ih = spatial[0], iw = spatial[1];
  const int64_t m = w.dim(0), group = ctx.node.IntAttr("group", 1);
  const int64_t c_per_g = c_in / group, m_per_g = m / group;
  const int64_t kh = win.kernel[0], kw = win.kernel[1], oh = win.out[0], ow = win.out[1];
  const int64_t sh = win.strides[0], sw = win.strides[1];
  const int64_t dh = win.dilations[0], dw = win.dilations[1];
  const int64_t ph = win.pad_begin[0], pw = win.pad_begin[1];
  const float* px = x.data<float>();
  const float* pwt = w.data<float>();
  const float* pb = ctx.HasInput(2) ? ctx.value(2).data<float>() : nullptr;
  float* py = y.data<float>();

#pragma omp parallel for schedule(static)
  for (int64_t plane = 0; plane < n_batch * m; ++plane) {
    const int64_t n = plane / m, oc = plane % m, g = oc / m_per_g;
    float* out = py + plane * oh * ow;
    std::fill(out, out + oh * ow, pb ? pb[oc] : 0.0f);
    for (int64_t ic = 0; ic < c_per_g; ++ic) {
      const float* in = px + (n * c_in + g * c_per_g + ic) * ih * iw;
      const float* wk = pwt + (oc * c_per_g + ic) * kh * kw;
      for (int64_t ky = 0; ky < kh; ++ky) {
        for (int64_t kx = 0; kx < kw; ++kx) {
          const float wv = wk[ky * kw + kx];
          const int64_t off_x = kx * dw - pw;
          // Output columns whose input column lies inside [0, iw).
          const int64_t lo = off_x >= 0 ? 0 : (-off_x + sw - 1) / sw;
          const int64_t hi =
              std::min<int64_t>(ow, iw - 1 - off_x < 0 ? 0 : (iw - 1 - off_x) / sw + 1);
          for (int64_t oy = 0; oy < oh; ++oy) {
            const int64_t iy = oy * sh - ph + ky * dh;
            if (iy < 0 || iy >= ih) continue;
            const float* row = in + iy * iw + off_x;
            float* orow = out + oy * ow;
            for (int64_t ox = lo; ox < hi; ++ox) orow[ox] += wv * row[ox * sw];
          }
        }
      }
    }
  }
  return Status::Ok();
}

StatusOr<std::vector<TensorType>> InferGemm(const OpContext& ctx) {
  RETURN_IF_ERROR(ops::RequireDTypes(ctx, {DType::kFloat32, DType::kFloat64}));
  RETURN_IF_ERROR(ops::RequireSameDType(ctx));
  const Shape& a = ctx.type(0).shape;
  const Shape& b = ctx.type(1).shape;
  if (a.size() != 2 || b.size() != 2) {
    return ctx.Error("A " + ShapeToString(a) + " and B " + ShapeToString(b) + " must be 2-D");
  }
  const bool ta = ctx.node.IntAttr("transA", 0) != 0, tb = ctx.node.IntAttr("transB", 0) != 0;
  const int64_t m = ta ? a[1] : a[0], k = ta ? a[0] : a[1];
  const int64_t kb = tb ? b[1] : b[0], n = tb ? b[0] : b[1];
  if (k != kb) {
    return ctx.Error("inner dimensions differ: A " + ShapeToString(a) +
                     (ta ? " (transposed)" : "") + ", B " + ShapeToString(b) +
                     (tb ? " (transposed)" : ""));
  }
  if (ctx.HasInput(2)) {
    ASSIGN_OR_RETURN(Shape c, ops::BroadcastShapes(ctx, ctx.type(2).shape, Shape{m, n}));
    if (c != Shape{m, n})
      return ctx.Error("C " + ShapeToString(ctx.type(2).shape) +
                       " does not broadcast to [M,N] = " + ShapeToString({m, n}));
  }
  return std::vector<TensorType>{{ctx.type(0).dtype, {m, n}}};
}

Status RunGemm(const OpContext& ctx, std::vector<Tensor>& outputs) {
  const Tensor& a = ctx.value(0);
  const Tensor& b = ctx.value(1);
  Tensor& y = outputs[0];
  const bool ta = ctx.node.IntAttr("transA", 0) != 0, tb = ctx.node.IntAttr("transB", 0) != 0;
  const double alpha = ctx.node.FloatAttr("alpha", 1.0f), beta = ctx.node.FloatAttr("beta", 1.0f);
  const int64_t m = y.dim(0), n = y.dim(1), k = ta ? a.dim(0) : a.dim(1);
  return ops::VisitNumeric(a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_floating_point_v<T>) {
      const T* pa = a.data<T>();
      const T* pb = b.data<T>();
      T* py = y.data<T>();
      std::vector<int64_t> cs;
      const T* pc = nullptr;
      if (ctx.HasInput(2)) {
        cs = ops::BroadcastStrides(ctx.value(2).shape(), {m, n});
        pc = ctx.value(2).data<T>();
      }
      for (int64_t i = 0; i < m; ++i) {
        for (int64_t j = 0; j < n; ++j) {
          double acc = 0;
          for (int64_t p = 0; p < k; ++p) {
            acc += static_cast<double>(pa[ta ? p * m + i : i * k + p]) *
                   static_cast<double>(pb[tb ? j * k + p : p * n + j]);
          }
          double c = pc ? static_cast<double>(pc[i * cs[0] + j * cs[1]]) : 0.0;
          py[i * n + j] = static_cast<T>(alpha * acc + beta * c);
        }
      }
    }
  });
}

StatusOr<std::vector<TensorType>> InferMatMul(const OpContext& ctx) {
  RETURN_IF_ERROR(ops::RequireDTypes(ctx, {DType::kFloat32, DType::kFloat64}));
  RETURN_IF_ERROR(ops::RequireSameDType(ctx));
  Shape a = ctx.type(0).shape, b = ctx.type(1).shape;
  if (a.empty() || b.empty()) return ctx.Error("MatMul inputs must have rank >= 1");
  const bool a_vec = a.size() == 1, b_vec = b.size() == 1;
  if (a_vec) a.insert(a.begin(), 1);
  if (b_vec) b.push_back(1);
  if (a.back() != b[b.size() - 2]) {
    return ctx.Error("inner dimensions differ: " + ShapeToString(ctx.type(0).shape) + " x " +
                     ShapeToString(ctx.type(1).shape));
  }
  ASSIGN_OR_RETURN(Shape batch, ops::BroadcastShapes(ctx, Shape(a.begin(), a.end() - 2),
                                                     Shape(b.begin(), b.end() - 2)));
  Shape out = batch;
  if (!a_vec) out.push_back(a[a.size() - 2]);
  if (!b_vec) out.push_back(b.back());
  return std::vector<TensorType>{{ctx.type(0).dtype, out}};
}

Status RunMatMul(const OpContext& ctx, std::vector<Tensor>& outputs) {
  Shape a = ctx.value(0).shape(), b = ctx.value(1).shape();
  if (a.size() == 1) a.insert(a.begin(), 1);
  if (b.size() == 1) b.push_back(1);
  const int64_t m = a[a.size() - 2], k = a.back(), n = b.back();
  const Shape a_batch(a.begin(), a.end() - 2), b_batch(b.begin(), b.end() - 2);
  // Numpy broadcasting of the batch dims (InferMatMul refused incompatible ones; checked again
  // because the kernel also runs on graphs built by hand).
  ASSIGN_OR_RETURN(const Shape batch, ops::BroadcastShapes(ctx, a_batch, b_batch));
  Shape want = batch;
  if (ctx.value(0).rank() > 1) want.push_back(m);
  if (ctx.value(1).rank() > 1) want.push_back(n);
  if (k != b[b.size() - 2] || want != outputs[0].shape()) {
    return ctx.Error("inputs " + ctx.value(0).TypeString() + " x " + ctx.value(1).TypeString() +
                     " do not give the output " + outputs[0].TypeString() +
                     "; specialize the graph before running it");
  }
  const auto sa = ops::BroadcastStrides(a_batch, batch);
  const auto sb = ops::BroadcastStrides(b_batch, batch);
  return ops::VisitNumeric(ctx.value(0).dtype(), [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_floating_point_v<T>) {
      const T* pa = ctx.value(0).data<T>();
      const T* pb = ctx.value(1).data<T>();
      T* py = outputs[0].data<T>();
      ops::ForEachBroadcast(batch, sa, sb, [&](int64_t bi, int64_t oa, int64_t ob) {
        const T* ma = pa + oa * m * k;
        const T* mb = pb + ob * k * n;
        T* my = py + bi * m * n;
        for (int64_t i = 0; i < m; ++i) {
          for (int64_t j = 0; j < n; ++j) {
            double acc = 0;
            for (int64_t p = 0; p < k; ++p) {
              acc += static_cast<double>(ma[i * k + p]) * static_cast<double>(mb[p * n + j]);
            }
            my[i * n + j] = static_cast<T>(acc);
          }
        }
      });
    }
  });
}

}  // namespace

int64_t NodeMacs(const Node& node, const std::vector<TensorType>& in_types,
                 const std::vector<TensorType>& out_types) {
  if (node.op_type == "Conv") {
    const Shape& w = in_types[1].shape;
    int64_t per_output = 1;
    for (size_t i = 1; i < w.size(); ++i) per_output *= w[i];  // C_in/group x kernel
    return NumElements(out_types[0].shape) * per_output;
  }
  if (node.op_type == "Gemm") {
    const Shape& a = in_types[0].shape;
    const int64_t k = node.IntAttr("transA", 0) ? a[0] : a[1];
    return NumElements(out_types[0].shape) * k;
  }
  if (node.op_type == "MatMul") {
    return NumElements(out_types[0].shape) * in_types[0].shape.back();
  }
  return 0;
}

std::vector<OpDef> LinearOps() {
  return {
      {"Conv", OpKind::kCompute, 1, 2, 3, 1, CheckConv, InferConv, RunConv},
      {"Gemm", OpKind::kCompute, 6, 2, 3, 1, ops::NoAttributes, InferGemm, RunGemm},
      {"MatMul", OpKind::kCompute, 1, 2, 2, 1, ops::NoAttributes, InferMatMul, RunMatMul},
  };
}

}  // namespace parnet
