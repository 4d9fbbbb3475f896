#include "runtime/io/idx.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace parnet::io {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

// An IDX header: 00 00 <type> <rank>, then big-endian 32-bit dims.
std::string Header(unsigned char type, std::vector<uint32_t> dims) {
  std::string h = {'\0', '\0', static_cast<char>(type), static_cast<char>(dims.size())};
  for (uint32_t d : dims) {
    for (int shift : {24, 16, 8, 0}) h += static_cast<char>((d >> shift) & 0xff);
  }
  return h;
}

TEST(IdxTest, ReadsUnsignedBytes) {
  auto t = ParseIdx(Header(0x08, {2, 3}) + std::string("\x01\x02\x03\x04\x05\x06", 6), "ok");
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t->shape(), (Shape{2, 3}));
  EXPECT_EQ(t->data<uint8_t>()[5], 6);
}

TEST(IdxTest, DimensionsWhoseProductOverflowsAreRefused) {
  // 2^16 four times is 2^64 elements: the count used to wrap to 0 and match an empty body.
  auto t = ParseIdx(Header(0x08, {1u << 16, 1u << 16, 1u << 16, 1u << 16}), "huge.idx");
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), StatusCode::kDataLoss);
  EXPECT_THAT(t.status().message(), AllOf(HasSubstr("huge.idx"), HasSubstr("too many")));
  // Declared far larger than the body: refused before allocating.
  auto big = ParseIdx(Header(0x08, {1u << 30, 1u << 30}) + "x", "big.idx");
  ASSERT_FALSE(big.ok());
  EXPECT_THAT(big.status().message(), HasSubstr("download it again"));
}

TEST(IdxTest, MagicAndTypeCodeArePrintedInHex) {
  auto type = ParseIdx(Header(0x0d, {1}) + std::string(4, '\0'), "floats.idx");
  ASSERT_FALSE(type.ok());
  EXPECT_THAT(type.status().message(), AllOf(HasSubstr("0x0d"), HasSubstr("(0x08)")));
  auto magic = ParseIdx(std::string("\x1f\x8b\x08\x00", 4), "gz.idx");
  ASSERT_FALSE(magic.ok());
  EXPECT_THAT(magic.status().message(), AllOf(HasSubstr("0x1f 0x8b 0x08 0x00"), HasSubstr(".gz")));
}

}  // namespace
}  // namespace parnet::io
