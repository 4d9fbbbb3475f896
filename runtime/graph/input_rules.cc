#include "runtime/graph/input_rules.h"

#include <map>
#include <numeric>

namespace parnet {

SpatialRule SpatialRuleFor(const Graph& graph, const std::string& input) {
  const TensorType* type = graph.FindType(input);
  SpatialRule rule;
  if (type == nullptr || (type->shape.size() != 4 && type->shape.size() != 3)) return rule;
  const bool one_d = type->shape.size() == 3;
  // Cumulative (h, w) stride from `input` to each value derived from it.
  std::map<std::string, std::pair<int64_t, int64_t>> stride{{input, {1, 1}}};
  for (const Node& node : graph.nodes) {
    std::pair<int64_t, int64_t> c{0, 0};
    for (const std::string& in : node.inputs) {
      auto it = stride.find(in);
      if (it != stride.end()) c = std::max(c, it->second);
    }
    if (c.first == 0) continue;  // not derived from the input
    const bool windowed =
        node.op_type == "Conv" || node.op_type == "AveragePool" || node.op_type == "MaxPool";
    if (windowed) {
      const auto s = node.IntsAttr("strides");
      const int64_t sh = one_d ? 1 : (s.size() >= 1 ? s[0] : 1);
      const int64_t sw = s.empty() ? 1 : s.back();
      rule.multiple_h = std::lcm(rule.multiple_h, c.first * sh);
      rule.multiple_w = std::lcm(rule.multiple_w, c.second * sw);
      c = {c.first * sh, c.second * sw};
    }
    for (const std::string& out : node.outputs) stride[out] = c;
  }
  return rule;
}

}  // namespace parnet
