// Bad models are refused with a message that names the problem; nothing crashes (this suite also
// runs under AddressSanitizer).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

#include "runtime/graph/interpreter.h"
#include "runtime/graph/onnx_import.h"
#include "runtime/graph/specialize.h"
#include "tests/graph/model_builder.h"

namespace parnet {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using testing::ModelBuilder;
constexpr int kFloat = onnx::TensorProto::FLOAT;
constexpr int kInt64 = onnx::TensorProto::INT64;

// x[N,4,H,W] -> Relu -> Reshape to [N,-1]: a valid model whose shape comes from a constant.
std::string ValidModelBytes() {
  ModelBuilder b;
  b.Input("x", kFloat, {-1, 4, -1, -1}).Output("y", kFloat, {-1, -1});
  b.Int64Initializer("target", {0, -1});
  b.Node("Relu", {"x"}, {"r"});
  b.Node("Reshape", {"r", "target"}, {"y"});
  return b.Bytes();
}

// A TensorProto file (what the ONNX test data stores) with `dims` and `fill` values of float_data
// or raw bytes; returns its path.
std::string WriteTensorProto(const std::string& name, std::vector<int64_t> dims, bool raw,
                             int fill) {
  onnx::TensorProto t;
  t.set_name(name);
  t.set_data_type(onnx::TensorProto::FLOAT);
  for (int64_t d : dims) t.add_dims(d);
  if (raw) {
    t.set_raw_data(std::string(4 * static_cast<size_t>(fill), '\0'));
  } else {
    for (int i = 0; i < fill; ++i) t.add_float_data(1.0f);
  }
  const std::string path = ::testing::TempDir() + "/" + name + ".pb";
  std::ofstream(path, std::ios::binary) << t.SerializeAsString();
  return path;
}

TEST(ImportTest, TensorLargerThanItsDataIsRefusedBeforeAllocating) {
  // 2^40 floats (4 TiB) declared, one stored: refused from the header, nothing allocated.
  for (bool raw : {true, false}) {
    auto t = LoadTensorProto(WriteTensorProto(raw ? "huge_raw" : "huge_typed",
                                              {int64_t{1} << 20, int64_t{1} << 20}, raw, 1));
    ASSERT_FALSE(t.ok());
    EXPECT_EQ(t.status().code(), StatusCode::kInvalidArgument);
    EXPECT_THAT(t.status().message(), AllOf(HasSubstr("FP32[1048576,1048576]"),
                                            HasSubstr("damaged"), HasSubstr("export it again")));
  }
  // Dimensions whose product overflows int64 (it used to wrap to 0 and match empty data).
  auto t = LoadTensorProto(
      WriteTensorProto("overflow", {int64_t{1} << 32, int64_t{1} << 32}, /*raw=*/true, 0));
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(t.status().message(), HasSubstr("too large"));
  auto ok = LoadTensorProto(WriteTensorProto("fine", {2, 2}, /*raw=*/false, 4));
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(ok->tensor.shape(), (Shape{2, 2}));
}

TEST(ImportTest, OmittedOptionalOutputsAreDropped) {
  // MaxPool with its optional Indices output written as "": imports and runs.
  ModelBuilder b;
  b.Input("x", kFloat, {1, 1, 2, 2}).Output("y", kFloat, {1, 1, 1, 1});
  auto& pool = b.Node("MaxPool", {"x"}, {"y", ""});
  ModelBuilder::SetAttr(pool, "kernel_shape", std::vector<int64_t>{2, 2});
  auto g = ImportOnnxModel(b.Bytes(), "m");
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  EXPECT_EQ(g->nodes[0].outputs, std::vector<std::string>{"y"});
  auto out = RunReference(*g, {{"x", Tensor::FromVector<float>({1, 1, 2, 2}, {1, 4, 2, 3})}});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ((*out)[0].data<float>()[0], 4.0f);
}

TEST(ImportTest, PoolWithZeroKernelIsRefusedAtImport) {
  ModelBuilder b;
  b.Input("x", kFloat, {1, 1, 4, 4}).Output("y", kFloat, {1, 1, -1, -1});
  auto& pool = b.Node("AveragePool", {"x"}, {"y"}, "bad_pool");
  ModelBuilder::SetAttr(pool, "kernel_shape", std::vector<int64_t>{0, 1});
  auto g = ImportOnnxModel(b.Bytes(), "m");
  ASSERT_FALSE(g.ok());
  EXPECT_THAT(g.status().message(), AllOf(HasSubstr("'bad_pool'"), HasSubstr("kernel_shape")));
}

TEST(ImportTest, MissingFileIsNotFoundAndNamesThePath) {
  auto g = LoadOnnxModel("/nonexistent/model.onnx");
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.status().code(), StatusCode::kNotFound);
  EXPECT_THAT(g.status().message(), HasSubstr("/nonexistent/model.onnx"));
}

TEST(ImportTest, ValidModelImportsAndRuns) {
  auto g = ImportOnnxModel(ValidModelBytes(), "valid");
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  Tensor x = Tensor::FromVector<float>({1, 4, 1, 1}, {-1, 2, -3, 4});
  auto out = RunReference(*g, {{"x", x}});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ((*out)[0].shape(), (Shape{1, 4}));
  EXPECT_THAT((*out)[0].values<float>(), ::testing::ElementsAre(0, 2, 0, 4));
}

TEST(ImportTest, EveryTruncationIsRefusedWithoutCrashing) {
  const std::string bytes = ValidModelBytes();
  for (size_t cut = 0; cut < bytes.size(); ++cut) {
    auto g = ImportOnnxModel(bytes.substr(0, cut), "truncated");
    ASSERT_FALSE(g.ok()) << "a " << cut << "-byte prefix of " << bytes.size() << " was accepted";
    EXPECT_EQ(g.status().code(), StatusCode::kInvalidArgument) << g.status().ToString();
    EXPECT_THAT(g.status().message(), HasSubstr("truncated"));
  }
}

TEST(ImportTest, OtherFileFormatsAreRefused) {
  constexpr char kPngHeader[] = "\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x10";
  const std::string png(kPngHeader, sizeof(kPngHeader) - 1);
  for (const std::string& bytes :
       {png, std::string("hello, this is a text file\n"), std::string("{\"model\": 1}")}) {
    auto g = ImportOnnxModel(bytes, "wrong.onnx");
    ASSERT_FALSE(g.ok());
    EXPECT_EQ(g.status().code(), StatusCode::kInvalidArgument);
    EXPECT_THAT(g.status().message(), AllOf(HasSubstr("wrong.onnx"), HasSubstr("ONNX")));
  }
}

TEST(ImportTest, UnsupportedOpNamesNodeOpAndTheSupportedList) {
  ModelBuilder b;
  b.Input("x", kFloat, {1, 4}).Output("y", kFloat, {1, 4});
  b.Node("Tanh", {"x"}, {"y"}, "my_tanh");
  auto g = ImportOnnxModel(b.Bytes(), "m");
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.status().code(), StatusCode::kUnimplemented);
  EXPECT_THAT(g.status().message(),
              AllOf(HasSubstr("'my_tanh'"), HasSubstr("'Tanh' is not supported"), HasSubstr("Conv"),
                    HasSubstr("at load time only: ")));
}

TEST(ImportTest, UnsupportedAttributeValueNamesAttributeAndAlternatives) {
  ModelBuilder b;
  b.Input("x", kFloat, {1, 4}).Output("y", kFloat, {1, 6});
  b.Int64Initializer("pads", {0, 1, 0, 1});
  auto& pad = b.Node("Pad", {"x", "pads"}, {"y"}, "edge_pad");
  ModelBuilder::SetAttr(pad, "mode", std::string("reflect"));
  auto g = ImportOnnxModel(b.Bytes(), "m");
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.status().code(), StatusCode::kUnimplemented);
  EXPECT_THAT(g.status().message(), AllOf(HasSubstr("'edge_pad'"), HasSubstr("mode='reflect'"),
                                          HasSubstr("supported: constant")));
}

TEST(ImportTest, NewerOpsetIsRefusedWithTheSupportedRange) {
  ModelBuilder b(18);
  b.Input("x", kFloat, {1}).Output("y", kFloat, {1});
  b.Node("Relu", {"x"}, {"y"});
  auto g = ImportOnnxModel(b.Bytes(), "m");
  ASSERT_FALSE(g.ok());
  EXPECT_THAT(g.status().message(), AllOf(HasSubstr("opset 18"), HasSubstr("1 to 17")));
}

TEST(SpecializeTest, ShapeFromRuntimeDataCannotBeFolded) {
  ModelBuilder b;
  b.Input("x", kFloat, {2, 3}).Input("target", kInt64, {2}).Output("y", kFloat, {-1, -1});
  b.Node("Reshape", {"x", "target"}, {"y"}, "data_reshape");
  auto g = ImportOnnxModel(b.Bytes(), "m");
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  auto s = Specialize(*g, {});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(s.status().message(), AllOf(HasSubstr("'data_reshape'"), HasSubstr("'target'"),
                                          HasSubstr("depends on runtime data")));
}

TEST(SpecializeTest, LoadTimeOpOnRuntimeDataIsRefused) {
  ModelBuilder b;
  b.Input("x", kFloat, {3, 2}).Output("y", kFloat, {1, 2});
  b.Int64Initializer("idx", {1});
  auto& gather = b.Node("Gather", {"x", "idx"}, {"g"}, "pick_row");
  ModelBuilder::SetAttr(gather, "axis", int64_t{0});
  b.Node("Relu", {"g"}, {"y"});
  auto g = ImportOnnxModel(b.Bytes(), "m");
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  auto s = Specialize(*g, {});
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.status().message(),
              AllOf(HasSubstr("'pick_row' (Gather) cannot be folded"), HasSubstr("only at load")));
}

// The channel-shuffle pattern torch exports: Shape -> Gather -> Unsqueeze -> Concat -> Reshape.
std::string ShuffleShapeModel() {
  ModelBuilder b;
  b.Input("x", kFloat, {-1, 4, -1, -1}).Output("y", kFloat, {-1, 2, 2, -1, -1});
  b.Int64Initializer("i0", {0}).Int64Initializer("i2", {2}).Int64Initializer("i3", {3});
  b.Int64Initializer("two", {2}).Int64Initializer("half", {2});
  b.Int64Initializer("axes", {0});
  b.Node("Shape", {"x"}, {"s"});
  for (const char* i : {"0", "2", "3"}) {
    auto& g = b.Node("Gather", {"s", std::string("i") + i}, {std::string("d") + i},
                     std::string("gather") + i);
    ModelBuilder::SetAttr(g, "axis", int64_t{0});
  }
  auto& cat = b.Node("Concat", {"d0", "two", "half", "d2", "d3"}, {"target"});
  ModelBuilder::SetAttr(cat, "axis", int64_t{0});
  b.Node("Reshape", {"x", "target"}, {"y"});
  return b.Bytes();
}

TEST(SpecializeTest, FoldsShapeSubgraphForEachInputShape) {
  auto g = ImportOnnxModel(ShuffleShapeModel(), "shuffle");
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  for (Shape in : {Shape{1, 4, 8, 8}, Shape{3, 4, 6, 2}}) {
    SpecializeOptions options;
    options.input_shapes["x"] = in;
    auto s = Specialize(*g, options);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    ASSERT_EQ(s->nodes.size(), 1u) << "only the Reshape should remain";
    EXPECT_EQ(s->nodes[0].op_type, "Reshape");
    EXPECT_EQ(s->FindType("y")->shape, (Shape{in[0], 2, 2, in[2], in[3]}));
  }
}

TEST(SpecializeTest, RefusesShapeThatBreaksTheDeclaration) {
  auto g = ImportOnnxModel(ShuffleShapeModel(), "shuffle");
  ASSERT_TRUE(g.ok());
  SpecializeOptions options;
  options.input_shapes["x"] = {1, 3, 8, 8};
  auto s = Specialize(*g, options);
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.status().message(), AllOf(HasSubstr("FP32[?,4,?,?]"), HasSubstr("FP32[1,3,8,8]")));
}

TEST(SpecializeTest, DynamicInputWithoutShapeAsksForOne) {
  auto g = ImportOnnxModel(ShuffleShapeModel(), "shuffle");
  ASSERT_TRUE(g.ok());
  auto s = Specialize(*g, {});
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.status().message(), HasSubstr("--shape x="));
}

TEST(InterpreterTest, WrongInputTypeIsRefusedWithBothTypes) {
  auto g = ImportOnnxModel(ValidModelBytes(), "valid");
  ASSERT_TRUE(g.ok());
  SpecializeOptions options;
  options.input_shapes["x"] = {1, 4, 2, 2};
  auto s = Specialize(*g, options);
  ASSERT_TRUE(s.ok());
  auto out = RunSpecialized(*s, {{"x", Tensor(DType::kFloat32, {1, 4, 3, 3})}});
  ASSERT_FALSE(out.ok());
  EXPECT_THAT(out.status().message(),
              AllOf(HasSubstr("FP32[1,4,2,2]"), HasSubstr("FP32[1,4,3,3]")));
}

}  // namespace
}  // namespace parnet
