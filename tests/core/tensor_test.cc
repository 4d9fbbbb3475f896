#include "runtime/core/tensor.h"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace parnet
