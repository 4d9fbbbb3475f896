#include "runtime/graph/input_rules.h"

#include <algorithm>
#include <limits>
#include <map>
#include <numeric>

namespace parnet {
namespace {

constexpr int64_t kSaturated = std::numeric_limits<int64_t>::max();

// a * b for positive factors, saturating: a stride product beyond int64 is no size anyone gives.
int64_t MulSat(int64_t a, int64_t b) {
  int64_t r = 0;
  return __builtin_mul_overflow(a, b, &r) ? kSaturated : r;
}

// lcm(a, b) for positive values, saturating like MulSat.
int64_t LcmSat(int64_t a, int64_t b) {
  if (a == kSaturated || b == kSaturated) return kSaturated;
  return MulSat(a / std::gcd(a, b), b);
}

// A stride attribute entry as a factor; the importer refused entries < 1, but the rule is also
// asked about graphs built by hand.
int64_t Factor(int64_t s) { return std::max<int64_t>(s, 1); }

}  // namespace

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
      const int64_t sh = one_d ? 1 : Factor(s.size() >= 1 ? s[0] : 1);
      const int64_t sw = Factor(s.empty() ? 1 : s.back());
      c = {MulSat(c.first, sh), MulSat(c.second, sw)};
      rule.multiple_h = LcmSat(rule.multiple_h, c.first);
      rule.multiple_w = LcmSat(rule.multiple_w, c.second);
    }
    for (const std::string& out : node.outputs) stride[out] = c;
  }
  return rule;
}

}  // namespace parnet
