// ONNX import: reads a model (ONNX's own protobuf, checked by ONNX's checker and shape inference)
// into a Graph, refusing at load anything parnet cannot run, with a message naming the node, the
// op, the attribute and what is supported.
#pragma once

#include <string>
#include <string_view>

#include "runtime/core/status.h"
#include "runtime/core/tensor.h"
#include "runtime/graph/graph.h"

namespace parnet {

// Opsets of the default domain that parnet reads. torch.onnx.export of torch 1.13 writes 11 to 17;
// older models load when every op they use has, at their opset, the semantics parnet implements
// (each op's OpDef::min_opset).
inline constexpr int64_t kMinOpset = 1;
inline constexpr int64_t kMaxOpset = 17;

// Reads and imports the model file at `path`. Errors: NOT_FOUND for a missing file,
// INVALID_ARGUMENT for a file that is not a valid ONNX model, UNIMPLEMENTED for a valid model that
// uses something parnet does not support.
StatusOr<Graph> LoadOnnxModel(const std::string& path);
// The same from bytes in memory; `source` names them in messages.
StatusOr<Graph> ImportOnnxModel(std::string_view bytes, const std::string& source);

struct NamedTensor {
  std::string name;
  Tensor tensor;
};
// Reads a serialized ONNX TensorProto (the format of ONNX's backend test data).
StatusOr<NamedTensor> LoadTensorProto(const std::string& path);

}  // namespace parnet
