#include "runtime/exec/engine.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <omp.h>

#include <cstring>
#include <random>
#include <thread>

#include "runtime/backends/registry.h"
#include "runtime/graph/onnx_import.h"
#include "tests/graph/model_builder.h"

namespace parnet {
namespace {

using ::testing::AllOf;
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

// RunWritten() on both backends: the cpu one takes the rows into its own input buffer, the
// reference one into a fresh tensor; both must give Run()'s answer on the same rows, and a second
// call must not see the first one's rows.
TEST(EngineTest, RunWrittenMatchesRunOnBothBackends) {
  for (const char* backend : {"cpu", "reference"}) {
    SCOPED_TRACE(backend);
    auto e = Engine::Create(SmallNet(), {.backend = backend});
    ASSERT_TRUE(e.ok());
    for (unsigned seed : {7u, 8u}) {
      const Tensor x = Random({2, 3, 8, 12}, seed);
      auto want = (*e)->Run({{"x", x}});
      int calls = 0;
      auto got = (*e)->RunWritten({{"x", x.shape()}},
                                  [&](const std::string& name, void* dst, size_t bytes) {
                                    ++calls;
                                    EXPECT_EQ(name, "x");
                                    ASSERT_EQ(bytes, x.num_bytes());
                                    std::memcpy(dst, x.raw_data(), bytes);
                                  });
      ASSERT_TRUE(want.ok() && got.ok()) << got.status().ToString();
      EXPECT_EQ(calls, 1);
      ASSERT_EQ((*got)[0].shape(), (*want)[0].shape());
      for (int64_t i = 0; i < (*want)[0].num_elements(); ++i) {
        EXPECT_FLOAT_EQ((*got)[0].data<float>()[i], (*want)[0].data<float>()[i]);
      }
    }
  }
}

TEST(EngineTest, RunWrittenChecksShapesAndInputsLikeRun) {
  auto cpu = Engine::Create(SmallNet());
  ASSERT_TRUE(cpu.ok());
  int calls = 0;
  auto write = [&](const std::string&, void*, size_t) { ++calls; };
  auto bad_size = (*cpu)->RunWritten({{"x", {1, 3, 10, 8}}}, write);
  EXPECT_THAT(bad_size.status().message(), HasSubstr("H divisible by 4"));
  EXPECT_THAT((*cpu)->RunWritten({}, write).status().message(), HasSubstr("input 'x'"));
  EXPECT_THAT((*cpu)->RunWritten({{"image", {1, 3, 8, 8}}}, write).status().message(),
              HasSubstr("'image' is not an input of the model"));
  EXPECT_EQ(calls, 0);
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

TEST(EngineTest, PrepareNamesAnUnknownInputAndTheKnownOnes) {
  auto cpu = Engine::Create(SmallNet());
  ASSERT_TRUE(cpu.ok());
  Status s = (*cpu)->Prepare({{"image", {1, 3, 8, 8}}});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), AllOf(HasSubstr("'image' is not an input"), HasSubstr("'x'")));
  EXPECT_TRUE((*cpu)->Prepare({{"x", {1, 3, 8, 8}}}).ok());
}

TEST(EngineTest, ShapesTooLargeToAllocateAreResourceExhausted) {
  for (const char* backend : {"cpu", "reference"}) {
    auto e = Engine::Create(SmallNet(), {.backend = backend});
    ASSERT_TRUE(e.ok());
    // The first convolution's output alone would be 8 x 2^21 x 2^21 floats (128 TiB).
    Status s = (*e)->Prepare({{"x", {1, 3, int64_t{1} << 22, int64_t{1} << 22}}});
    ASSERT_FALSE(s.ok()) << backend;
    EXPECT_EQ(s.code(), StatusCode::kResourceExhausted) << s.ToString();
    EXPECT_THAT(s.message(), HasSubstr("smaller inputs"));
  }
}

// x[M,K] -> Gemm with constant B[K,N] and constant C of shape `c_shape`.
Graph GemmNet(int64_t m, int64_t k, int64_t n, std::vector<int64_t> c_shape) {
  std::mt19937 rng(9);
  ModelBuilder b;
  b.Input("x", onnx::TensorProto::FLOAT, {m, k});
  b.Output("y", onnx::TensorProto::FLOAT, {m, n});
  AddWeights(b, "b", {k, n}, rng);
  AddWeights(b, "c", c_shape, rng);
  b.Node("Gemm", {"x", "b", "c"}, {"y"});
  auto graph = ImportOnnxModel(b.Bytes(), "gemm");
  EXPECT_TRUE(graph.ok()) << graph.status().ToString();
  return graph.ok() ? std::move(graph).value() : Graph{};
}

TEST(EngineTest, CpuGemmMatchesReferenceForEveryBiasShape) {
  // M == N == 4, so a column bias [M,1] has as many elements as a row bias [N]: it used to be
  // lowered as a row. Only [N] and [1,N] may take oneDNN's bias; the others fall back.
  struct Case {
    std::vector<int64_t> c;
    bool native;
  };
  for (const Case& c :
       {Case{{4, 1}, false}, Case{{4, 4}, false}, Case{{4}, true}, Case{{1, 4}, true}}) {
    auto cpu = Engine::Create(GemmNet(4, 3, 4, c.c), {.backend = "cpu"});
    auto ref = Engine::Create(GemmNet(4, 3, 4, c.c), {.backend = "reference"});
    ASSERT_TRUE(cpu.ok() && ref.ok());
    Tensor x = Random({4, 3}, 17);
    auto got = (*cpu)->Run({{"x", x}});
    auto want = (*ref)->Run({{"x", x}});
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    ASSERT_TRUE(want.ok()) << want.status().ToString();
    for (int64_t i = 0; i < 16; ++i) {
      EXPECT_NEAR((*got)[0].data<float>()[i], (*want)[0].data<float>()[i], 1e-5)
          << "C " << ShapeToString(c.c) << ", element " << i;
    }
    EXPECT_EQ((*cpu)->last_node_split().first, c.native ? 1 : 0) << ShapeToString(c.c);
  }
}

TEST(EngineTest, RunSetsTheThreadCountOnTheCallingThread) {
  // OpenMP's thread count is per thread: a request served on a thread other than the one that
  // created the Engine must still run with EngineOptions::threads.
  int fresh_default = 0;
  std::thread([&] { fresh_default = omp_get_max_threads(); }).join();
  const int wanted = fresh_default == 5 ? 6 : 5;
  auto cpu = Engine::Create(SmallNet(), {.backend = "cpu", .threads = wanted});
  ASSERT_TRUE(cpu.ok());
  int seen = 0;
  std::thread reader([&] {
    for (int i = 0; i < 100; ++i) (void)(*cpu)->last_node_split();  // races a Run() when unlocked
  });
  std::thread([&] {
    ASSERT_TRUE((*cpu)->Run({{"x", Random({1, 3, 8, 8}, 4)}}).ok());
    seen = omp_get_max_threads();
  }).join();
  reader.join();
  EXPECT_EQ(seen, wanted);
}

TEST(EngineTest, SpatialRuleWithOverflowingStridesRefusesInsteadOfDividingByZero) {
  // Strides of 2^32 twice: the product used to wrap to 0 and `H % 0` crashed.
  ModelBuilder b;
  b.Input("x", onnx::TensorProto::FLOAT, {1, 1, -1, -1});
  b.Output("y", onnx::TensorProto::FLOAT, {1, 1, -1, -1});
  b.FloatInitializer("w", {1, 1, 1, 1}, {1.0f});
  for (int i = 0; i < 2; ++i) {
    auto& conv =
        b.Node("Conv", {i == 0 ? "x" : "h", "w"}, {i == 0 ? "h" : "y"}, "c" + std::to_string(i));
    ModelBuilder::SetAttr(conv, "strides", std::vector<int64_t>{int64_t{1} << 32, 1});
  }
  auto graph = ImportOnnxModel(b.Bytes(), "strides");
  ASSERT_TRUE(graph.ok()) << graph.status().ToString();
  auto e = Engine::Create(std::move(graph).value());
  ASSERT_TRUE(e.ok());
  Status s = (*e)->CheckInputShape("x", DType::kFloat32, {1, 1, 64, 64});
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.message(), HasSubstr("H divisible by 9223372036854775807"));
}

TEST(CpuBackendTest, NonFp32ConstantIsAnErrorNotAnAssert) {
  // A hand-built specialized graph that skipped inference: Gemm of FP32 by an FP64 constant.
  Graph g;
  g.opset = 13;
  g.specialized = true;
  g.inputs = {"a"};
  g.outputs = {"y"};
  g.value_types["a"] = {DType::kFloat32, {2, 3}};
  g.constants["b"] = Tensor(DType::kFloat64, {3, 4});
  g.value_types["b"] = {DType::kFloat64, {3, 4}};
  g.value_types["y"] = {DType::kFloat32, {2, 4}};
  Node gemm;
  gemm.name = "gemm";
  gemm.op_type = "Gemm";
  gemm.inputs = {"a", "b"};
  gemm.outputs = {"y"};
  g.nodes.push_back(gemm);
  auto backend = CreateBackend("cpu");
  ASSERT_TRUE(backend.ok());
  auto program = (*backend)->Compile(g);
  ASSERT_FALSE(program.ok());
  EXPECT_THAT(program.status().message(), AllOf(HasSubstr("'gemm'"), HasSubstr("'b' is FP64")));
}

}  // namespace
}  // namespace parnet
