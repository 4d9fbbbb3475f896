#include "runtime/graph/graph.h"

namespace parnet {

bool TensorType::IsStatic() const {
  if (dtype == DType::kUndefined) return false;
  for (int64_t d : shape) {
    if (d < 0) return false;
  }
  return true;
}

int64_t Node::IntAttr(const std::string& key, int64_t fallback) const {
  auto it = attributes.find(key);
  return it == attributes.end() ? fallback : it->second.i;
}

float Node::FloatAttr(const std::string& key, float fallback) const {
  auto it = attributes.find(key);
  return it == attributes.end() ? fallback : it->second.f;
}

std::string Node::StringAttr(const std::string& key, const std::string& fallback) const {
  auto it = attributes.find(key);
  return it == attributes.end() ? fallback : it->second.s;
}

std::vector<int64_t> Node::IntsAttr(const std::string& key,
                                    const std::vector<int64_t>& fallback) const {
  auto it = attributes.find(key);
  return it == attributes.end() ? fallback : it->second.ints;
}

size_t Node::NumInputs() const {
  size_t n = inputs.size();
  while (n > 0 && inputs[n - 1].empty()) --n;
  return n;
}

std::string Node::Describe() const { return "node '" + name + "' (" + op_type + ")"; }

const TensorType* Graph::FindType(const std::string& value) const {
  auto it = value_types.find(value);
  return it == value_types.end() ? nullptr : &it->second;
}

}  // namespace parnet
