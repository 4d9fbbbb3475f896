// .npy reading and writing: round trips, files written by numpy itself (made by
// make_image_cases.py), byte-identical output, and every kind of bad input.
#include "runtime/io/npy.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <sstream>

namespace parnet::io {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

std::string NpyDir() { return std::string(PARNET_IO_TESTDATA) + "/npy/"; }

std::string FileBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

template <typename T>
std::vector<T> Values(const Tensor& t) {
  return std::vector<T>(t.values<T>().begin(), t.values<T>().end());
}

// Fills every byte with a pattern that is also valid for bool (0/1).
Tensor Patterned(DType dtype, Shape shape) {
  Tensor t(dtype, std::move(shape));
  auto* bytes = static_cast<uint8_t*>(t.raw_data());
  for (size_t i = 0; i < t.num_bytes(); ++i) {
    bytes[i] = dtype == DType::kBool ? i % 3 == 0 : static_cast<uint8_t>(i * 37 + 11);
  }
  return t;
}

TEST(NpyTest, RoundTripsEveryDtypeAndRank) {
  const DType dtypes[] = {DType::kFloat32, DType::kFloat64, DType::kFloat16, DType::kInt64,
                          DType::kInt32,   DType::kInt16,   DType::kInt8,    DType::kUInt8,
                          DType::kUInt16,  DType::kUInt32,  DType::kUInt64,  DType::kBool};
  const Shape shapes[] = {{}, {0}, {5}, {2, 3}, {2, 1, 3, 2}, {1, 3, 0, 2}};
  for (DType dtype : dtypes) {
    for (const Shape& shape : shapes) {
      SCOPED_TRACE(TypeToString(dtype, shape));
      const Tensor t = Patterned(dtype, shape);
      StatusOr<std::string> bytes = NpyBytes(t);
      ASSERT_TRUE(bytes.ok()) << bytes.status().ToString();
      EXPECT_EQ((bytes->size() - t.num_bytes()) % 64, 0u) << "header not padded to 64 bytes";
      StatusOr<Tensor> back = ReadNpyBytes(*bytes, "round trip");
      ASSERT_TRUE(back.ok()) << back.status().ToString();
      EXPECT_EQ(back->dtype(), dtype);
      EXPECT_EQ(back->shape(), shape);
      EXPECT_EQ(std::memcmp(back->raw_data(), t.raw_data(), t.num_bytes()), 0);
    }
  }
}

TEST(NpyTest, WritesAndReadsFiles) {
  const std::string path = ::testing::TempDir() + "parnet_npy_" + std::to_string(getpid()) + ".npy";
  const Tensor t = Tensor::FromVector<float>({2, 2}, {1.5f, -2.f, 3.25f, 0.f});
  ASSERT_TRUE(WriteNpy(path, t).ok());
  StatusOr<Tensor> back = ReadNpy(path);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(Values<float>(*back), Values<float>(t));
  std::remove(path.c_str());
}

TEST(NpyTest, ReadsArraysWrittenByNumpy) {
  StatusOr<Tensor> f32 = ReadNpy(NpyDir() + "f32_4d.npy");
  ASSERT_TRUE(f32.ok()) << f32.status().ToString();
  ASSERT_EQ(f32->TypeString(), "FP32[2,3,4,5]");
  for (int i = 0; i < 120; ++i) EXPECT_EQ(f32->data<float>()[i], i / 8.0f - 3);

  StatusOr<Tensor> i64 = ReadNpy(NpyDir() + "i64_1d.npy");
  ASSERT_TRUE(i64.ok()) << i64.status().ToString();
  EXPECT_EQ(Values<int64_t>(*i64),
            (std::vector<int64_t>{0, -1, int64_t{1} << 40, -(int64_t{1} << 62), 7, 123456789, 5}));

  StatusOr<Tensor> f64 = ReadNpy(NpyDir() + "f64_2d.npy");
  ASSERT_TRUE(f64.ok()) << f64.status().ToString();
  ASSERT_EQ(f64->TypeString(), "FP64[3,4]");
  for (int i = 0; i < 12; ++i) EXPECT_EQ(f64->data<double>()[i], i * 0.1);

  StatusOr<Tensor> scalar = ReadNpy(NpyDir() + "scalar_0d.npy");
  ASSERT_TRUE(scalar.ok()) << scalar.status().ToString();
  EXPECT_EQ(scalar->TypeString(), "FP32[]");
  EXPECT_EQ(scalar->data<float>()[0], 3.5f);

  StatusOr<Tensor> empty = ReadNpy(NpyDir() + "empty_2d.npy");
  ASSERT_TRUE(empty.ok()) << empty.status().ToString();
  EXPECT_EQ(empty->TypeString(), "FP32[0,3]");
}

TEST(NpyTest, ReadsEveryDtypeWrittenByNumpy) {
  const std::pair<const char*, DType> cases[] = {
      {"f2", DType::kFloat16}, {"i1", DType::kInt8},   {"i2", DType::kInt16},
      {"i4", DType::kInt32},   {"u1", DType::kUInt8},  {"u2", DType::kUInt16},
      {"u4", DType::kUInt32},  {"u8", DType::kUInt64}, {"b1", DType::kBool}};
  for (const auto& [code, dtype] : cases) {
    SCOPED_TRACE(code);
    StatusOr<Tensor> t = ReadNpy(NpyDir() + code + "_2x3.npy");
    ASSERT_TRUE(t.ok()) << t.status().ToString();
    EXPECT_EQ(t->dtype(), dtype);
    EXPECT_EQ(t->shape(), (Shape{2, 3}));
  }
  StatusOr<Tensor> u16 = ReadNpy(NpyDir() + "u2_2x3.npy");
  ASSERT_TRUE(u16.ok());
  EXPECT_EQ(Values<uint16_t>(*u16), (std::vector<uint16_t>{0, 1, 2, 3, 4, 5}));
  StatusOr<Tensor> b = ReadNpy(NpyDir() + "b1_2x3.npy");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(Values<bool>(*b), (std::vector<bool>{false, true, false, true, false, true}));
}

TEST(NpyTest, ReadsFormatVersions2And3) {
  for (const char* name : {"v2.npy", "v3.npy"}) {
    StatusOr<Tensor> t = ReadNpy(NpyDir() + name);
    ASSERT_TRUE(t.ok()) << name << ": " << t.status().ToString();
    EXPECT_EQ(t->TypeString(), "INT32[3,2]");
    EXPECT_EQ(Values<int32_t>(*t), (std::vector<int32_t>{0, 1, 2, 3, 4, 5}));
  }
}

// Identical bytes prove numpy reads our files exactly as it reads its own.
TEST(NpyTest, WritesBytesIdenticalToNumpySave) {
  for (const char* name :
       {"f32_4d.npy", "i64_1d.npy", "f64_2d.npy", "scalar_0d.npy", "empty_2d.npy", "f2_2x3.npy",
        "i1_2x3.npy", "u1_2x3.npy", "u8_2x3.npy", "b1_2x3.npy"}) {
    SCOPED_TRACE(name);
    const std::string numpy_bytes = FileBytes(NpyDir() + name);
    StatusOr<Tensor> t = ReadNpyBytes(numpy_bytes, name);
    ASSERT_TRUE(t.ok()) << t.status().ToString();
    StatusOr<std::string> ours = NpyBytes(*t);
    ASSERT_TRUE(ours.ok()) << ours.status().ToString();
    EXPECT_EQ(*ours, numpy_bytes);
  }
}

class NpyBadInputTest : public ::testing::Test {
 protected:
  // A valid numpy file (FP32 [2,3,4,5]) to damage.
  std::string good_ = FileBytes(NpyDir() + "f32_4d.npy");

  Status Read(const std::string& bytes) { return ReadNpyBytes(bytes, "bad.npy").status(); }
  // Replaces text inside the header and re-pads it, so the header length field stays right and
  // only the intended problem is present.
  static std::string Replace(std::string s, const std::string& from, const std::string& to) {
    const size_t pos = s.find(from);
    const size_t header_end = s.find('\n');
    EXPECT_LT(pos, header_end) << from;
    if (pos >= header_end) return s;
    s.replace(pos, from.size(), to);
    const size_t end = header_end + to.size() - from.size();
    if (to.size() < from.size()) s.insert(end, from.size() - to.size(), ' ');
    if (to.size() > from.size()) s.erase(end - (to.size() - from.size()), to.size() - from.size());
    return s;
  }
};

TEST_F(NpyBadInputTest, TruncatedBodySaysHowManyBytesAreMissing) {
  const Status s = Read(good_.substr(0, good_.size() - 1));
  EXPECT_EQ(s.code(), StatusCode::kDataLoss);
  EXPECT_THAT(s.message(),
              AllOf(HasSubstr("bad.npy"), HasSubstr("truncated: header says <f4 "
                                                    "(2, 3, 4, 5) = 480 bytes, file has 479")));
}

TEST_F(NpyBadInputTest, ExtraBytesAfterTheBody) {
  const Status s = Read(good_ + "xyz");
  EXPECT_EQ(s.code(), StatusCode::kDataLoss);
  EXPECT_THAT(s.message(), HasSubstr("extra bytes: header says <f4 (2, 3, 4, 5) = 480 bytes, "
                                     "file has 483"));
}

TEST_F(NpyBadInputTest, BadMagic) {
  EXPECT_THAT(Read("PK\x03\x04 a zip file, not npy").message(), HasSubstr("bad magic"));
  EXPECT_THAT(Read("").message(), HasSubstr("bad magic"));
  EXPECT_EQ(Read("\x93NUMP").code(), StatusCode::kInvalidArgument);
}

TEST_F(NpyBadInputTest, UnsupportedVersion) {
  std::string bytes = good_;
  bytes[6] = 4;
  EXPECT_THAT(Read(bytes).message(), HasSubstr("unsupported .npy version 4.0"));
}

TEST_F(NpyBadInputTest, BigEndianNamesTheDtypeAndTheFix) {
  const Status s = ReadNpy(NpyDir() + "bigendian.npy").status();
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), AllOf(HasSubstr("big-endian dtype '>f4'"), HasSubstr("astype('<f4')"),
                                 HasSubstr("bigendian.npy")));
}

TEST_F(NpyBadInputTest, UnsupportedDtypeListsTheSupportedOnes) {
  const Status s = ReadNpy(NpyDir() + "complex.npy").status();
  EXPECT_THAT(s.message(), AllOf(HasSubstr("unsupported dtype '<c8'"),
                                 HasSubstr("<f4 <f8 |i1 <i2 <i4 <i8 |u1 <u2 <u4 <u8 |b1")));
  EXPECT_THAT(Read(Replace(good_, "'<f4'", "'|O'")).message(), HasSubstr("unsupported dtype '|O'"));
  EXPECT_THAT(Read(Replace(good_, "'<f4'", "[('a', '<f4')]")).message(),
              HasSubstr("structured dtype"));
}

TEST_F(NpyBadInputTest, FortranOrder) {
  const Status s = ReadNpy(NpyDir() + "fortran.npy").status();
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), AllOf(HasSubstr("fortran_order is True for shape (3, 4)"),
                                 HasSubstr("C order only")));
}

TEST_F(NpyBadInputTest, MalformedHeaderDict) {
  struct Case {
    std::string from, to, problem;
  };
  const Case cases[] = {
      {"(2, 3, 4, 5)", "[2, 3, 4, 5]", "expected '(' to open the 'shape' tuple"},
      {"(2, 3, 4, 5)", "(2, -3, 4, 5)", "'shape' must be a tuple of non-negative integers"},
      {"(2, 3, 4, 5)", "(120)", "'shape' (n) needs a comma"},
      {"False", "0", "'fortran_order' must be True or False"},
      {"'descr'", "'dtype'", "unexpected key 'dtype'"},
      {"{'descr'", "['descr'", "expected '{' at the start of the dict"},
      {"'descr': '<f4', ", "'descr': '<f4' ", "expected '}' after an item"},
      {"'descr': '<f4', ", "'descr': '<f4', 'descr': '<f4', ", "duplicate key 'descr'"},
      {"'fortran_order': False, ", "", "missing key"},
      {"}", "'}", "unterminated string"},
      {"}", "} x", "unexpected text after the closing '}'"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.to);
    const Status s = Read(Replace(good_, c.from, c.to));
    EXPECT_EQ(s.code(), StatusCode::kDataLoss);
    EXPECT_THAT(s.message(),
                AllOf(HasSubstr("malformed header dict: " + c.problem), HasSubstr("bad.npy")));
  }
}

TEST_F(NpyBadInputTest, HeaderLongerThanTheFile) {
  EXPECT_THAT(Read(good_.substr(0, 40)).message(), HasSubstr("truncated: header length says"));
}

TEST_F(NpyBadInputTest, EveryTruncationFailsCleanly) {
  for (size_t n = 0; n < good_.size(); ++n) {
    EXPECT_FALSE(Read(good_.substr(0, n)).ok()) << n;
  }
}

TEST(NpyFileTest, MissingFileIsNotFoundAndNamesThePath) {
  const Status s = ReadNpy("/nonexistent/input.npy").status();
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_THAT(s.message(), HasSubstr("'/nonexistent/input.npy'"));
}

TEST(NpyFileTest, WriteErrors) {
  const Tensor t = Tensor::FromVector<float>({1}, {1.f});
  EXPECT_EQ(WriteNpy("/nonexistent/dir/out.npy", t).code(), StatusCode::kNotFound);
  const Status bf16 = WriteNpy("/tmp/unused.npy", Tensor(DType::kBFloat16, {2}));
  EXPECT_EQ(bf16.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(bf16.message(), HasSubstr("BF16[2]"));
  EXPECT_EQ(NpyBytes(Tensor()).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace parnet::io
