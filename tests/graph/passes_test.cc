// Each graph pass must leave the outputs unchanged (compared on the reference kernels) while
// removing the nodes it promises to remove.
#include "runtime/graph/passes.h"

#include <gtest/gtest.h>

#include <random>

#include "runtime/graph/interpreter.h"
#include "runtime/graph/onnx_import.h"
#include "runtime/graph/specialize.h"
#include "tests/graph/model_builder.h"

namespace parnet {
namespace {

using testing::ModelBuilder;
constexpr int kFloat = onnx::TensorProto::FLOAT;

std::vector<float> RandomValues(int64_t n, std::mt19937& rng, float lo, float hi) {
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = d(rng);
  return v;
}

void AddBn(ModelBuilder& b, const std::string& prefix, int64_t c, std::mt19937& rng) {
  b.FloatInitializer(prefix + "_g", {c}, RandomValues(c, rng, 0.5f, 1.5f));
  b.FloatInitializer(prefix + "_b", {c}, RandomValues(c, rng, -0.3f, 0.3f));
  b.FloatInitializer(prefix + "_m", {c}, RandomValues(c, rng, -0.3f, 0.3f));
  b.FloatInitializer(prefix + "_v", {c}, RandomValues(c, rng, 0.5f, 2.0f));
}

// A RepVGG-style block: BN(Conv3x3(x)) + BN(Conv1x1(pool?(x))), then Relu. With `downsample`
// the 3x3 has stride 2 and the 1x1 reads AvgPool 2x2/2 of x behind a zero Pad, as torch exports.
Graph Block(bool downsample, int64_t groups) {
  std::mt19937 rng(downsample ? 11 : 7);
  const int64_t c = 4, m = 6;
  ModelBuilder b;
  b.Input("x", kFloat, {1, c, 8, 8})
      .Output("y", kFloat, {1, m, downsample ? 4 : 8, downsample ? 4 : 8});
  b.FloatInitializer("w3", {m, c / groups, 3, 3}, RandomValues(m * c / groups * 9, rng, -1, 1));
  b.FloatInitializer("w1", {m, c / groups, 1, 1}, RandomValues(m * c / groups, rng, -1, 1));
  AddBn(b, "bn3", m, rng);
  AddBn(b, "bn1", m, rng);
  auto& c3 = b.Node("Conv", {"x", "w3"}, {"d"}, "dense");
  ModelBuilder::SetAttr(c3, "pads", std::vector<int64_t>{1, 1, 1, 1});
  ModelBuilder::SetAttr(c3, "group", groups);
  std::string small_in = "x";
  if (downsample) {
    ModelBuilder::SetAttr(c3, "strides", std::vector<int64_t>{2, 2});
    b.Int64Initializer("zero_pads", {0, 0, 0, 0, 0, 0, 0, 0});
    b.Node("Pad", {"x", "zero_pads"}, {"xp"});
    auto& pool = b.Node("AveragePool", {"xp"}, {"xa"});
    ModelBuilder::SetAttr(pool, "kernel_shape", std::vector<int64_t>{2, 2});
    ModelBuilder::SetAttr(pool, "strides", std::vector<int64_t>{2, 2});
    small_in = "xa";
  }
  auto& c1 = b.Node("Conv", {small_in, "w1"}, {"o"}, "one");
  ModelBuilder::SetAttr(c1, "group", groups);
  b.Node("BatchNormalization", {"d", "bn3_g", "bn3_b", "bn3_m", "bn3_v"}, {"dn"});
  b.Node("BatchNormalization", {"o", "bn1_g", "bn1_b", "bn1_m", "bn1_v"}, {"on"});
  b.Node("Add", {"dn", "on"}, {"s"});
  b.Node("Relu", {"s"}, {"y"});
  auto g = ImportOnnxModel(b.Bytes(), "block");
  EXPECT_TRUE(g.ok()) << g.status().ToString();
  return Specialize(*g, {}).value();
}

Tensor Input() {
  std::mt19937 rng(3);
  return Tensor::FromVector<float>({1, 4, 8, 8}, RandomValues(256, rng, -1, 1));
}

void ExpectSameOutputs(const Graph& a, const Graph& b) {
  auto ya = RunSpecialized(a, {{"x", Input()}});
  auto yb = RunSpecialized(b, {{"x", Input()}});
  ASSERT_TRUE(ya.ok() && yb.ok());
  ASSERT_EQ((*ya)[0].shape(), (*yb)[0].shape());
  for (int64_t i = 0; i < (*ya)[0].num_elements(); ++i) {
    EXPECT_NEAR((*ya)[0].data<float>()[i], (*yb)[0].data<float>()[i], 1e-5) << "element " << i;
  }
}

TEST(PassesTest, FoldsBatchNormIntoTheConvBeforeIt) {
  const Graph before = Block(false, 1);
  Graph after = before;
  EXPECT_EQ(FoldBatchNormIntoConv(after).value(), 2);
  for (const Node& n : after.nodes) EXPECT_NE(n.op_type, "BatchNormalization");
  ExpectSameOutputs(before, after);
}

class MergeTest : public ::testing::TestWithParam<std::tuple<bool, int64_t>> {};

TEST_P(MergeTest, ReparameterizesThe1x1BranchIntoThe3x3) {
  const auto [downsample, groups] = GetParam();
  const Graph before = Block(downsample, groups);
  Graph after = before;
  const OptimizeReport report = Optimize(after).value();
  EXPECT_EQ(report.identities_removed, downsample ? 1 : 0);
  EXPECT_EQ(report.batchnorms_folded, 2);
  EXPECT_EQ(report.conv_pairs_merged, 1);
  ASSERT_EQ(after.nodes.size(), 2u) << "one Conv and the Relu remain";
  EXPECT_EQ(after.nodes[0].op_type, "Conv");
  ExpectSameOutputs(before, after);
}

INSTANTIATE_TEST_SUITE_P(StrideAndGroups, MergeTest,
                         ::testing::Combine(::testing::Bool(), ::testing::Values(1, 2)));

TEST(PassesTest, LeavesPairsItCannotMergeExactlyAlone) {
  // With the BNs folded the pair merges; once the 3x3 is dilated its taps no longer line up with
  // the 1x1's, so merging would change the result and the pass must leave the pair alone.
  Graph g = Block(false, 1);
  ASSERT_EQ(FoldBatchNormIntoConv(g).value(), 2);
  Graph control = g;
  EXPECT_EQ(MergeParallelConvs(control).value(), 1);
  for (Node& n : g.nodes) {
    if (n.op_type != "Conv" || g.FindType(n.inputs[1])->shape[2] != 3) continue;
    Attribute dilations;
    dilations.kind = Attribute::Kind::kInts;
    dilations.ints = {2, 2};
    n.attributes["dilations"] = dilations;
    n.attributes["pads"].ints = {2, 2, 2, 2};
  }
  EXPECT_EQ(MergeParallelConvs(g).value(), 0);
}

TEST(PassesTest, LeavesAConvWithoutOutputChannelsAndItsBatchNormAlone) {
  // W [0,4,1,1]: folding used to divide the weight count by the 0 output channels.
  ModelBuilder b;
  b.Input("x", kFloat, {1, 4, 2, 2}).Output("y", kFloat, {1, 0, 2, 2});
  b.FloatInitializer("w", {0, 4, 1, 1}, {});
  for (const char* p : {"g", "b", "m", "v"}) b.FloatInitializer(p, {0}, {});
  b.Node("Conv", {"x", "w"}, {"h"});
  b.Node("BatchNormalization", {"h", "g", "b", "m", "v"}, {"y"});
  auto imported = ImportOnnxModel(b.Bytes(), "empty_conv");
  ASSERT_TRUE(imported.ok()) << imported.status().ToString();
  auto g = Specialize(*imported, {});
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  auto report = Optimize(*g);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->batchnorms_folded, 0);
  auto y = RunSpecialized(*g, {{"x", Tensor(DType::kFloat32, {1, 4, 2, 2})}});
  ASSERT_TRUE(y.ok()) << y.status().ToString();
  EXPECT_EQ((*y)[0].shape(), (Shape{1, 0, 2, 2}));
}

// x -> Conv (4 -> 8, groups `producer_groups`) -> channel shuffle (2 groups) -> BN -> Relu, read by
// a 3x3 Conv (groups `consumer_groups`) and by GlobalAveragePool -> 1x1 Conv; their Add is the
// output: the shape of ParNet's fusion block output feeding the final block.
Graph Shuffled(int64_t consumer_groups, bool shuffle_is_output = false) {
  std::mt19937 rng(5);
  const int64_t c = 8, m = 6;
  ModelBuilder b;
  b.Input("x", kFloat, {1, 4, 8, 8}).Output("y", kFloat, {1, m, 8, 8});
  if (shuffle_is_output) b.Output("s", kFloat, {1, c, 8, 8});
  b.FloatInitializer("w0", {c, 2, 1, 1}, RandomValues(c * 2, rng, -1, 1));
  b.FloatInitializer("w3", {m, c / consumer_groups, 3, 3},
                     RandomValues(m * c / consumer_groups * 9, rng, -1, 1));
  b.FloatInitializer("wg", {m, c, 1, 1}, RandomValues(m * c, rng, -1, 1));
  AddBn(b, "bn", c, rng);
  b.Int64Initializer("split", {1, 2, c / 2, 8, 8});
  b.Int64Initializer("merge", {1, c, 8, 8});
  auto& c0 = b.Node("Conv", {"x", "w0"}, {"h"}, "producer");
  ModelBuilder::SetAttr(c0, "group", int64_t{2});
  b.Node("Reshape", {"h", "split"}, {"h5"});
  auto& t = b.Node("Transpose", {"h5"}, {"t5"});
  ModelBuilder::SetAttr(t, "perm", std::vector<int64_t>{0, 2, 1, 3, 4});
  b.Node("Reshape", {"t5", "merge"}, {"s"});
  b.Node("BatchNormalization", {"s", "bn_g", "bn_b", "bn_m", "bn_v"}, {"sn"});
  b.Node("Relu", {"sn"}, {"r"});
  auto& c3 = b.Node("Conv", {"r", "w3"}, {"d"}, "dense");
  ModelBuilder::SetAttr(c3, "pads", std::vector<int64_t>{1, 1, 1, 1});
  ModelBuilder::SetAttr(c3, "group", consumer_groups);
  b.Node("GlobalAveragePool", {"r"}, {"p"});
  b.Node("Conv", {"p", "wg"}, {"gate"}, "gate");
  b.Node("Add", {"d", "gate"}, {"y"});
  auto g = ImportOnnxModel(b.Bytes(), "shuffled");
  EXPECT_TRUE(g.ok()) << g.status().ToString();
  return Specialize(*g, {}).value();
}

int CountOps(const Graph& g, const std::string& op) {
  int n = 0;
  for (const Node& node : g.nodes) n += node.op_type == op;
  return n;
}

TEST(PassesTest, FoldsAChannelShuffleIntoTheWeightsOfItsReaders) {
  const Graph before = Shuffled(1);
  Graph after = before;
  EXPECT_EQ(FoldChannelShuffles(after).value(), 1);
  EXPECT_EQ(CountOps(after, "Transpose"), 0);
  EXPECT_EQ(CountOps(after, "Reshape"), 0);
  ExpectSameOutputs(before, after);
}

TEST(PassesTest, LeavesAShuffleWhoseGroupedReaderWouldMixGroups) {
  // Channel c of the shuffled value is channel (c % 2) * 4 + c / 2 of its input: channel 1 comes
  // from channel 4, across the groups of a 2-group reader, so only 1-group readers take it.
  Graph crossing = Shuffled(2);
  EXPECT_EQ(FoldChannelShuffles(crossing).value(), 0);
  EXPECT_EQ(CountOps(crossing, "Transpose"), 1);
}

TEST(PassesTest, KeepsAShuffleWhoseValueIsAGraphOutput) {
  Graph g = Shuffled(1, /*shuffle_is_output=*/true);
  EXPECT_EQ(FoldChannelShuffles(g).value(), 0);
}

TEST(PassesTest, OptimizeFoldsParNetsLastShuffle) {
  Graph before = Shuffled(1);
  Graph after = before;
  const OptimizeReport report = Optimize(after).value();
  EXPECT_EQ(report.channel_shuffles_folded, 1);
  ExpectSameOutputs(before, after);
}

}  // namespace
}  // namespace parnet
