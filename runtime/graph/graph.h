// The model as a DAG of ops, independent of any device.
//
// A Graph comes from the ONNX importer (onnx_import.h) with the model's own value types, where
// dimensions may be dynamic (-1). Specialize() (specialize.h) binds concrete input shapes, folds
// every load-time computation to constants and records the type of every value; backends and the
// reference interpreter run only specialized graphs.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "runtime/core/status.h"
#include "runtime/core/tensor.h"

namespace parnet {

// Element type and shape of a value; a dimension of -1 is not known yet.
struct TensorType {
  DType dtype = DType::kUndefined;
  Shape shape;

  bool IsStatic() const;
  std::string ToString() const { return TypeToString(dtype, shape); }
  bool operator==(const TensorType&) const = default;
};

struct Attribute {
  enum class Kind { kInt, kFloat, kString, kInts, kFloats, kStrings, kTensor, kGraph };
  Kind kind = Kind::kInt;
  int64_t i = 0;
  float f = 0;
  std::string s;
  std::vector<int64_t> ints;
  std::vector<float> floats;
  std::vector<std::string> strings;
  Tensor t;
};

struct Node {
  std::string name;  // never empty: the importer names unnamed nodes "<op>_<index>"
  std::string op_type;
  std::vector<std::string> inputs;   // an empty name is an omitted optional input
  std::vector<std::string> outputs;  // an empty name is an unused optional output
  std::map<std::string, Attribute> attributes;

  bool HasAttr(const std::string& key) const { return attributes.count(key) > 0; }
  int64_t IntAttr(const std::string& key, int64_t fallback) const;
  float FloatAttr(const std::string& key, float fallback) const;
  std::string StringAttr(const std::string& key, const std::string& fallback) const;
  std::vector<int64_t> IntsAttr(const std::string& key,
                                const std::vector<int64_t>& fallback = {}) const;
  // Number of inputs, not counting trailing omitted ones.
  size_t NumInputs() const;
  // "node 'Conv_3' (Conv)": how error messages name a node.
  std::string Describe() const;
};

struct Graph {
  std::string name;
  int64_t opset = 0;                        // version of the default ("ai.onnx") domain
  std::vector<std::string> inputs;          // runtime inputs, in model order (no initializers)
  std::vector<std::string> outputs;         // in model order
  std::vector<Node> nodes;                  // topologically sorted
  std::map<std::string, Tensor> constants;  // initializers and folded values
  std::map<std::string, TensorType> value_types;  // declared or inferred; static once specialized
  bool specialized = false;

  const TensorType* FindType(const std::string& value) const;
  bool IsConstant(const std::string& value) const { return constants.count(value) > 0; }
};

}  // namespace parnet
