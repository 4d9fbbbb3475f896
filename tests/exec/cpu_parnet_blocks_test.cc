// The cpu backend against the reference kernels on ParNet's block shapes at batch 1 and 8: the
// paths that depend on the batch (a per-sample gate fused as a post-op at batch 1, a separate
// binary at batch 8), the residual Add as a sum post-op, Winograd with an in-place SiLU, binaries
// across layouts, and a grouped conv split into one Winograd conv per group.
#include <gtest/gtest.h>

#include <random>

#include "runtime/exec/engine.h"
#include "runtime/graph/onnx_import.h"
#include "tests/graph/model_builder.h"

namespace parnet {
namespace {

using testing::ModelBuilder;

class Weights {
 public:
  explicit Weights(ModelBuilder& b) : b_(b) {}
  const std::string& Add(const std::string& name, std::vector<int64_t> dims, float lo = -0.3f,
                         float hi = 0.3f) {
    std::uniform_real_distribution<float> d(lo, hi);
    std::vector<float> v(static_cast<size_t>(NumElements(dims)));
    for (float& x : v) x = d(rng_);
    b_.FloatInitializer(name, dims, v);
    return name;
  }

 private:
  ModelBuilder& b_;
  std::mt19937 rng_{17};
};

void SiLU(ModelBuilder& b, const std::string& in, const std::string& out) {
  b.Node("Sigmoid", {in}, {out + "_sig"});
  b.Node("Mul", {in, out + "_sig"}, {out});
}

onnx::NodeProto& Conv(ModelBuilder& b, std::vector<std::string> in, const std::string& out,
                      int64_t stride, int64_t pad, int64_t group) {
  auto& n = b.Node("Conv", std::move(in), {out}, out);
  ModelBuilder::SetAttr(n, "strides", std::vector<int64_t>{stride, stride});
  ModelBuilder::SetAttr(n, "pads", std::vector<int64_t>{pad, pad, pad, pad});
  ModelBuilder::SetAttr(n, "group", group);
  return n;
}

// x[N,16,8,8] -> stream block (16) -> downsampling block (16 -> 32, stride 2, gate 2*sigmoid)
// -> 2-group 3x3 conv (32 -> 32) + SiLU -> GlobalAveragePool -> Flatten = y[N,32].
Graph Blocks() {
  ModelBuilder b;
  Weights w(b);
  b.Input("x", onnx::TensorProto::FLOAT, {-1, 16, 8, 8});
  b.Output("y", onnx::TensorProto::FLOAT, {-1, 32});
  w.Add("bn_g", {16}, 0.5f, 1.5f);
  w.Add("bn_b", {16});
  w.Add("bn_m", {16});
  w.Add("bn_v", {16}, 0.5f, 2.0f);
  b.Node("BatchNormalization", {"x", "bn_g", "bn_b", "bn_m", "bn_v"}, {"bn"});
  b.Node("GlobalAveragePool", {"bn"}, {"p1"});
  Conv(b, {"p1", w.Add("se1", {16, 16, 1, 1})}, "g1c", 1, 0, 1);
  b.Node("Sigmoid", {"g1c"}, {"g1"});
  b.Node("Mul", {"bn", "g1"}, {"idb"});
  Conv(b, {"x", w.Add("w1", {16, 16, 3, 3}), w.Add("b1", {16})}, "d1", 1, 1, 1);
  b.Node("Add", {"d1", "idb"}, {"s1"});
  SiLU(b, "s1", "a1");
  Conv(b, {"a1", w.Add("w2", {32, 16, 3, 3}), w.Add("b2", {32})}, "d2", 2, 1, 1);
  b.Node("GlobalAveragePool", {"a1"}, {"p2"});
  Conv(b, {"p2", w.Add("se2", {32, 16, 1, 1})}, "g2c", 1, 0, 1);
  b.Node("Sigmoid", {"g2c"}, {"g2s"});
  b.FloatInitializer("two", {1}, {2.0f});
  b.Node("Mul", {"g2s", "two"}, {"g2"});
  b.Node("Mul", {"d2", "g2"}, {"m2"});
  SiLU(b, "m2", "a2");
  Conv(b, {"a2", w.Add("w3", {32, 16, 3, 3}), w.Add("b3", {32})}, "d3", 1, 1, 2);
  SiLU(b, "d3", "a3");
  b.Node("GlobalAveragePool", {"a3"}, {"p3"});
  b.Node("Flatten", {"p3"}, {"y"});
  auto graph = ImportOnnxModel(b.Bytes(), "blocks");
  EXPECT_TRUE(graph.ok()) << graph.status().ToString();
  return graph.ok() ? std::move(graph).value() : Graph{};
}

class CpuParNetBlocksTest : public ::testing::TestWithParam<int64_t> {};

TEST_P(CpuParNetBlocksTest, MatchesTheReferenceKernels) {
  const int64_t batch = GetParam();
  auto cpu = Engine::Create(Blocks(), {.backend = "cpu", .threads = 2});
  auto ref = Engine::Create(Blocks(), {.backend = "reference"});
  ASSERT_TRUE(cpu.ok() && ref.ok());
  std::mt19937 rng(static_cast<unsigned>(batch));
  std::normal_distribution<float> normal;
  Tensor x(DType::kFloat32, {batch, 16, 8, 8});
  for (int64_t i = 0; i < x.num_elements(); ++i) x.data<float>()[i] = normal(rng);
  auto got = (*cpu)->Run({{"x", x}});
  auto want = (*ref)->Run({{"x", x}});
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  ASSERT_TRUE(want.ok()) << want.status().ToString();
  EXPECT_EQ((*cpu)->last_node_split().second, 0) << "nothing on reference fallbacks";
  ASSERT_EQ((*got)[0].shape(), (Shape{batch, 32}));
  for (int64_t i = 0; i < (*want)[0].num_elements(); ++i) {
    EXPECT_NEAR((*got)[0].data<float>()[i], (*want)[0].data<float>()[i], 1e-4) << "element " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(Batches, CpuParNetBlocksTest, ::testing::Values(1, 8));

}  // namespace
}  // namespace parnet
