// Reference kernels for normalization and pooling: BatchNormalization, GlobalAveragePool,
// AveragePool, MaxPool, Softmax.
#include <algorithm>
#include <cmath>
#include <limits>

#include "runtime/graph/kernel_util.h"
#include "runtime/graph/ops.h"

namespace parnet {
namespace {

Status CheckBatchNorm(const Node& node, int64_t opset) {
  if (node.IntAttr("training_mode", 0) != 0) {
    return Unimplemented(node.Describe() +
                         ": training_mode=1 is not supported; export the model in eval() mode");
  }
  // Before opset 7, is_test=0 asked for training behaviour.
  if (opset < 7 && node.IntAttr("is_test", 0) == 0) {
    return Unimplemented(node.Describe() +
                         ": is_test=0 (training) is not supported; export the "
                         "model in eval() mode");
  }
  if (node.IntAttr("spatial", 1) != 1) {
    return Unimplemented(node.Describe() + ": spatial=0 is not supported");
  }
  if (node.outputs.size() > 1) {
    return Unimplemented(node.Describe() +
                         ": the training outputs (mean, var) are not supported; export in eval()");
  }
  return Status::Ok();
}

StatusOr<std::vector<TensorType>> InferBatchNorm(const OpContext& ctx) {
  RETURN_IF_ERROR(ops::RequireDTypes(ctx, {DType::kFloat32}));
  const Shape& x = ctx.type(0).shape;
  if (x.size() < 2) return ctx.Error("input " + ShapeToString(x) + " must have rank >= 2");
  for (size_t i = 1; i < 5; ++i) {
    if (ctx.type(i).shape != Shape{x[1]}) {
      return ctx.Error("parameter '" + ctx.node.inputs[i] + "' has shape " +
                       ShapeToString(ctx.type(i).shape) + ", expected [" + std::to_string(x[1]) +
                       "] (one value per channel)");
    }
  }
  return std::vector<TensorType>{ctx.type(0)};
}

Status RunBatchNorm(const OpContext& ctx, std::vector<Tensor>& outputs) {
  const Tensor& x = ctx.value(0);
  const int64_t n = x.dim(0), c = x.dim(1), inner = x.num_elements() / std::max<int64_t>(n * c, 1);
  const float eps = ctx.node.FloatAttr("epsilon", 1e-5f);
  const float* scale = ctx.value(1).data<float>();
  const float* bias = ctx.value(2).data<float>();
  const float* mean = ctx.value(3).data<float>();
  const float* var = ctx.value(4).data<float>();
  const float* px = x.data<float>();
  float* py = outputs[0].data<float>();
  for (int64_t b = 0; b < n; ++b) {
    for (int64_t ch = 0; ch < c; ++ch) {
      const float k = scale[ch] / std::sqrt(var[ch] + eps);
      const float* in = px + (b * c + ch) * inner;
      float* out = py + (b * c + ch) * inner;
      for (int64_t i = 0; i < inner; ++i) out[i] = (in[i] - mean[ch]) * k + bias[ch];
    }
  }
  return Status::Ok();
}

StatusOr<std::vector<TensorType>> InferGlobalPool(const OpContext& ctx) {
  RETURN_IF_ERROR(ops::RequireDTypes(ctx, {DType::kFloat32}));
  Shape out = ctx.type(0).shape;
  if (out.size() < 3) return ctx.Error("input " + ShapeToString(out) + " needs rank >= 3");
  std::fill(out.begin() + 2, out.end(), 1);
  return std::vector<TensorType>{{DType::kFloat32, out}};
}

Status RunGlobalAveragePool(const OpContext& ctx, std::vector<Tensor>& outputs) {
  const Tensor& x = ctx.value(0);
  const int64_t planes = x.dim(0) * x.dim(1),
                inner = x.num_elements() / std::max<int64_t>(planes, 1);
  const float* px = x.data<float>();
  float* py = outputs[0].data<float>();
  for (int64_t p = 0; p < planes; ++p) {
    double sum = 0;
    for (int64_t i = 0; i < inner; ++i) sum += px[p * inner + i];
    py[p] = static_cast<float>(sum / static_cast<double>(inner));
  }
  return Status::Ok();
}

Status CheckPool(const Node& node, int64_t opset) {
  RETURN_IF_ERROR(ops::CheckWindowAttributes(node, /*allow_ceil_mode=*/true));
  if (!node.HasAttr("kernel_shape")) {
    return InvalidArgument(node.Describe() +
                           ": attribute kernel_shape is required; give the window size, e.g. "
                           "kernel_shape=[2,2]");
  }
  const std::vector<int64_t> kernel = node.IntsAttr("kernel_shape");
  if (kernel.empty()) {
    return InvalidArgument(node.Describe() +
                           ": attribute kernel_shape is empty; it needs one size per spatial "
                           "dimension, e.g. kernel_shape=[2,2]");
  }
  for (int64_t k : kernel) {
    if (k < 1) {
      std::string list;
      for (int64_t v : kernel) list += (list.empty() ? "" : ",") + std::to_string(v);
      return InvalidArgument(node.Describe() + ": attribute kernel_shape [" + list +
                             "] has an entry < 1; every window size must be >= 1, e.g. "
                             "kernel_shape=[2,2]");
    }
  }
  if (node.op_type == "MaxPool") {
    if (node.IntAttr("storage_order", 0) != 0) {
      return Unimplemented(node.Describe() + ": storage_order=1 is not supported");
    }
    if (node.outputs.size() > 1 && !node.outputs[1].empty()) {
      return Unimplemented(node.Describe() + ": the Indices output is not supported");
    }
  }
  return Status::Ok();
}

StatusOr<std::vector<TensorType>> InferPool(const OpContext& ctx) {
  RETURN_IF_ERROR(ops::RequireDTypes(ctx, {DType::kFloat32}));
  const Shape& x = ctx.type(0).shape;
  if (x.size() < 3 || x.size() > 5) {
    return ctx.Unsupported("input " + ShapeToString(x) + ": supported are 1-D to 3-D pools");
  }
  ASSIGN_OR_RETURN(ops::Window win, ops::ComputeWindow(ctx, Shape(x.begin() + 2, x.end()),
                                                       ctx.node.IntsAttr("kernel_shape")));
  Shape out = {x[0], x[1]};
  out.insert(out.end(), win.out.begin(), win.out.end());
  return std::vector<TensorType>{{DType::kFloat32, out}};
}

// Calls f(offset) for every input element under the window at output position `o`; positions in
// padding are reported as -1 with `inside_padded` telling whether they fall in explicit padding.
template <typename F>
void ForEachWindowElement(const ops::Window& w, const Shape& in, const std::vector<int64_t>& o,
                          F&& f) {
  const size_t rank = in.size();
  std::vector<int64_t> k(rank, 0);
  while (true) {
    int64_t offset = 0;
    bool valid = true, in_padded = true;
    for (size_t d = 0; d < rank; ++d) {
      const int64_t pos = o[d] * w.strides[d] - w.pad_begin[d] + k[d] * w.dilations[d];
      if (pos < 0 || pos >= in[d]) valid = false;
      if (pos < -w.pad_begin[d] || pos >= in[d] + w.pad_end[d]) in_padded = false;
      offset = offset * in[d] + pos;
    }
    f(valid ? offset : -1, in_padded);
    size_t d = rank;
    while (d > 0 && ++k[d - 1] == w.kernel[d - 1]) k[--d] = 0;
    if (d == 0) return;
  }
}

Status RunPool(const OpContext& ctx, std::vector<Tensor>& outputs, bool is_max) {
  const Tensor& x = ctx.value(0);
  const Shape in(x.shape().begin() + 2, x.shape().end());
  ASSIGN_OR_RETURN(ops::Window win, ops::ComputeWindow(ctx, in, ctx.node.IntsAttr("kernel_shape")));
  const bool include_pad = ctx.node.IntAttr("count_include_pad", 0) != 0;
  const int64_t planes = x.dim(0) * x.dim(1), in_size = NumElements(in);
  const int64_t out_size = NumElements(win.out);
  const float* px = x.data<float>();
  float* py = outputs[0].data<float>();
  std::vector<int64_t> o(in.size(), 0);
  for (int64_t p = 0; p < planes; ++p) {
    const float* plane = px + p * in_size;
    std::fill(o.begin(), o.end(), 0);
    for (int64_t i = 0; i < out_size; ++i) {
      double acc = is_max ? -std::numeric_limits<double>::infinity() : 0.0;
      int64_t count = 0;
      ForEachWindowElement(win, in, o, [&](int64_t offset, bool in_padded) {
        if (offset >= 0) {
          acc = is_max ? std::max<double>(acc, plane[offset]) : acc + plane[offset];
          ++count;
        } else if (include_pad && in_padded) {
          ++count;
        }
      });
      py[p * out_size + i] = static_cast<float>(is_max ? acc : acc / std::max<int64_t>(count, 1));
      for (size_t d = o.size(); d > 0 && ++o[d - 1] == win.out[d - 1];) o[--d] = 0;
    }
  }
  return Status::Ok();
}

Status RunAveragePool(const OpContext& ctx, std::vector<Tensor>& outputs) {
  return RunPool(ctx, outputs, /*is_max=*/false);
}
Status RunMaxPool(const OpContext& ctx, std::vector<Tensor>& outputs) {
  return RunPool(ctx, outputs, /*is_max=*/true);
}

StatusOr<std::vector<TensorType>> InferSoftmax(const OpContext& ctx) {
  RETURN_IF_ERROR(ops::RequireDTypes(ctx, {DType::kFloat32}));
  const int64_t rank = static_cast<int64_t>(ctx.type(0).shape.size());
  RETURN_IF_ERROR(
      ops::NormalizeAxis(ctx, ctx.node.IntAttr("axis", ctx.opset >= 13 ? -1 : 1), rank).status());
  return std::vector<TensorType>{ctx.type(0)};
}

// Before opset 13 Softmax flattens the input to 2-D at `axis` and normalizes each row; from 13 on
// it normalizes along the single axis.
Status RunSoftmax(const OpContext& ctx, std::vector<Tensor>& outputs) {
  const Tensor& x = ctx.value(0);
  const Shape& s = x.shape();
  ASSIGN_OR_RETURN(
      int64_t axis,
      ops::NormalizeAxis(ctx, ctx.node.IntAttr("axis", ctx.opset >= 13 ? -1 : 1), x.rank()));
  int64_t outer = 1, len = 1, inner = 1;
  for (int64_t d = 0; d < x.rank(); ++d) {
    if (d < axis) {
      outer *= s[d];
    } else if (d == axis || ctx.opset < 13) {
      len *= s[d];
    } else {
      inner *= s[d];
    }
  }
  const float* px = x.data<float>();
  float* py = outputs[0].data<float>();
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t i = 0; i < inner; ++i) {
      const int64_t base = o * len * inner + i;
      double mx = -std::numeric_limits<double>::infinity(), sum = 0;
      for (int64_t j = 0; j < len; ++j) mx = std::max<double>(mx, px[base + j * inner]);
      for (int64_t j = 0; j < len; ++j) sum += std::exp(px[base + j * inner] - mx);
      for (int64_t j = 0; j < len; ++j) {
        py[base + j * inner] = static_cast<float>(std::exp(px[base + j * inner] - mx) / sum);
      }
    }
  }
  return Status::Ok();
}

}  // namespace

std::vector<OpDef> PoolNormOps() {
  return {
      {"BatchNormalization", OpKind::kCompute, 6, 5, 5, 5, CheckBatchNorm, InferBatchNorm,
       RunBatchNorm},
      {"GlobalAveragePool", OpKind::kCompute, 1, 1, 1, 1, ops::NoAttributes, InferGlobalPool,
       RunGlobalAveragePool},
      {"AveragePool", OpKind::kCompute, 1, 1, 1, 1, CheckPool, InferPool, RunAveragePool},
      {"MaxPool", OpKind::kCompute, 1, 1, 1, 2, CheckPool, InferPool, RunMaxPool},
      {"Softmax", OpKind::kCompute, 1, 1, 1, 1, ops::NoAttributes, InferSoftmax, RunSoftmax},
  };
}

}  // namespace parnet
