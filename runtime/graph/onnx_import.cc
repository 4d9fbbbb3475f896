#include "runtime/graph/onnx_import.h"

#include <onnx/checker.h>
#include <onnx/onnx_pb.h>
#include <onnx/shape_inference/implementation.h>

#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include "runtime/core/log_internal.h"
#include "runtime/graph/kernel_util.h"
#include "runtime/graph/ops.h"

namespace parnet {
namespace {

StatusOr<std::string> ReadFile(const std::string& path, const std::string& what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return NotFound(what + " '" + path + "' cannot be opened: " + std::strerror(errno) +
                    "; check the path");
  }
  std::ostringstream bytes;
  bytes << in.rdbuf();
  if (in.bad()) return DataLoss("reading " + what + " '" + path + "' failed");
  return bytes.str();
}

template <typename Src>
void CopyInto(Tensor& t, const Src& field) {
  (void)ops::VisitNumeric(t.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T* out = t.data<T>();
    for (int i = 0; i < field.size(); ++i) out[i] = static_cast<T>(field.Get(i));
  });
}

// How many values the typed field that holds `dtype` stores (when there is no raw_data).
size_t StoredValues(const onnx::TensorProto& proto, DType dtype) {
  switch (dtype) {
    case DType::kFloat32:
      return proto.float_data_size();
    case DType::kFloat64:
      return proto.double_data_size();
    case DType::kInt64:
      return proto.int64_data_size();
    case DType::kUInt32:
    case DType::kUInt64:
      return proto.uint64_data_size();
    default:  // FP16/BF16 bit patterns and the narrow integer types live in int32_data
      return proto.int32_data_size();
  }
}

StatusOr<Tensor> TensorFromProto(const onnx::TensorProto& proto) {
  const std::string name = "tensor '" + proto.name() + "'";
  if (proto.data_location() == onnx::TensorProto::EXTERNAL) {
    return Unimplemented(name +
                         " uses external data; parnet reads self-contained models only: "
                         "save the model with all tensors inside the .onnx file");
  }
  const DType dtype = DTypeFromOnnx(proto.data_type());
  if (dtype == DType::kUndefined) {
    return Unimplemented(name + " has ONNX element type " + std::to_string(proto.data_type()) +
                         ", which parnet does not hold (strings, complex numbers)");
  }
  Shape shape(proto.dims().begin(), proto.dims().end());
  const std::string type = TypeToString(dtype, shape);
  for (int64_t d : shape) {
    if (d < 0) {
      return InvalidArgument(name + " has a negative dimension " + ShapeToString(shape) +
                             "; the model file is damaged: export it again");
    }
  }
  // The declared size is checked against what the file holds before anything is allocated: a
  // damaged or hostile header must not make parnet reserve terabytes (or overflow a count).
  auto n = CheckedNumElements(shape);
  auto bytes = CheckedNumBytes(dtype, shape);
  if (!n.ok() || !bytes.ok()) {
    return InvalidArgument(name + " declares " + type + ", which is too large to hold (" +
                           (n.ok() ? bytes.status() : n.status()).message() +
                           "); the model file is damaged: export it again");
  }
  const bool raw = proto.has_raw_data();
  const size_t stored = raw ? proto.raw_data().size() : StoredValues(proto, dtype);
  if (stored != (raw ? *bytes : static_cast<size_t>(*n))) {
    return InvalidArgument(name + " " + type + " needs " +
                           (raw ? std::to_string(*bytes) + " bytes of raw data"
                                : std::to_string(*n) + " stored values") +
                           " but has " + std::to_string(stored) +
                           "; the model file is damaged: export it again");
  }
  ASSIGN_OR_RETURN(Tensor t, Tensor::Create(dtype, shape));
  if (raw) {
    if (*bytes > 0) std::memcpy(t.raw_data(), proto.raw_data().data(), *bytes);
  } else if (dtype == DType::kFloat32) {
    CopyInto(t, proto.float_data());
  } else if (dtype == DType::kFloat64) {
    CopyInto(t, proto.double_data());
  } else if (dtype == DType::kInt64) {
    CopyInto(t, proto.int64_data());
  } else if (dtype == DType::kUInt32 || dtype == DType::kUInt64) {
    CopyInto(t, proto.uint64_data());
  } else if (dtype == DType::kFloat16 || dtype == DType::kBFloat16) {
    // int32_data holds the 16-bit patterns.
    for (size_t i = 0; i < stored; ++i) {
      const uint16_t bits = static_cast<uint16_t>(proto.int32_data(static_cast<int>(i)));
      std::memcpy(static_cast<std::byte*>(t.raw_data()) + 2 * i, &bits, 2);
    }
  } else {
    CopyInto(t, proto.int32_data());
  }
  return t;
}

StatusOr<Attribute> AttributeFromProto(const onnx::AttributeProto& a, const std::string& where) {
  Attribute out;
  using P = onnx::AttributeProto;
  switch (a.type()) {
    case P::INT:
      out.kind = Attribute::Kind::kInt;
      out.i = a.i();
      break;
    case P::FLOAT:
      out.kind = Attribute::Kind::kFloat;
      out.f = a.f();
      break;
    case P::STRING:
      out.kind = Attribute::Kind::kString;
      out.s = a.s();
      break;
    case P::INTS:
      out.kind = Attribute::Kind::kInts;
      out.ints.assign(a.ints().begin(), a.ints().end());
      break;
    case P::FLOATS:
      out.kind = Attribute::Kind::kFloats;
      out.floats.assign(a.floats().begin(), a.floats().end());
      break;
    case P::STRINGS:
      out.kind = Attribute::Kind::kStrings;
      out.strings.assign(a.strings().begin(), a.strings().end());
      break;
    case P::TENSOR: {
      out.kind = Attribute::Kind::kTensor;
      auto t = TensorFromProto(a.t());
      if (!t.ok()) return t.status().WithContext(where + ", attribute '" + a.name() + "'");
      out.t = std::move(t).value();
      break;
    }
    default:
      return Unimplemented(where + ": attribute '" + a.name() + "' has type " +
                           P::AttributeType_Name(a.type()) +
                           ", which parnet does not support (graphs, sparse tensors, type protos)");
  }
  return out;
}

StatusOr<TensorType> TypeFromValueInfo(const onnx::ValueInfoProto& info) {
  if (!info.type().has_tensor_type()) {
    return Unimplemented("value '" + info.name() +
                         "' is not a tensor (sequence, map or optional); parnet runs tensors only");
  }
  const auto& tt = info.type().tensor_type();
  TensorType type{DTypeFromOnnx(tt.elem_type()), {}};
  if (type.dtype == DType::kUndefined) {
    return Unimplemented("value '" + info.name() + "' has ONNX element type " +
                         std::to_string(tt.elem_type()) + ", which parnet does not hold");
  }
  for (const auto& dim : tt.shape().dim()) {
    type.shape.push_back(dim.has_dim_value() ? dim.dim_value() : -1);
  }
  return type;
}

StatusOr<Node> ImportNode(const onnx::NodeProto& proto, size_t index, int64_t opset) {
  Node node;
  node.op_type = proto.op_type();
  node.name = proto.name().empty() ? proto.op_type() + "_" + std::to_string(index) : proto.name();
  node.inputs.assign(proto.input().begin(), proto.input().end());
  node.outputs.assign(proto.output().begin(), proto.output().end());
  // ONNX writes "" for an omitted optional output; trailing ones are simply not there.
  while (!node.outputs.empty() && node.outputs.back().empty()) node.outputs.pop_back();
  const std::string where = node.Describe();
  if (node.outputs.empty()) {
    return InvalidArgument(where +
                           ": has no named output; its first output is required: give "
                           "it a name in the model");
  }
  if (!proto.domain().empty() && proto.domain() != "ai.onnx") {
    return Unimplemented(where + ": domain '" + proto.domain() +
                         "' is not supported; parnet runs ops of the default ONNX domain");
  }
  const OpDef* def = FindOp(node.op_type);
  if (def == nullptr) {
    std::string compute, load_time;
    for (auto op : SupportedOps(OpKind::kCompute))
      compute += std::string(compute.empty() ? "" : ", ") += op;
    for (auto op : SupportedOps(OpKind::kLoadTime))
      load_time += std::string(load_time.empty() ? "" : ", ") += op;
    return Unimplemented(where + ": op '" + node.op_type + "' is not supported. Supported ops: " +
                         compute + "; at load time only: " + load_time);
  }
  if (opset < def->min_opset) {
    return Unimplemented(where + ": parnet implements " + node.op_type + " from opset " +
                         std::to_string(def->min_opset) + " on; the model uses opset " +
                         std::to_string(opset) + ". Re-export with a newer opset (11 to 17)");
  }
  if (node.NumInputs() < def->min_inputs || node.inputs.size() > def->max_inputs ||
      node.outputs.size() > def->max_outputs) {
    return InvalidArgument(where + ": has " + std::to_string(node.inputs.size()) + " inputs and " +
                           std::to_string(node.outputs.size()) + " outputs; expected " +
                           std::to_string(def->min_inputs) + " to " +
                           std::to_string(def->max_inputs) + " inputs and at most " +
                           std::to_string(def->max_outputs) + " outputs");
  }
  for (const auto& a : proto.attribute()) {
    ASSIGN_OR_RETURN(node.attributes[a.name()], AttributeFromProto(a, where));
  }
  RETURN_IF_ERROR(def->check(node, opset));
  return node;
}

StatusOr<int64_t> DefaultOpset(const onnx::ModelProto& model, const std::string& source) {
  int64_t opset = 0;
  for (const auto& imp : model.opset_import()) {
    if (imp.domain().empty() || imp.domain() == "ai.onnx") opset = imp.version();
  }
  if (opset < kMinOpset || opset > kMaxOpset) {
    return Unimplemented(source + ": the model uses ONNX opset " + std::to_string(opset) +
                         "; parnet reads opsets " + std::to_string(kMinOpset) + " to " +
                         std::to_string(kMaxOpset) +
                         ". Re-export it, e.g. torch.onnx.export(..., opset_version=13)");
  }
  return opset;
}

Status RunOnnxChecks(onnx::ModelProto& model, const std::string& source) {
  try {
    onnx::checker::check_model(model);
  } catch (const std::exception& e) {
    return InvalidArgument(source + ": the ONNX checker rejects the model: " + e.what());
  }
  try {
    onnx::shape_inference::InferShapes(model);
  } catch (const std::exception& e) {
    return InvalidArgument(source + ": ONNX shape inference fails: " + e.what());
  }
  return Status::Ok();
}

}  // namespace

StatusOr<Graph> ImportOnnxModel(std::string_view bytes, const std::string& source) {
  if (bytes.empty()) return InvalidArgument(source + " is empty; expected an ONNX model");
  onnx::ModelProto model;
  if (!model.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return InvalidArgument(source + " is not a valid ONNX model: protobuf parsing failed (" +
                           std::to_string(bytes.size()) +
                           " bytes); the file is truncated, damaged or of another format");
  }
  if (!model.has_graph() || model.ir_version() <= 0 || model.opset_import_size() == 0) {
    return InvalidArgument(source + " is not an ONNX model: it has no " +
                           (!model.has_graph()        ? "graph"
                            : model.ir_version() <= 0 ? "ir_version"
                                                      : "opset_import") +
                           " (wrong file, or a truncated one?)");
  }
  ASSIGN_OR_RETURN(int64_t opset, DefaultOpset(model, source));
  RETURN_IF_ERROR(RunOnnxChecks(model, source));

  const onnx::GraphProto& g = model.graph();
  if (g.sparse_initializer_size() > 0) {
    return Unimplemented(source + ": sparse initializers are not supported");
  }
  Graph graph;
  graph.name = g.name();
  graph.opset = opset;
  for (const auto& init : g.initializer()) {
    auto t = TensorFromProto(init);
    if (!t.ok()) return t.status().WithContext(source);
    graph.constants[init.name()] = std::move(t).value();
    graph.value_types[init.name()] = {graph.constants[init.name()].dtype(),
                                      graph.constants[init.name()].shape()};
  }
  for (const auto& in : g.input()) {
    if (graph.IsConstant(in.name())) continue;  // IR < 4: initializers may be listed as inputs
    auto type = TypeFromValueInfo(in);
    if (!type.ok()) return type.status().WithContext(source + ", graph input");
    graph.inputs.push_back(in.name());
    graph.value_types[in.name()] = *type;
  }
  // ONNX's own shape inference: kept as hints that Specialize() cross-checks its results with.
  for (const auto& info : g.value_info()) {
    auto type = TypeFromValueInfo(info);
    if (type.ok() && info.type().tensor_type().has_shape()) graph.value_types[info.name()] = *type;
  }
  for (const auto& out : g.output()) {
    graph.outputs.push_back(out.name());
    auto type = TypeFromValueInfo(out);
    if (!type.ok()) return type.status().WithContext(source + ", graph output");
    if (out.type().tensor_type().has_shape()) graph.value_types[out.name()] = *type;
  }
  for (int i = 0; i < g.node_size(); ++i) {
    auto node = ImportNode(g.node(i), static_cast<size_t>(i), opset);
    if (!node.ok()) return node.status().WithContext(source);
    graph.nodes.push_back(std::move(node).value());
  }
  Logger("graph")->debug("imported {}: {} nodes, {} constants, opset {}", source,
                         graph.nodes.size(), graph.constants.size(), opset);
  return graph;
}

StatusOr<Graph> LoadOnnxModel(const std::string& path) {
  ASSIGN_OR_RETURN(std::string bytes, ReadFile(path, "model file"));
  return ImportOnnxModel(bytes, "model '" + path + "'");
}

StatusOr<NamedTensor> LoadTensorProto(const std::string& path) {
  ASSIGN_OR_RETURN(std::string bytes, ReadFile(path, "tensor file"));
  onnx::TensorProto proto;
  if (!proto.ParseFromString(bytes)) {
    return InvalidArgument("'" + path + "' is not a serialized ONNX TensorProto");
  }
  auto t = TensorFromProto(proto);
  if (!t.ok()) return t.status().WithContext("'" + path + "'");
  return NamedTensor{proto.name(), std::move(t).value()};
}

}  // namespace parnet
