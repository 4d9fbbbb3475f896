#include "runtime/core/tensor.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <new>

namespace parnet {
namespace {

TEST(TensorTest, NewTensorIsZeroFilledWithRowMajorShape) {
  Tensor t(DType::kFloat32, {2, 3});
  EXPECT_EQ(t.num_elements(), 6);
  EXPECT_EQ(t.num_bytes(), 24u);
  for (float v : t.values<float>()) EXPECT_EQ(v, 0.0f);
  EXPECT_EQ(t.TypeString(), "FP32[2,3]");
}

TEST(TensorTest, CopiesShareBytesButClonesDoNot) {
  Tensor a = Tensor::FromVector<int64_t>({2}, {1, 2});
  Tensor shared = a;
  Tensor deep = a.Clone();
  a.data<int64_t>()[0] = 7;
  EXPECT_EQ(shared.data<int64_t>()[0], 7);
  EXPECT_EQ(deep.data<int64_t>()[0], 1);
}

TEST(TensorTest, ToInt64VectorRejectsFloat) {
  EXPECT_EQ(Tensor::FromVector<int32_t>({2}, {4, 5}).ToInt64Vector().value(),
            (std::vector<int64_t>{4, 5}));
  EXPECT_FALSE(Tensor::Scalar(1.0f).ToInt64Vector().ok());
}

TEST(TensorTest, EmptyDimensionHasNoElements) {
  Tensor t(DType::kFloat32, {0, 4});
  EXPECT_EQ(t.num_elements(), 0);
  EXPECT_EQ(ShapeToString({-1, 3}), "[?,3]");
}

TEST(DTypeTest, HalfAndBFloat16BitPatternsConvertExactly) {
  EXPECT_EQ(HalfToFloat(0x3c00), 1.0f);
  EXPECT_EQ(HalfToFloat(0xc000), -2.0f);
  EXPECT_EQ(HalfToFloat(0x3555), 0.333251953125f);
  EXPECT_EQ(HalfToFloat(0x0001), 5.9604644775390625e-8f);  // smallest subnormal
  EXPECT_EQ(HalfToFloat(0x7bff), 65504.0f);
  EXPECT_TRUE(std::isinf(HalfToFloat(0xfc00)) && HalfToFloat(0xfc00) < 0);
  EXPECT_TRUE(std::isnan(HalfToFloat(0x7e00)));
  EXPECT_EQ(BFloat16ToFloat(0x3f80), 1.0f);
  EXPECT_EQ(BFloat16ToFloat(0xc0a0), -5.0f);
}

TEST(TensorTest, ElementCountSaturatesInsteadOfOverflowing) {
  const Shape huge = {int64_t{1} << 40, int64_t{1} << 40};
  EXPECT_EQ(NumElements(huge), std::numeric_limits<int64_t>::max());
  EXPECT_EQ(NumElements({3, 4}), 12);
}

TEST(TensorTest, CheckedCountsRefuseOverflowAndNegativeDims) {
  auto n = CheckedNumElements({int64_t{1} << 40, int64_t{1} << 40});
  ASSERT_FALSE(n.ok());
  EXPECT_EQ(n.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(n.status().message().find("[1099511627776,1099511627776]"), std::string::npos);
  EXPECT_FALSE(CheckedNumElements({2, -1}).ok());
  // Fits as elements, not as bytes.
  EXPECT_TRUE(CheckedNumElements({int64_t{1} << 61}).ok());
  EXPECT_FALSE(CheckedNumBytes(DType::kFloat32, {int64_t{1} << 61}).ok());
  EXPECT_EQ(CheckedNumBytes(DType::kFloat32, {2, 3}).value(), 24u);
}

TEST(TensorTest, CreateReportsAnImpossibleAllocationAsAStatus) {
  auto t = Tensor::Create(DType::kFloat32, {int64_t{1} << 40, int64_t{1} << 40});
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), StatusCode::kInvalidArgument);
  // Representable but above the bound: refused before the allocator is asked.
  auto big = Tensor::Create(DType::kUInt8, {int64_t{1} << 41});
  ASSERT_FALSE(big.ok());
  EXPECT_EQ(big.status().code(), StatusCode::kResourceExhausted);
  EXPECT_TRUE(Tensor::Create(DType::kFloat32, {2, 2}).ok());
}

TEST(TensorTest, ConstructorThrowsBadAllocForAnOverflowingShape) {
  EXPECT_THROW(Tensor(DType::kFloat32, {int64_t{1} << 40, int64_t{1} << 40}), std::bad_alloc);
  EXPECT_THROW(Tensor(DType::kUInt8, {int64_t{1} << 41}), std::bad_alloc);
}

}  // namespace
}  // namespace parnet
