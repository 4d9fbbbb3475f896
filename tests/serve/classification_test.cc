// The classification extension's ranking and its BYTES encoding, without the network.
#include "runtime/serve/classification.h"

#include <gtest/gtest.h>

#include <cstring>

namespace parnet::serve {
namespace {

Tensor Scores(const Shape& shape, const std::vector<float>& values) {
  Tensor t(DType::kFloat32, shape);
  std::memcpy(t.raw_data(), values.data(), values.size() * sizeof(float));
  return t;
}

TEST(ClassificationTest, RanksEachRowBestFirstWithLabelsWhereThereAreAny) {
  const Tensor t = Scores({2, 3}, {0.5f, 2.0f, -1.0f, 3.0f, 3.0f, 4.0f});
  const Classes c = Classify("output 'y'", t, 2, true, {"cat", "dog"}).value();
  EXPECT_EQ(c.shape, (Shape{2, 2}));
  EXPECT_EQ(c.values, (std::vector<std::string>{"2.000000:1:dog", "0.500000:0:cat", "4.000000:2",
                                                "3.000000:0:cat"}));
}

TEST(ClassificationTest, ClampsTheCountAndTreatsAnUnbatchedTensorAsOneRow) {
  const Tensor t = Scores({2, 2}, {1.0f, 4.0f, 3.0f, 2.0f});
  const Classes c = Classify("output 'y'", t, 10, false, {}).value();
  EXPECT_EQ(c.shape, (Shape{4}));
  EXPECT_EQ(c.values.front(), "4.000000:1");
  EXPECT_EQ(c.values.back(), "1.000000:0");
}

TEST(ClassificationTest, RefusesACountBelowOne) {
  const Tensor t = Scores({1, 2}, {1.0f, 2.0f});
  Status s = Classify("output 'y'", t, 0, true, {}).status();
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("output 'y': classification is 0"), std::string::npos);
}

TEST(ClassificationTest, BytesTravelWithALittleEndianLengthEach) {
  const std::string b = SerializeBytes({"ab", ""});
  ASSERT_EQ(b.size(), 4u + 2u + 4u);
  EXPECT_EQ(b.substr(0, 4), std::string("\x02\0\0\0", 4));
  EXPECT_EQ(b.substr(4, 2), "ab");
  EXPECT_EQ(b.substr(6, 4), std::string(4, '\0'));
}

}  // namespace
}  // namespace parnet::serve
