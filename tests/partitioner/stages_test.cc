// Stage discovery, plans and stage extraction on real ParNet exports (made by the
// partitioner_make_models fixture into $PARNET_PARTITION_MODELS).
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <random>
#include <set>

#include "partitioner/cluster.h"
#include "partitioner/cost.h"
#include "partitioner/plan.h"
#include "partitioner/search.h"
#include "partitioner/stages.h"
#include "runtime/exec/engine.h"
#include "runtime/graph/onnx_import.h"
#include "runtime/graph/specialize.h"

namespace parnet::partition {
namespace {

std::string ModelPath(const std::string& name) {
  const char* dir = std::getenv("PARNET_PARTITION_MODELS");
  return std::string(dir ? dir : ".") + "/" + name + ".onnx";
}

struct Loaded {
  Graph specialized;
  StageGraph stages;
};

Loaded Load(const std::string& name, int64_t batch, int64_t size) {
  auto graph = LoadOnnxModel(ModelPath(name));
  EXPECT_TRUE(graph.ok()) << graph.status().message();
  SpecializeOptions options;
  options.input_shapes["input"] = {batch, 3, size, size};
  auto specialized = Specialize(*graph, options);
  EXPECT_TRUE(specialized.ok()) << specialized.status().message();
  auto stages = DiscoverStages(*specialized);
  EXPECT_TRUE(stages.ok()) << stages.status().message();
  return {*specialized, *stages};
}

// The exact search's plan for ParNet-M at batch 1 and 224x224 on `cluster`, made for the model
// hash "abc123".
Plan BestPlan(const Loaded& m, const Cluster& cluster) {
  auto costs = BuildCostModel(m.stages, cluster, nullptr, 1);
  EXPECT_TRUE(costs.ok()) << costs.status().message();
  const SearchResult best = FindBestPlacement(m.stages, *costs);
  PlanTarget target{"m_fused.onnx", "abc123", cluster, {{"input", {1, 3, 224, 224}}}, 1,
                    "roofline"};
  return MakePlan(target, m.specialized, m.stages, best.schedule);
}

// The stage graph's shape: names, edges and the types of the values on them.
std::vector<std::string> Signature(const Loaded& m) {
  std::vector<std::string> out;
  for (const StageInfo& s : m.stages.stages) out.push_back("stage " + s.name);
  for (const StageEdge& e : m.stages.edges) {
    std::string edge = std::to_string(e.from) + "->" + std::to_string(e.to) + ":";
    for (const std::string& v : e.values) edge += " " + m.specialized.FindType(v)->ToString();
    out.push_back(edge);
  }
  return out;
}

TEST(StagesTest, FusedAndUnfusedParNetMGiveTheSameStages) {
  const Loaded fused = Load("m_fused", 1, 224);
  const Loaded unfused = Load("m_unfused", 1, 224);
  EXPECT_EQ(fused.stages.stages.size(), 7u);
  EXPECT_EQ(Signature(fused), Signature(unfused));
}

TEST(StagesTest, FindsTheThreeStreamsAsParallelStages) {
  const Loaded m = Load("m_fused", 1, 224);
  // Stages that are neither ancestors nor descendants of each other, each >= 10% of the FLOPs.
  const int n = static_cast<int>(m.stages.stages.size());
  std::vector<std::set<int>> ancestors(n);
  for (int s = 0; s < n; ++s) {
    for (int p : m.stages.Predecessors(s)) {
      ancestors[s].insert(p);
      ancestors[s].insert(ancestors[p].begin(), ancestors[p].end());
    }
  }
  std::vector<int> heavy;
  for (int s = 0; s < n; ++s) {
    if (m.stages.stages[s].flops >= 0.1 * m.stages.total_flops) heavy.push_back(s);
  }
  ASSERT_EQ(heavy.size(), 4u);  // three streams and the tail
  int parallel_pairs = 0;
  for (int a : heavy) {
    for (int b : heavy) {
      if (a < b && !ancestors[a].count(b) && !ancestors[b].count(a)) ++parallel_pairs;
    }
  }
  EXPECT_EQ(parallel_pairs, 3);  // exactly the three streams are pairwise parallel
  int recomputable = 0;
  for (const StageInfo& s : m.stages.stages) recomputable += s.recomputable;
  EXPECT_EQ(recomputable, 2);  // the stem and the block to 28x28
}

Cluster Identical(int devices, double gbit_s) {
  Cluster c;
  for (int d = 0; d < devices; ++d) {
    Device* device = c.add_devices();
    device->set_name("dev" + std::to_string(d));
    device->set_kind(Device::CUDA);
    device->set_gflops(20000);
    device->set_memory_gbps(2000);
  }
  c.mutable_default_link()->set_bandwidth_gbit_s(gbit_s);
  c.mutable_default_link()->set_latency_us(10);
  return c;
}

TEST(StagesTest, PartitionsParNetMOntoOneToFourDevicesUnderASecondEach) {
  const Loaded m = Load("m_fused", 1, 224);
  double previous = 1e30;
  for (int devices = 1; devices <= 4; ++devices) {
    auto costs = BuildCostModel(m.stages, Identical(devices, 200), nullptr, 1);
    ASSERT_TRUE(costs.ok());
    const auto begin = std::chrono::steady_clock::now();
    const SearchResult best = FindBestPlacement(m.stages, *costs);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
    EXPECT_LT(seconds, 1.0) << devices << " devices";
    EXPECT_LE(best.schedule.latency_ms, previous * (1 + 1e-12)) << devices << " devices";
    previous = best.schedule.latency_ms;
  }
}

TEST(StagesTest, PlansValidateAndTamperedOnesAreRefused) {
  const Loaded m = Load("m_fused", 1, 224);
  const Cluster cluster = Identical(3, 200);
  const Plan plan = BestPlan(m, cluster);
  ASSERT_TRUE(ValidatePlan(plan, m.specialized).ok())
      << ValidatePlan(plan, m.specialized).message();
  EXPECT_TRUE(CheckPlanFor(plan, "abc123", cluster).ok());
  EXPECT_NE(CheckPlanFor(plan, "other", cluster).message().find("another model"),
            std::string::npos);
  EXPECT_NE(CheckPlanFor(plan, "abc123", Identical(4, 200)).message().find("another set"),
            std::string::npos);
  ASSERT_FALSE(plan.transfers().empty());

  Plan no_transfer = plan;
  no_transfer.mutable_transfers()->RemoveLast();
  no_transfer.mutable_transfers()->erase(no_transfer.mutable_transfers()->begin());
  EXPECT_FALSE(ValidatePlan(no_transfer, m.specialized).ok());

  Plan unplaced = plan;
  for (auto& device : *unplaced.mutable_devices()) {
    if (device.runs_size() > 0 && device.runs(device.runs_size() - 1).stage() ==
                                      static_cast<int>(m.stages.stages.size()) - 1) {
      device.mutable_runs()->RemoveLast();
    }
  }
  const Status missing = ValidatePlan(unplaced, m.specialized);
  EXPECT_NE(missing.message().find("placed on no device"), std::string::npos) << missing.message();

  Plan lost_node = plan;
  lost_node.mutable_stages(2)->mutable_nodes()->RemoveLast();
  EXPECT_NE(ValidatePlan(lost_node, m.specialized).message().find("is in no stage"),
            std::string::npos);

  Plan wrong_type = plan;
  wrong_type.mutable_transfers(0)->set_types(0, "FP32[1,1,1,1]");
  EXPECT_NE(ValidatePlan(wrong_type, m.specialized).message().find("but the model has"),
            std::string::npos);
}

TEST(StagesTest, MalformedPlansAreRefusedNotCrashedOn) {
  const Loaded m = Load("m_fused", 1, 224);
  const Plan plan = BestPlan(m, Identical(3, 200));
  ASSERT_TRUE(ValidatePlan(plan, m.specialized).ok());
  ASSERT_GE(plan.transfers_size(), 1);
  auto refused = [&](Plan bad, const std::string& needle) {
    const Status status = ValidatePlan(bad, m.specialized);
    EXPECT_FALSE(status.ok()) << needle;
    EXPECT_NE(status.message().find(needle), std::string::npos) << status.message();
  };
  Plan p = plan;
  p.mutable_devices()->RemoveLast();
  refused(p, "assigns 2 devices but its cluster has 3");
  p = plan;
  p.mutable_devices(0)->set_device("dev1");
  refused(p, "is for device 'dev1'");
  p = plan;
  p.mutable_transfers(0)->set_stage(99);
  refused(p, "names stage 99");
  p = plan;
  p.mutable_transfers(0)->set_to_device("nowhere");
  refused(p, "does not join two different devices");
  p = plan;
  p.mutable_transfers(0)->clear_values();
  p.mutable_transfers(0)->clear_types();
  refused(p, "carries no values");
  p = plan;
  p.mutable_transfers(0)->set_values(0, "/head/fc/Gemm_output_0");
  refused(p, "does not produce");
  p = plan;
  *p.add_transfers() = plan.transfers(0);
  refused(p, "twice");
  p = plan;
  p.clear_input_shapes();
  refused(p, "no input shapes");
  p = plan;
  p.mutable_cluster()->clear_devices();
  refused(p, "no devices");
}

TEST(StagesTest, StagesRunOneAfterAnotherEqualTheWholeModel) {
  const Loaded m = Load("cifar_fused", 2, 32);
  std::mt19937 rng(3);
  std::normal_distribution<float> normal;
  Tensor x(DType::kFloat32, {2, 3, 32, 32});
  for (int64_t i = 0; i < x.num_elements(); ++i) x.data<float>()[i] = normal(rng);
  auto whole = Engine::Load(ModelPath("cifar_fused"));
  ASSERT_TRUE(whole.ok()) << whole.status().message();
  auto expected = (*whole)->Run({{"input", x}});
  ASSERT_TRUE(expected.ok()) << expected.status().message();

  std::map<std::string, Tensor> values{{"input", x}};
  for (const StageInfo& stage : m.stages.stages) {
    Graph sub = ExtractStage(m.specialized, stage);
    auto engine = Engine::Create(sub);
    ASSERT_TRUE(engine.ok()) << stage.name << ": " << engine.status().message();
    std::map<std::string, Tensor> inputs;
    for (const std::string& in : stage.inputs) inputs[in] = values.at(in);
    auto outputs = (*engine)->Run(inputs);
    ASSERT_TRUE(outputs.ok()) << stage.name << ": " << outputs.status().message();
    for (size_t i = 0; i < stage.outputs.size(); ++i) values[stage.outputs[i]] = (*outputs)[i];
  }
  const Tensor& got = values.at(m.specialized.outputs[0]);
  const Tensor& want = (*expected)[0];
  ASSERT_EQ(got.shape(), want.shape());
  float largest = 0;
  for (int64_t i = 0; i < want.num_elements(); ++i) {
    largest = std::max(largest, std::abs(want.data<float>()[i]));
  }
  for (int64_t i = 0; i < want.num_elements(); ++i) {
    EXPECT_NEAR(got.data<float>()[i], want.data<float>()[i], 1e-5f * largest) << i;
  }
}

}  // namespace
}  // namespace parnet::partition
