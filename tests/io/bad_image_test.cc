// Broken, truncated and foreign files must give an error that names the path, never a crash (this
// test also runs under AddressSanitizer, label "asan").
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <random>
#include <sstream>

#include "runtime/io/image.h"

namespace parnet::io {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string Reference(const std::string& name) {
  std::string bytes = ReadAll(std::string(PARNET_IO_TESTDATA) + "/" + name);
  EXPECT_FALSE(bytes.empty()) << name << " missing: is the io_images fixture missing?";
  return bytes;
}

// Writes `bytes` to a file of its own (tests may run in parallel) and returns its path.
std::string WriteTemp(const std::string& name, const std::string& bytes) {
  std::string path = ::testing::TempDir() + "parnet_io_" + std::to_string(getpid()) + "_" + name;
  std::ofstream(path, std::ios::binary) << bytes;
  return path;
}

// Decodes `bytes` saved as `name`; expects failure with a message naming the file and `problem`.
void ExpectDecodeError(const std::string& name, const std::string& bytes,
                       const std::string& problem) {
  const std::string path = WriteTemp(name, bytes);
  const StatusOr<Image> img = DecodeImage(path);
  std::remove(path.c_str());
  ASSERT_FALSE(img.ok()) << name << " decoded";
  EXPECT_THAT(img.status().message(), AllOf(HasSubstr("'" + path + "'"), HasSubstr(problem)));
}

TEST(BadImageTest, EmptyFile) { ExpectDecodeError("empty.png", "", "the file is empty"); }

TEST(BadImageTest, RandomBytesWithAJpegName) {
  std::mt19937 rng(42);
  std::string bytes(4096, '\0');
  for (char& c : bytes) c = static_cast<char>(rng());
  ExpectDecodeError("random.jpg", bytes, "unknown image format");
}

TEST(BadImageTest, TextFile) {
  ExpectDecodeError("notes.png", "this is not an image\n",
                    "unknown image format: the first "
                    "bytes are 74 68 69 73");
}

TEST(BadImageTest, TruncatedJpeg) {
  const std::string jpeg = Reference("portrait_q90.jpg");
  ExpectDecodeError("truncated.jpg", jpeg.substr(0, jpeg.size() * 4 / 10),
                    "corrupt or truncated JPEG");
  ExpectDecodeError("header_only.jpg", jpeg.substr(0, 30), "corrupt or truncated JPEG");
  const std::string progressive = Reference("progressive_444.jpg");
  ExpectDecodeError("truncated_progressive.jpg", progressive.substr(0, progressive.size() / 2),
                    "corrupt or truncated JPEG");
}

TEST(BadImageTest, TruncatedPng) {
  const std::string png = Reference("landscape_rgb.png");
  ExpectDecodeError("truncated.png", png.substr(0, png.size() * 4 / 10),
                    "corrupt or truncated PNG");
  ExpectDecodeError("signature_only.png", png.substr(0, 8), "truncated PNG");
}

TEST(BadImageTest, PngWithACorruptChunk) {
  std::string png = Reference("landscape_rgb.png");
  png[png.size() / 2] ^= 0x55;  // inside IDAT: its CRC no longer matches
  ExpectDecodeError("corrupt.png", png, "corrupt or truncated PNG");
}

TEST(BadImageTest, MissingFileIsNotFound) {
  const Status s = DecodeImage("/nonexistent/cat.jpg").status();
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_THAT(s.message(), HasSubstr("'/nonexistent/cat.jpg'"));
}

TEST(BadImageTest, DirectoryIsAnError) {
  const Status s = DecodeImage(::testing::TempDir()).status();
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(s.message(), HasSubstr(::testing::TempDir()));
}

uint32_t Crc32(std::string_view bytes) {
  uint32_t crc = 0xFFFFFFFFu;
  for (char ch : bytes) {
    crc ^= static_cast<uint8_t>(ch);
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1)));
  }
  return ~crc;
}

void PutBigEndian(std::string& s, size_t pos, uint32_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) s[pos + i] = static_cast<char>(v >> (8 * (bytes - 1 - i)));
}

// A header claiming 60000 x 60000 pixels must be refused before any pixel buffer is allocated.
TEST(BadImageTest, RefusesDecompressionBombs) {
  std::string png = Reference("landscape_rgb.png");
  // Signature (8), IHDR length (4) and type (4), then width and height, then the CRC at 29.
  PutBigEndian(png, 16, 60000, 4);
  PutBigEndian(png, 20, 60000, 4);
  PutBigEndian(png, 29, Crc32(std::string_view(png).substr(12, 17)), 4);
  ExpectDecodeError("bomb.png", png, "60000x60000 = 3600000000 pixels, above the limit");

  std::string jpeg = Reference("portrait_q90.jpg");
  const size_t sof = jpeg.find("\xff\xc0");
  ASSERT_NE(sof, std::string::npos);
  PutBigEndian(jpeg, sof + 5, 60000, 2);  // height, then width
  PutBigEndian(jpeg, sof + 7, 60000, 2);
  ExpectDecodeError("bomb.jpg", jpeg, "above the limit");
}

// Many cut points and random byte flips in every format: whatever the decoders make of them,
// they must return (an image or an error naming the source), not crash or leak under ASan.
TEST(BadImageTest, DamagedFilesNeverCrash) {
  std::mt19937 rng(7);
  for (const char* name : {"landscape_rgb.png", "small_palette.png", "gray16.png",
                           "portrait_q90.jpg", "progressive_444.jpg", "cmyk_q90.jpg"}) {
    const std::string good = Reference(name);
    for (int trial = 0; trial < 24; ++trial) {
      std::string bytes = good;
      if (trial % 2 == 0) {
        bytes.resize(rng() % good.size());
      } else {
        for (int i = 0; i < 4; ++i) {
          char& b = bytes[8 + rng() % (good.size() - 8)];
          b = static_cast<char>(static_cast<uint8_t>(b) ^ (1 + rng() % 255));
        }
      }
      const StatusOr<Image> img = DecodeImageBytes(bytes, name);
      if (!img.ok()) {
        EXPECT_THAT(img.status().message(), HasSubstr(name));
      } else {
        EXPECT_EQ(img->rgb.size(), static_cast<size_t>(img->height * img->width * 3));
      }
    }
  }
}

}  // namespace
}  // namespace parnet::io
