// Counts heap allocations (global operator new) during Engine::Run once a shape is compiled: the
// hot path allocates only the returned tensors. Allocations inside oneDNN's primitive execution
// are counted apart (the binary links with --wrap=dnnl_primitive_execute): oneDNN 2.6 builds an
// std::unordered_map of the arguments and OpenMP task functors on every call, which parnet
// cannot avoid short of patching oneDNN.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <random>

#include "oneapi/dnnl/dnnl.h"
#include "runtime/exec/engine.h"
#include "runtime/graph/onnx_import.h"
#include "tests/graph/model_builder.h"

namespace {
std::atomic<int64_t> g_allocations{0};  // by parnet (and the test)
std::atomic<int64_t> g_onednn_allocations{0};
thread_local bool t_in_onednn = false;
}  // namespace

extern "C" dnnl_status_t __real_dnnl_primitive_execute(const_dnnl_primitive_t, dnnl_stream_t, int,
                                                       const dnnl_exec_arg_t*);
extern "C" dnnl_status_t __wrap_dnnl_primitive_execute(const_dnnl_primitive_t p, dnnl_stream_t s,
                                                       int n, const dnnl_exec_arg_t* args) {
  t_in_onednn = true;
  const dnnl_status_t status = __real_dnnl_primitive_execute(p, s, n, args);
  t_in_onednn = false;
  return status;
}

void* operator new(std::size_t n) {
  (t_in_onednn ? g_onednn_allocations : g_allocations).fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace parnet {
namespace {

using testing::ModelBuilder;

// x[N,8,8,8] -> Conv 3x3 (8->8) + Relu -> Conv 3x3 (8->8) -> Add(x) -> GAP -> Flatten: four
// primitives (the Add becomes a binary or a sum post-op).
Graph Net() {
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.0f, 0.3f);
  ModelBuilder b;
  b.Input("x", onnx::TensorProto::FLOAT, {-1, 8, 8, 8});
  b.Output("y", onnx::TensorProto::FLOAT, {-1, 8});
  for (const char* w : {"w1", "w2"}) {
    std::vector<float> v(8 * 8 * 9);
    for (float& f : v) f = normal(rng);
    b.FloatInitializer(w, {8, 8, 3, 3}, v);
  }
  auto& c1 = b.Node("Conv", {"x", "w1"}, {"h1"}, "c1");
  b.Node("Relu", {"h1"}, {"r1"});
  auto& c2 = b.Node("Conv", {"r1", "w2"}, {"h2"}, "c2");
  for (auto* conv : {&c1, &c2})
    ModelBuilder::SetAttr(*conv, "pads", std::vector<int64_t>{1, 1, 1, 1});
  b.Node("Add", {"h2", "x"}, {"s"});
  b.Node("GlobalAveragePool", {"s"}, {"g"});
  b.Node("Flatten", {"g"}, {"y"});
  auto graph = ImportOnnxModel(b.Bytes(), "net");
  EXPECT_TRUE(graph.ok()) << graph.status().ToString();
  return graph.ok() ? std::move(graph).value() : Graph{};
}

// Allocations by parnet (first) and inside oneDNN (second) during one call of `body`.
template <typename Body>
std::pair<int64_t, int64_t> AllocationsOf(const Body& body) {
  const int64_t before = g_allocations.load(), onednn = g_onednn_allocations.load();
  body();
  return {g_allocations.load() - before, g_onednn_allocations.load() - onednn};
}

TEST(RunAllocationsTest, ARepeatedShapeAllocatesOnlyItsOutputsAndOneDnnsArgumentMaps) {
  auto engine = Engine::Create(Net(), {.backend = "cpu", .threads = 1});
  ASSERT_TRUE(engine.ok()) << engine.status().ToString();
  std::map<std::string, Tensor> inputs = {{"x", Tensor(DType::kFloat32, {2, 8, 8, 8})}};
  for (int i = 0; i < 3; ++i) ASSERT_TRUE((*engine)->Run(inputs).ok());  // compile, warm up
  const auto [primitives, fallbacks] = (*engine)->last_node_split();
  ASSERT_EQ(fallbacks, 0);

  int64_t run = 0;
  const auto first = AllocationsOf([&] { run += (*engine)->Run(inputs).ok(); });
  const auto second = AllocationsOf([&] { run += (*engine)->Run(inputs).ok(); });
  EXPECT_EQ(run, 2);
  EXPECT_EQ(first, second) << "a steady state allocates the same every run";
  // The returned vector, and its one tensor's shape and storage.
  EXPECT_EQ(first.first, 3);
  std::printf("allocations per Run: parnet %lld, inside oneDNN's primitive execution %lld\n",
              static_cast<long long>(first.first), static_cast<long long>(first.second));
}

}  // namespace
}  // namespace parnet
