// Edge cases of the op table (ops_*.cc): inputs that must be refused with a message, never read
// or write out of bounds, divide by zero or overflow (this suite also runs under
// AddressSanitizer). Graphs are built by hand where ONNX's checker would refuse the model first.
#include "runtime/graph/ops.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <limits>

#include "runtime/graph/interpreter.h"
#include "runtime/graph/specialize.h"

namespace parnet {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

Node MakeNode(const std::string& op, std::vector<std::string> inputs,
              std::vector<std::string> outputs) {
  Node n;
  n.name = op + "_0";
  n.op_type = op;
  n.inputs = std::move(inputs);
  n.outputs = std::move(outputs);
  return n;
}

void SetInt(Node& n, const std::string& key, int64_t v) {
  n.attributes[key].kind = Attribute::Kind::kInt;
  n.attributes[key].i = v;
}

// Infers and runs one node on `inputs` (all known), as Specialize() folds a node.
StatusOr<std::vector<Tensor>> RunOp(const Node& node, const std::vector<Tensor>& inputs,
                                    int64_t opset = 13) {
  const OpDef* def = FindOp(node.op_type);
  EXPECT_NE(def, nullptr);
  OpContext ctx{node, opset, {}, {}};
  for (const Tensor& t : inputs) {
    ctx.in_types.push_back({t.dtype(), t.shape()});
    ctx.in_values.push_back(&t);
  }
  ASSIGN_OR_RETURN(std::vector<TensorType> types, def->infer(ctx));
  std::vector<Tensor> out;
  for (const TensorType& t : types) out.emplace_back(t.dtype, t.shape);
  RETURN_IF_ERROR(def->run(ctx, out));
  return out;
}

// Runs the kernel alone with outputs of the given types (no inference): what a backend does with
// a graph built by hand.
Status RunKernel(const Node& node, const std::vector<Tensor>& inputs,
                 std::vector<Tensor>& outputs) {
  OpContext ctx{node, 13, {}, {}};
  for (const Tensor& t : inputs) {
    ctx.in_types.push_back({t.dtype(), t.shape()});
    ctx.in_values.push_back(&t);
  }
  return FindOp(node.op_type)->run(ctx, outputs);
}

TEST(OpsTest, GemmAndMatMulRefuseMixedElementTypes) {
  const Tensor a32(DType::kFloat32, {2, 3});
  const Tensor b64(DType::kFloat64, {3, 4});
  for (const char* op : {"Gemm", "MatMul"}) {
    auto out = RunOp(MakeNode(op, {"a", "b"}, {"y"}), {a32, b64});
    ASSERT_FALSE(out.ok()) << op;
    EXPECT_EQ(out.status().code(), StatusCode::kInvalidArgument);
    EXPECT_THAT(out.status().message(),
                AllOf(HasSubstr("'b' is FP64"), HasSubstr("'a' is FP32"), HasSubstr("cast")));
  }
  // Gemm's bias counts too.
  auto out = RunOp(MakeNode("Gemm", {"a", "b", "c"}, {"y"}),
                   {a32, Tensor(DType::kFloat32, {3, 4}), Tensor(DType::kFloat64, {4})});
  ASSERT_FALSE(out.ok());
  EXPECT_THAT(out.status().message(), HasSubstr("'c' is FP64"));
}

TEST(OpsTest, AxisOfAScalarIsRefused) {
  // Concat of scalars with axis 0 used to pass NormalizeAxis and write out[0] of an empty shape.
  Node concat = MakeNode("Concat", {"a", "b"}, {"y"});
  SetInt(concat, "axis", 0);
  auto out = RunOp(concat, {Tensor::Scalar(1.0f), Tensor::Scalar(2.0f)});
  ASSERT_FALSE(out.ok());
  EXPECT_THAT(out.status().message(), AllOf(HasSubstr("scalar"), HasSubstr("rank >= 1")));

  Node softmax = MakeNode("Softmax", {"x"}, {"y"});
  SetInt(softmax, "axis", 0);
  EXPECT_FALSE(RunOp(softmax, {Tensor::Scalar(1.0f)}).ok());
  EXPECT_FALSE(RunOp(MakeNode("Softmax", {"x"}, {"y"}), {Tensor::Scalar(1.0f)}).ok());
  // Valid axes still work, negative ones included.
  SetInt(softmax, "axis", -1);
  auto ok = RunOp(softmax, {Tensor::FromVector<float>({2}, {0.0f, 0.0f})});
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_THAT((*ok)[0].values<float>(), ::testing::ElementsAre(0.5f, 0.5f));
}

TEST(OpsTest, PadOfAScalarCopiesIt) {
  auto out = RunOp(MakeNode("Pad", {"x", "pads"}, {"y"}),
                   {Tensor::Scalar(3.5f), Tensor::FromVector<int64_t>({0}, {})});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ((*out)[0].shape(), Shape{});
  EXPECT_EQ((*out)[0].data<float>()[0], 3.5f);
}

TEST(OpsTest, MatMulBroadcastsBatchDimsAndRefusesIncompatibleOnes) {
  // [2,1,1,2] x [3,2,1] -> batch [2,3]; the old max() rule got this one right too.
  auto ok = RunOp(MakeNode("MatMul", {"a", "b"}, {"y"}),
                  {Tensor::FromVector<float>({2, 1, 1, 2}, {1, 2, 3, 4}),
                   Tensor::FromVector<float>({3, 2, 1}, {1, 1, 0, 1, 1, 0})});
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ((*ok)[0].shape(), (Shape{2, 3, 1, 1}));
  EXPECT_THAT((*ok)[0].values<float>(), ::testing::ElementsAre(3, 2, 1, 7, 4, 3));

  // Batch 2 against batch 3: inference refuses it...
  const Tensor a(DType::kFloat32, {2, 1, 1}), b(DType::kFloat32, {3, 1, 1});
  Node matmul = MakeNode("MatMul", {"a", "b"}, {"y"});
  EXPECT_THAT(RunOp(matmul, {a, b}).status().message(), HasSubstr("cannot be broadcast"));
  // ...and so does the kernel (it used to take max(2, 3) and read a's third matrix).
  std::vector<Tensor> out{Tensor(DType::kFloat32, {3, 1, 1})};
  Status s = RunKernel(matmul, {a, b}, out);
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.message(), HasSubstr("cannot be broadcast"));
}

TEST(OpsTest, IntegerDivRefusesZeroDivisorAndMinOverMinusOne) {
  Node div = MakeNode("Div", {"a", "b"}, {"y"});
  auto min32 =
      RunOp(div, {Tensor::FromVector<int32_t>({2}, {7, std::numeric_limits<int32_t>::min()}),
                  Tensor::FromVector<int32_t>({2}, {-1, -1})});
  ASSERT_FALSE(min32.ok());
  EXPECT_THAT(min32.status().message(), AllOf(HasSubstr("overflow"), HasSubstr("element 1")));
  auto min64 = RunOp(
      div, {Tensor::Scalar(std::numeric_limits<int64_t>::min()), Tensor::Scalar(int64_t{-1})});
  ASSERT_FALSE(min64.ok());
  EXPECT_THAT(min64.status().message(), HasSubstr("overflow"));
  auto zero = RunOp(div, {Tensor::Scalar(int64_t{5}), Tensor::Scalar(int64_t{0})});
  ASSERT_FALSE(zero.ok());
  EXPECT_THAT(zero.status().message(), HasSubstr("division by zero"));
  // Truncation toward zero, as ONNX's reference does.
  auto ok = RunOp(div, {Tensor::FromVector<int32_t>({2}, {-7, std::numeric_limits<int32_t>::min()}),
                        Tensor::FromVector<int32_t>({2}, {2, 1})});
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_THAT((*ok)[0].values<int32_t>(),
              ::testing::ElementsAre(-3, std::numeric_limits<int32_t>::min()));
}

TEST(OpsTest, PoolRefusesNonPositiveKernelAndStrides) {
  for (std::vector<int64_t> kernel :
       {std::vector<int64_t>{0, 2}, std::vector<int64_t>{2, -1}, std::vector<int64_t>{}}) {
    Node pool = MakeNode("MaxPool", {"x"}, {"y"});
    pool.attributes["kernel_shape"].kind = Attribute::Kind::kInts;
    pool.attributes["kernel_shape"].ints = kernel;
    Status s = FindOp("MaxPool")->check(pool, 13);
    ASSERT_FALSE(s.ok()) << ShapeToString(kernel);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
    EXPECT_THAT(s.message(), AllOf(HasSubstr("kernel_shape"), HasSubstr("e.g.")));
    if (!kernel.empty()) EXPECT_THAT(s.message(), HasSubstr("< 1"));
  }
  Node pool = MakeNode("AveragePool", {"x"}, {"y"});
  pool.attributes["kernel_shape"].kind = Attribute::Kind::kInts;
  pool.attributes["kernel_shape"].ints = {2, 2};
  pool.attributes["strides"].kind = Attribute::Kind::kInts;
  pool.attributes["strides"].ints = {0, 1};
  EXPECT_THAT(FindOp("AveragePool")->check(pool, 13).message(), HasSubstr("strides must be >= 1"));
}

// x[1,1] -> Pad by `pads` (a constant).
Graph PadGraph(std::vector<int64_t> pads) {
  Graph g;
  g.opset = 13;
  g.inputs = {"x"};
  g.outputs = {"y"};
  g.value_types["x"] = {DType::kFloat32, {1, 1}};
  g.constants["pads"] = Tensor::FromVector<int64_t>({4}, pads);
  g.value_types["pads"] = {DType::kInt64, {4}};
  g.nodes.push_back(MakeNode("Pad", {"x", "pads"}, {"y"}));
  return g;
}

TEST(SpecializeTest, RefusesAValueTooLargeToAllocate) {
  // [1, 2^40 + 1] floats: 4 TiB, above what parnet allocates for one tensor.
  auto s = Specialize(PadGraph({0, 0, 0, int64_t{1} << 40}), {});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kResourceExhausted) << s.status().ToString();
  EXPECT_THAT(s.status().message(), AllOf(HasSubstr("Pad_0"), HasSubstr("'y'")));
  // [2^40 + 1, 2^40 + 1]: the element count itself overflows.
  auto o = Specialize(PadGraph({0, 0, int64_t{1} << 40, int64_t{1} << 40}), {});
  ASSERT_FALSE(o.ok());
  EXPECT_EQ(o.status().code(), StatusCode::kInvalidArgument) << o.status().ToString();
  EXPECT_THAT(o.status().message(), HasSubstr("64-bit"));
}

TEST(InterpreterTest, SkipsOmittedOptionalOutputs) {
  // A hand-built graph whose MaxPool lists an empty Indices output in the middle of nothing: the
  // interpreter must neither look up a type for "" nor store a value under it.
  Graph g;
  g.opset = 13;
  g.inputs = {"x"};
  g.outputs = {"y"};
  g.value_types["x"] = {DType::kFloat32, {1, 1, 2, 2}};
  Node pool = MakeNode("MaxPool", {"x"}, {"y", ""});
  pool.attributes["kernel_shape"].kind = Attribute::Kind::kInts;
  pool.attributes["kernel_shape"].ints = {2, 2};
  g.nodes.push_back(pool);
  auto out = RunReference(g, {{"x", Tensor::FromVector<float>({1, 1, 2, 2}, {1, 4, 2, 3})}});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ((*out)[0].data<float>()[0], 4.0f);
}

}  // namespace
}  // namespace parnet
