#include "runtime/exec/engine.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <random>

#include "runtime/graph/onnx_import.h"
#include "tests/graph/model_builder.h"

namespace parnet {
namespace {

using ::testing::HasSubstr;
using testing::ModelBuilder;

void AddWeights(ModelBuilder& b, const std::string& name, std::vector<int64_t> dims,
                std::mt19937& rng) {
  std::normal_distribution<float> normal(0.0f, 0.5f);
  std::vector<float> values(static_cast<size_t>(NumElements(dims)));
  for (float& v : values) v = normal(rng);
  b.FloatInitializer(name, dims, values);
}

// x[N,3,H,W] -> Conv 3x3 s2 -> Relu -> Conv 3x3 s2 (+bias) -> Sigmoid*x (SiLU) -> GAP -> Flatten
// -> Gemm: strides multiply to 4, so H and W must be multiples of 4.
Graph SmallNet() {
  std::mt19937 rng(5);
  ModelBuilder b;
  b.Input("x", onnx::TensorProto::FLOAT, {-1, 3, -1, -1});
  b.Output("y", onnx::TensorProto::FLOAT, {-1, 5});
  AddWeights(b, "w1", {8, 3, 3, 3}, rng);
  AddWeights(b, "w2", {8, 8, 3, 3}, rng);
  AddWeights(b, "b2", {8}, rng);
  AddWeights(b, "fc", {5, 8}, rng);
  AddWeights(b, "fcb", {5}, rng);
  auto& c1 = b.Node("Conv", {"x", "w1"}, {"h1"}, "c1");
  b.Node("Relu", {"h1"}, {"r1"});
  auto& c2 = b.Node("Conv", {"r1", "w2", "b2"}, {"h2"}, "c2");
  for (auto* conv : {&c1, &c2}) {
    ModelBuilder::SetAttr(*conv, "strides", std::vector<int64_t>{2, 2});
    ModelBuilder::SetAttr(*conv, "pads", std::vector<int64_t>{1, 1, 1, 1});
  }
  b.Node("Sigmoid", {"h2"}, {"s2"});
  b.Node("Mul", {"h2", "s2"}, {"a2"});
  b.Node("GlobalAveragePool", {"a2"}, {"g"});
  b.Node("Flatten", {"g"}, {"f"});
  auto& gemm = b.Node("Gemm", {"f", "fc", "fcb"}, {"y"});
  ModelBuilder::SetAttr(gemm, "transB", int64_t{1});
  auto graph = ImportOnnxModel(b.Bytes(), "small");
  EXPECT_TRUE(graph.ok()) << graph.status().ToString();
  return graph.ok() ? std::move(graph).value() : Graph{};
}

Tensor Random(Shape shape, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal;
  Tensor t(DType::kFloat32, std::move(shape));
  for (int64_t i = 0; i < t.num_elements(); ++i) t.data<float>()[i] = normal(rng);
  return t;
}

TEST(EngineTest, CpuMatchesReferenceForSeveralBatchesAndSizes) {
  auto cpu = Engine::Create(SmallNet(), {.backend = "cpu"});
  auto ref = Engine::Create(SmallNet(), {.backend = "reference"});
  ASSERT_TRUE(cpu.ok() && ref.ok());
  for (Shape shape : {Shape{1, 3, 8, 8}, Shape{3, 3, 12, 16}, Shape{1, 3, 8, 8}}) {
    Tensor x = Random(shape, static_cast<unsigned>(shape[0] * 100 + shape[2]));
    auto got = (*cpu)->Run({{"x", x}});
    auto want = (*ref)->Run({{"x", x}});
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    ASSERT_TRUE(want.ok()) << want.status().ToString();
    ASSERT_EQ((*got)[0].shape(), (Shape{shape[0], 5}));
    for (int64_t i = 0; i < (*want)[0].num_elements(); ++i) {
      EXPECT_NEAR((*got)[0].data<float>()[i], (*want)[0].data<float>()[i], 1e-4);
    }
  }
}

TEST(EngineTest, ActivationsFuseIntoConvolutionsAndNothingFallsBack) {
  auto cpu = Engine::Create(SmallNet(), {.backend = "cpu"});
  ASSERT_TRUE(cpu.ok());
  ASSERT_TRUE((*cpu)->Run({{"x", Random({2, 3, 8, 8}, 1)}}).ok());
  // 8 nodes: Relu fuses into c1, Sigmoid+Mul (SiLU) into c2 -> 5 primitives, no fallback.
  EXPECT_EQ((*cpu)->last_node_split(), (std::pair<int64_t, int64_t>{5, 0}));
}

TEST(EngineTest, RefusesSizesTheStridesDoNotDivide) {
  auto cpu = Engine::Create(SmallNet());
  ASSERT_TRUE(cpu.ok());
  auto out = (*cpu)->Run({{"x", Random({1, 3, 10, 8}, 2)}});
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(out.status().message(), HasSubstr("H divisible by 4"));
}

TEST(EngineTest, RefusesMissingAndUnknownInputs) {
  auto cpu = Engine::Create(SmallNet());
  ASSERT_TRUE(cpu.ok());
  EXPECT_THAT((*cpu)->Run({}).status().message(), HasSubstr("input 'x'"));
  EXPECT_THAT((*cpu)->Run({{"image", Random({1, 3, 8, 8}, 3)}}).status().message(),
              HasSubstr("'image' is not an input of the model"));
}

TEST(EngineTest, UnknownBackendNamesTheAvailableOnes) {
  auto e = Engine::Create(SmallNet(), {.backend = "tpu"});
  ASSERT_FALSE(e.ok());
  EXPECT_THAT(e.status().message(), HasSubstr("available: cpu, reference"));
}

}  // namespace
}  // namespace parnet
