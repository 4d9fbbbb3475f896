// The op table: for every ONNX op parnet accepts, how to check its attributes at import, how to
// infer its output types, and a naive reference kernel in plain C++.
//
// The reference kernels are the numerical oracle for every backend: they favour obvious
// correctness over speed (loops that mirror the ONNX specification), and are also what Specialize()
// uses to fold constant subgraphs at load.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/core/status.h"
#include "runtime/core/tensor.h"
#include "runtime/graph/graph.h"

namespace parnet {

enum class OpKind {
  kCompute,   // runs on a backend at request time
  kLoadTime,  // only evaluated at load to fold shape computations; never runs at request time
};

// What an op sees of its inputs. At import (Check) there is none of this; during shape inference
// only constant inputs have values; at run time every present input has one.
struct OpContext {
  const Node& node;
  int64_t opset;
  std::vector<TensorType> in_types;      // one per node input; kUndefined dtype when omitted
  std::vector<const Tensor*> in_values;  // one per node input; nullptr when unknown or omitted

  bool HasInput(size_t i) const { return i < node.inputs.size() && !node.inputs[i].empty(); }
  const TensorType& type(size_t i) const { return in_types[i]; }
  const Tensor& value(size_t i) const { return *in_values[i]; }
  // The value of input i, which must be known now; the error says it depends on runtime data.
  StatusOr<const Tensor*> RequireValue(size_t i, std::string_view role) const;
  // Input i read as int64 values (INT64 or INT32), known now.
  StatusOr<std::vector<int64_t>> RequireInts(size_t i, std::string_view role) const;
  // An error about this node: "node 'X' (Op): message" (INVALID_ARGUMENT).
  Status Error(const std::string& message) const;
  // The same for a valid use that parnet does not implement (UNIMPLEMENTED).
  Status Unsupported(const std::string& message) const;
};

using CheckFn = Status (*)(const Node& node, int64_t opset);
using InferFn = StatusOr<std::vector<TensorType>> (*)(const OpContext& ctx);
// `outputs` arrive allocated with the types InferFn returned.
using RunFn = Status (*)(const OpContext& ctx, std::vector<Tensor>& outputs);

struct OpDef {
  std::string_view type;
  OpKind kind;
  int64_t min_opset;  // the oldest opset whose semantics this entry implements
  size_t min_inputs;
  size_t max_inputs;
  size_t max_outputs;
  CheckFn check;
  InferFn infer;
  RunFn run;
  // True when the outputs follow from the input types alone (Shape), so it folds even when its
  // input is computed at run time.
  bool types_only = false;
};

// The entry for `op_type` in the default ONNX domain, or nullptr.
const OpDef* FindOp(std::string_view op_type);
// Every supported op type, for messages and documentation.
std::vector<std::string_view> SupportedOps(OpKind kind);

// Multiply-adds of one node with its specialized input types: Conv, Gemm and MatMul; 0 otherwise.
int64_t NodeMacs(const Node& node, const std::vector<TensorType>& in_types,
                 const std::vector<TensorType>& out_types);

// Shared checks used by several op files.
namespace ops {
// Normalizes a possibly negative axis for a tensor of `rank` to 0..rank-1; an error names the
// node when it is out of range (always for rank 0, which has no axis).
StatusOr<int64_t> NormalizeAxis(const OpContext& ctx, int64_t axis, int64_t rank);
// Numpy-style multidirectional broadcast of two shapes.
StatusOr<Shape> BroadcastShapes(const OpContext& ctx, const Shape& a, const Shape& b);
// CheckFn of ops with no attribute that could be unsupported.
Status NoAttributes(const Node& node, int64_t opset);
// An error unless every present input has one of `dtypes`.
Status RequireDTypes(const OpContext& ctx, std::initializer_list<DType> dtypes);
// An error unless every present input has the element type of input 0 (ONNX's single type T).
Status RequireSameDType(const OpContext& ctx);
}  // namespace ops

// Per-file registration lists, concatenated by ops.cc.
std::vector<OpDef> ElementwiseOps();
std::vector<OpDef> LinearOps();
std::vector<OpDef> PoolNormOps();
std::vector<OpDef> ShapeOps();

}  // namespace parnet

namespace parnet::ops {

// Geometry of a sliding window (Conv, AveragePool, MaxPool) over the spatial dimensions.
struct Window {
  std::vector<int64_t> kernel, strides, dilations, pad_begin, pad_end, out;
};

// Checks the window attributes common to Conv and the pools (auto_pad, pads, strides, dilations).
Status CheckWindowAttributes(const Node& node, bool allow_ceil_mode);
// Computes output sizes and padding per ONNX (auto_pad SAME_UPPER/SAME_LOWER/VALID/NOTSET, and
// ceil_mode for pools). `kernel` is the spatial kernel size.
StatusOr<Window> ComputeWindow(const OpContext& ctx, const Shape& in_spatial,
                               const std::vector<int64_t>& kernel);

}  // namespace parnet::ops
