// The schedule model and the search on stage graphs given by hand: exactness against brute
// force, hand-computed ParNet-M cases, symmetry, and cluster-file errors.
#include <gtest/gtest.h>

#include <random>
#include <set>

#include "partitioner/cluster.h"
#include "partitioner/cost.h"
#include "partitioner/search.h"

namespace parnet::partition {
namespace {

// Stage i outputs one value "out<i>" of out_bytes[i]; the request is one value "input".
struct Spec {
  std::vector<std::vector<int>> preds;  // per stage; empty: fed by the request
  std::vector<double> out_bytes;
  double input_bytes = 0;
  std::vector<int> from_request;  // stages that also read the request
  std::vector<bool> recomputable;
};

StageGraph MakeGraph(const Spec& spec) {
  StageGraph g;
  const int n = static_cast<int>(spec.preds.size());
  g.value_bytes["input"] = spec.input_bytes;
  std::vector<bool> has_succ(n, false);
  for (int s = 0; s < n; ++s) {
    StageInfo info;
    info.name = "s" + std::to_string(s);
    info.recomputable = s < static_cast<int>(spec.recomputable.size()) && spec.recomputable[s];
    g.stages.push_back(info);
    g.value_bytes["out" + std::to_string(s)] = spec.out_bytes[s];
    const bool request = spec.preds[s].empty() ||
                         std::count(spec.from_request.begin(), spec.from_request.end(), s) > 0;
    if (request) g.edges.push_back({StageEdge::kRequest, s, {"input"}, spec.input_bytes});
    for (int p : spec.preds[s]) {
      g.edges.push_back({p, s, {"out" + std::to_string(p)}, spec.out_bytes[p]});
      has_succ[p] = true;
    }
  }
  for (int s = 0; s < n; ++s) {
    if (!has_succ[s]) {
      g.edges.push_back({s, StageEdge::kReply, {"out" + std::to_string(s)}, spec.out_bytes[s]});
    }
  }
  return g;
}

// Identical links of `ms_per_byte` and `latency_ms` between every pair.
CostModel MakeCosts(std::vector<std::vector<double>> stage_ms, double ms_per_byte,
                    double latency_ms) {
  CostModel c;
  const size_t d = stage_ms.front().size();
  c.stage_ms = std::move(stage_ms);
  c.link_latency_ms.assign(d, std::vector<double>(d, latency_ms));
  c.link_ms_per_byte.assign(d, std::vector<double>(d, ms_per_byte));
  for (size_t i = 0; i < d; ++i) c.link_latency_ms[i][i] = c.link_ms_per_byte[i][i] = 0;
  return c;
}

TEST(SearchTest, ExactSearchEqualsBruteForceOnRandomGraphs) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> cost(1, 10), bytes(1e5, 4e6), bandwidth(1e-7, 2e-6);
  for (int trial = 0; trial < 60; ++trial) {
    const int n = 3 + trial % 4;         // 3..6 stages
    const int devices = 2 + trial % 3;   // 2..4 devices
    Spec spec;
    spec.input_bytes = bytes(rng);
    for (int s = 0; s < n; ++s) {
      std::vector<int> preds;
      for (int p = 0; p < s; ++p) {
        if (std::uniform_int_distribution<int>(0, 2)(rng) == 0) preds.push_back(p);
      }
      if (s > 0 && preds.empty()) preds.push_back(std::uniform_int_distribution<int>(0, s - 1)(rng));
      spec.preds.push_back(preds);
      spec.out_bytes.push_back(bytes(rng));
      if (s > 0 && rng() % 5 == 0) spec.from_request.push_back(s);
    }
    spec.recomputable = {rng() % 2 == 0, false};
    spec.recomputable[1] = spec.recomputable[0] && rng() % 2 == 0;
    const bool identical = trial % 2 == 0;  // devices 1.. alike: exercises symmetry breaking
    std::vector<std::vector<double>> ms(n, std::vector<double>(devices));
    for (int s = 0; s < n; ++s) {
      for (int d = 0; d < devices; ++d) ms[s][d] = (identical && d > 1) ? ms[s][1] : cost(rng);
    }
    CostModel costs = MakeCosts(ms, bandwidth(rng), 0.01);
    if (!identical) {  // uneven links too
      for (int a = 0; a < devices; ++a) {
        for (int b = a + 1; b < devices; ++b) {
          costs.link_ms_per_byte[a][b] = costs.link_ms_per_byte[b][a] = bandwidth(rng);
        }
      }
    }
    const StageGraph graph = MakeGraph(spec);
    SearchOptions options;
    options.prune_replicas = false;
    const SearchResult exact = FindBestPlacement(graph, costs, options);
    const SearchResult brute = BruteForcePlacement(graph, costs, options);
    ASSERT_NEAR(exact.schedule.latency_ms, brute.schedule.latency_ms,
                1e-9 * brute.schedule.latency_ms)
        << "trial " << trial << ": " << n << " stages on " << devices << " devices";
    EXPECT_LE(exact.nodes_visited, brute.nodes_visited * 2) << "trial " << trial;
    // Pruning never makes a plan slower.
    const SearchResult pruned = FindBestPlacement(graph, costs);
    EXPECT_LE(pruned.schedule.latency_ms, exact.schedule.latency_ms + 1e-9);
  }
}

// ParNet-M at batch 1 with the stage split DiscoverStages finds (stages_test checks it), per-section
// GMACs from ../shared/PARNET.md and 10 ms per GMAC on every device:
//   0 stem (inits.0)        0.253 GMAC  2.53 ms  reads the input (3x224x224 fp32 = 602112 B)
//   1 inits.1 (to 28x28)    0.231       2.31     reads 0 (128x56x56 = 1605632 B)
//   2 inits.2 + stream 3    2.544      25.44     reads 1 (256x28x28 = 802816 B)
//   3 stream 1 + downsample 2.081      20.81     reads 0
//   4 stream 2              2.312      23.12     reads 1
//   5 fusion 1              0.231       2.31     reads 3 and 4 (802816 B each)
//   6 fusion 2 + final + head 0.928     9.28     reads 2 and 5 (401408 B each); replies 4000 B
Spec ParNetM() {
  Spec spec;
  spec.preds = {{}, {0}, {1}, {0}, {1}, {3, 4}, {2, 5}};
  spec.out_bytes = {1605632, 802816, 401408, 802816, 802816, 401408, 4000};
  spec.input_bytes = 602112;
  spec.recomputable = {true, true};  // 5.6% of the FLOPs: within DiscoverStages' 15%
  return spec;
}

const std::vector<double> kParNetMs = {2.53, 2.31, 25.44, 20.81, 23.12, 2.31, 9.28};

std::vector<std::vector<double>> SameOnEach(int devices, double slowdown_of_last = 1) {
  std::vector<std::vector<double>> ms;
  for (double t : kParNetMs) {
    ms.push_back(std::vector<double>(devices, t));
    ms.back().back() *= slowdown_of_last;
  }
  return ms;
}

TEST(SearchTest, StagesThatReachNoOutputDoNotBoundTheSearch) {
  // A feeds the reply (20 ms on device 0, 15 on device 1); D1..D4 read the request and feed
  // nothing (7 ms each). Counting them in the bound would cut the root above the optimum, 15.
  StageGraph g;
  g.value_bytes["input"] = 1;
  for (int s = 0; s < 5; ++s) {
    StageInfo info;
    info.name = s == 0 ? "A" : "D" + std::to_string(s);
    g.stages.push_back(info);
    g.value_bytes["out" + std::to_string(s)] = 1;
    g.edges.push_back({StageEdge::kRequest, s, {"input"}, 1});
  }
  g.edges.push_back({0, StageEdge::kReply, {"out0"}, 1});
  const CostModel costs = MakeCosts({{20, 15}, {7, 7}, {7, 7}, {7, 7}, {7, 7}}, 0, 0);
  SearchOptions options;
  options.prune_replicas = false;
  EXPECT_NEAR(FindBestPlacement(g, costs, options).schedule.latency_ms, 15, 1e-12);
  EXPECT_NEAR(BruteForcePlacement(g, costs, options).schedule.latency_ms, 15, 1e-12);
}

TEST(SearchTest, PutsEachStreamOnItsOwnDeviceWithAFastLink) {
  const StageGraph graph = MakeGraph(ParNetM());
  const CostModel costs = MakeCosts(SameOnEach(3), 0, 0);  // free transfers
  const SearchResult best = FindBestPlacement(graph, costs);
  // The critical path: stem + inits.1 + (inits.2 + stream 3) + tail.
  EXPECT_NEAR(best.schedule.latency_ms, 2.53 + 2.31 + 25.44 + 9.28, 1e-9);
  const std::vector<int>& d = best.placement.device;
  EXPECT_EQ(std::set<int>({d[2], d[3], d[4]}).size(), 3u) << "streams share a device";
}

TEST(SearchTest, OneGigabitLinkGivesTheScheduleModelsPlanAndLatency) {
  const StageGraph graph = MakeGraph(ParNetM());
  // 1 Gbit/s = 125000 bytes per ms, no fixed latency.
  const CostModel costs = MakeCosts(SameOnEach(3), 1 / 125000.0, 0);
  const SearchResult best = FindBestPlacement(graph, costs);
  // The plan, by hand under the schedule model: device 0 runs the stem, inits.1 and stream 3
  // (0 - 30.28). Device 2 receives the input (602112 B: 4.817 ms), recomputes the stem
  // (7.347) and runs stream 1 (28.157), then sends its 802816 B to device 1 (6.423 ms: 34.579).
  // Device 1 receives inits.1's output from device 0 (4.84 + 6.423 = 11.263), runs stream 2
  // (34.383), fusion 1 once stream 1's output is there (34.579 - 36.889) and the tail (stream
  // 3's output arrived at 30.28 + 3.211 = 33.491): 46.169, and sends 4000 B of logits back to
  // device 0 (0.032 ms). The critical path is input, stem, stream 1, its transfer, fusion 1,
  // tail, reply:
  const double expected =
      602112 / 125000.0 + 2.53 + 20.81 + 802816 / 125000.0 + 2.31 + 9.28 + 4000 / 125000.0;
  EXPECT_NEAR(best.schedule.latency_ms, expected, 1e-9);  // 46.201424 ms
  const std::vector<int>& d = best.placement.device;
  EXPECT_EQ(d[2], 0);  // stream 3 stays with the stem: its input is the largest to send
  EXPECT_EQ(std::set<int>({d[2], d[3], d[4]}).size(), 3u);
  EXPECT_EQ(d[5], d[4]);  // fusion 1 and the tail follow stream 2
  EXPECT_EQ(d[6], d[4]);
  EXPECT_LT(best.schedule.latency_ms, 85.8 * 0.6);  // far better than one device
}

TEST(SearchTest, OneDeviceGetsTheOneDevicePlan) {
  const StageGraph graph = MakeGraph(ParNetM());
  const CostModel costs = MakeCosts(SameOnEach(1), 0, 0);
  const SearchResult best = FindBestPlacement(graph, costs);
  EXPECT_NEAR(best.schedule.latency_ms, 85.8, 1e-9);  // the sum of all stages
  for (int d : best.placement.device) EXPECT_EQ(d, 0);
  EXPECT_TRUE(best.schedule.transfers.empty());
}

TEST(SearchTest, TheFourTimesSlowerDeviceGetsTheLeastWork) {
  const StageGraph graph = MakeGraph(ParNetM());
  const CostModel costs = MakeCosts(SameOnEach(3, 4.0), 1 / 2.5e6, 0.01);  // 20 Gbit/s
  const SearchResult best = FindBestPlacement(graph, costs);
  std::vector<double> work(3, 0);  // in 10 ms-per-GMAC units, whatever device ran it
  for (const StageRun& run : best.schedule.runs) work[run.device] += kParNetMs[run.stage];
  EXPECT_LE(work[2], work[0]);
  EXPECT_LE(work[2], work[1]);
  EXPECT_LT(best.schedule.latency_ms, 85.8);
}

TEST(SearchTest, IdenticalDevicesAreSymmetricButTheFirstIsNot) {
  const CostModel costs = MakeCosts(SameOnEach(4), 1e-6, 0.01);
  const std::vector<int> classes = SymmetryClasses(costs);
  EXPECT_NE(classes[0], classes[1]);
  EXPECT_EQ(classes[1], classes[2]);
  EXPECT_EQ(classes[2], classes[3]);
  CostModel uneven = costs;
  uneven.link_ms_per_byte[0][3] = uneven.link_ms_per_byte[3][0] = 1e-5;
  const std::vector<int> split = SymmetryClasses(uneven);
  EXPECT_EQ(split[1], split[2]);
  EXPECT_NE(split[1], split[3]);
}

TEST(SearchTest, ADeviceWithoutALinkIsNeverUsedForData) {
  const StageGraph graph = MakeGraph(ParNetM());
  CostModel costs = MakeCosts(SameOnEach(2), 0, 0);
  costs.link_latency_ms[0][1] = costs.link_latency_ms[1][0] = CostModel::kNoLink;
  const SearchResult best = FindBestPlacement(graph, costs);
  EXPECT_NEAR(best.schedule.latency_ms, 85.8, 1e-9);
  EXPECT_TRUE(best.schedule.transfers.empty());
}

// ---- Cluster files ----

StatusOr<Cluster> Parse(const std::string& text) { return ParseCluster(text, "test.pbtxt"); }

const char* kTwoDevices = R"(
devices { name: "a" kind: CPU cores: 0 gflops: 10 }
devices { name: "b" kind: CPU cores: 1 gflops: 10 }
)";

TEST(ClusterTest, ParsesAndFindsLinks) {
  auto c = Parse(std::string(kTwoDevices) + R"(links { a: "a" b: "b" bandwidth_gbit_s: 10 })");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_NE(FindLink(*c, 0, 1), nullptr);
  EXPECT_EQ(FindLink(*c, 1, 0), FindLink(*c, 0, 1));
  auto no_link = Parse(kTwoDevices);
  ASSERT_TRUE(no_link.ok());
  EXPECT_EQ(FindLink(*no_link, 0, 1), nullptr);
}

void ExpectError(const std::string& text, const std::string& needle) {
  auto c = Parse(text);
  ASSERT_FALSE(c.ok()) << "accepted: " << text;
  EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(c.status().message().find(needle), std::string::npos) << c.status().message();
  EXPECT_NE(c.status().message().find("test.pbtxt"), std::string::npos) << c.status().message();
}

TEST(ClusterTest, BadFilesGetClearErrors) {
  ExpectError(R"(devices { name: "a" kind: CPU cores: 0 speed: 3 })", "no field named \"speed\"");
  ExpectError(std::string(kTwoDevices) + R"(links { a: "a" b: "b" bandwidth_gbit_s: 0 })",
              "positive bandwidth");
  ExpectError("name: \"empty\"", "no devices");
  ExpectError(R"(devices { name: "a" kind: CPU cores: 0 }
                 devices { name: "a" kind: CPU cores: 1 })",
              "named twice");
  ExpectError(std::string(kTwoDevices) + R"(links { a: "a" b: "c" bandwidth_gbit_s: 1 })",
              "unknown device 'c'");
  ExpectError(R"(devices { name: "a" cores: 0 })", "no kind");
  ExpectError(R"(devices { name: "a" kind: CPU })", "lists no cores");
  ExpectError(std::string(kTwoDevices) + R"(links { a: "a" b: "a" bandwidth_gbit_s: 1 })",
              "to itself");
  ExpectError(std::string(kTwoDevices) + R"(default_link { bandwidth_gbit_s: -1 })",
              "positive bandwidth");
  ExpectError("devices { name: ", "line 1");
}

TEST(ClusterTest, RooflineNeedsASpeedOrAProfile) {
  auto c = Parse(R"(devices { name: "a" kind: CUDA })");
  ASSERT_TRUE(c.ok());
  const StageGraph graph = MakeGraph(ParNetM());
  auto costs = BuildCostModel(graph, *c, nullptr, 1);
  ASSERT_FALSE(costs.ok());
  EXPECT_NE(costs.status().message().find("gflops"), std::string::npos);
}

}  // namespace
}  // namespace parnet::partition
