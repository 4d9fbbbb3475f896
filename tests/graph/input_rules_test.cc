#include "runtime/graph/input_rules.h"

#include <gtest/gtest.h>

#include <limits>

namespace parnet {
namespace {

// x[1,1,?,?] through `n` convolutions with stride `s` in H and W.
Graph StridedChain(int n, int64_t s) {
  Graph g;
  g.opset = 13;
  g.inputs = {"x"};
  g.value_types["x"] = {DType::kFloat32, {1, 1, -1, -1}};
  std::string prev = "x";
  for (int i = 0; i < n; ++i) {
    Node conv;
    conv.name = "conv" + std::to_string(i);
    conv.op_type = "Conv";
    conv.inputs = {prev, "w"};
    conv.outputs = {"h" + std::to_string(i)};
    conv.attributes["strides"].kind = Attribute::Kind::kInts;
    conv.attributes["strides"].ints = {s, s};
    g.nodes.push_back(conv);
    prev = conv.outputs[0];
  }
  g.outputs = {prev};
  return g;
}

TEST(InputRulesTest, MultipliesStridesAlongThePath) {
  const SpatialRule rule = SpatialRuleFor(StridedChain(5, 2), "x");
  EXPECT_EQ(rule.multiple_h, 32);
  EXPECT_EQ(rule.multiple_w, 32);
}

TEST(InputRulesTest, StrideProductBeyondInt64SaturatesInsteadOfWrappingToZero) {
  // 2^32 * 2^32 wrapped to 0, and a multiple of 0 made the Engine divide by zero.
  const SpatialRule rule = SpatialRuleFor(StridedChain(3, int64_t{1} << 32), "x");
  EXPECT_EQ(rule.multiple_h, std::numeric_limits<int64_t>::max());
  EXPECT_EQ(rule.multiple_w, std::numeric_limits<int64_t>::max());
}

}  // namespace
}  // namespace parnet
