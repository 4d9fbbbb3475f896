// Image decode, resize and preprocessing against Pillow 9.4 / torchvision 0.14: the reference
// arrays come from make_image_cases.py (run by ctest as the io_images fixture).
#include "runtime/io/image.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "runtime/io/npy.h"

namespace parnet::io {
namespace {

std::string ImageDir() { return std::string(PARNET_IO_TESTDATA) + "/"; }

Tensor MustReadNpy(const std::string& path) {
  StatusOr<Tensor> t = ReadNpy(path);
  EXPECT_TRUE(t.ok()) << t.status().ToString() << " (is the io_images fixture missing?)";
  return t.ok() ? *t : Tensor();
}

Image ImageFromNpy(const Tensor& t) {
  if (t.dtype() != DType::kUInt8 || t.rank() != 3 || t.dim(2) != 3) return Image{};
  const uint8_t* p = t.data<uint8_t>();
  return Image{t.dim(0), t.dim(1), std::vector<uint8_t>(p, p + t.num_elements())};
}

// Largest |a - b| over the pixels and how many differ; a size mismatch reports 256.
struct PixelDiff {
  int max = 0;
  int64_t count = 0;
};
PixelDiff Compare(const Image& got, const Image& want) {
  if (got.height != want.height || got.width != want.width || got.rgb.size() != want.rgb.size()) {
    return {256, -1};
  }
  PixelDiff d;
  for (size_t i = 0; i < got.rgb.size(); ++i) {
    const int diff = std::abs(int{got.rgb[i]} - int{want.rgb[i]});
    d.max = std::max(d.max, diff);
    d.count += diff != 0;
  }
  return d;
}

// Reference sizes are in the file names: NAME.resize.<H>x<W>.npy.
std::vector<std::pair<std::string, std::pair<int64_t, int64_t>>> ResizeReferences(
    const std::string& name) {
  std::vector<std::pair<std::string, std::pair<int64_t, int64_t>>> refs;
  const std::string prefix = name + ".resize.";
  for (const auto& entry : std::filesystem::directory_iterator(ImageDir())) {
    const std::string file = entry.path().filename().string();
    if (!file.starts_with(prefix)) continue;
    int64_t h = 0, w = 0;
    if (std::sscanf(file.c_str() + prefix.size(), "%ldx%ld.npy", &h, &w) == 2) {
      refs.push_back({entry.path().string(), {h, w}});
    }
  }
  return refs;
}

class PillowParityTest : public ::testing::TestWithParam<std::string> {
 protected:
  std::string path() const { return ImageDir() + GetParam(); }
};

TEST_P(PillowParityTest, DecodesToPillowsRgbExactly) {
  StatusOr<Image> img = DecodeImage(path());
  ASSERT_TRUE(img.ok()) << img.status().ToString();
  const PixelDiff d = Compare(*img, ImageFromNpy(MustReadNpy(path() + ".decoded.npy")));
  EXPECT_EQ(d.max, 0) << d.count << " values differ";
}

// Starts from Pillow's own decode so that only the resize is under test.
TEST_P(PillowParityTest, ResizesLikePillowBicubicExactly) {
  const Image src = ImageFromNpy(MustReadNpy(path() + ".decoded.npy"));
  const auto refs = ResizeReferences(GetParam());
  ASSERT_FALSE(refs.empty()) << "no " << GetParam() << ".resize.*.npy";
  for (const auto& [file, size] : refs) {
    const PixelDiff d =
        Compare(ResizeBicubic(src, size.first, size.second), ImageFromNpy(MustReadNpy(file)));
    EXPECT_EQ(d.max, 0) << file << ": " << d.count << " values differ";
  }
}

// torchvision's float32 ops done in the same order give the same bits; the bound of 1/255 before
// normalization that the contract allows is therefore not needed, only float equality.
TEST_P(PillowParityTest, PreprocessesLikeTorchvision) {
  StatusOr<Image> img = DecodeImage(path());
  ASSERT_TRUE(img.ok()) << img.status().ToString();
  const PreprocessOptions opt;
  StatusOr<Tensor> got = PreprocessImage(*img, opt);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  const Tensor want = MustReadNpy(path() + ".tensor.npy");
  ASSERT_EQ(got->TypeString(), "FP32[3,224,224]");
  ASSERT_EQ(want.TypeString(), "FP32[3,224,224]");
  double max_pixel_error = 0;  // in units of 1/255 before normalization
  for (int64_t i = 0; i < want.num_elements(); ++i) {
    const int c = static_cast<int>(i / (int64_t{224} * 224));
    const double diff = std::abs(got->data<float>()[i] - want.data<float>()[i]);
    max_pixel_error = std::max(max_pixel_error, diff * opt.std[c] * 255.0);
  }
  RecordProperty("max_pixel_error", std::to_string(max_pixel_error));
  EXPECT_EQ(max_pixel_error, 0.0) << "max |diff| in 1/255 units";
}

INSTANTIATE_TEST_SUITE_P(Pillow, PillowParityTest,
                         ::testing::Values("landscape_rgb.png", "portrait_q90.jpg", "odd_rgba.png",
                                           "square_gray.png", "small_palette.png", "gray_q90.jpg",
                                           "gray16.png", "cmyk_q90.jpg", "progressive_444.jpg",
                                           "bilevel.png", "gray_alpha.png", "exact_256.png"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string name = info.param;
                           for (char& ch : name)
                             ch = std::isalnum(static_cast<unsigned char>(ch)) ? ch : '_';
                           return name;
                         });

TEST(LoadImageBatchTest, StacksPreprocessedImagesInOrder) {
  const std::vector<std::string> files = {"portrait_q90.jpg", "landscape_rgb.png"};
  StatusOr<Tensor> batch = LoadImageBatch({ImageDir() + files[0], ImageDir() + files[1]}, {});
  ASSERT_TRUE(batch.ok()) << batch.status().ToString();
  ASSERT_EQ(batch->TypeString(), "FP32[2,3,224,224]");
  for (size_t n = 0; n < files.size(); ++n) {
    const Tensor want = MustReadNpy(ImageDir() + files[n] + ".tensor.npy");
    const float* got = batch->data<float>() + n * want.num_elements();
    EXPECT_TRUE(std::equal(got, got + want.num_elements(), want.data<float>())) << files[n];
  }
}

TEST(LoadImageBatchTest, ReportsTheFailingPath) {
  const Status s =
      LoadImageBatch({ImageDir() + "portrait_q90.jpg", "/nonexistent/cat.jpg"}, {}).status();
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_NE(s.message().find("/nonexistent/cat.jpg"), std::string::npos) << s.message();
  EXPECT_EQ(LoadImageBatch({}, {}).status().code(), StatusCode::kInvalidArgument);
}

TEST(PreprocessImageTest, RejectsInvalidImagesAndOptions) {
  const Image tiny{2, 2, std::vector<uint8_t>(12, 7)};
  EXPECT_EQ(PreprocessImage(Image{2, 2, {}}, {}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(PreprocessImage(Image{}, {}).status().code(), StatusCode::kInvalidArgument);
  PreprocessOptions opt;
  opt.crop_fraction = 1.5;
  EXPECT_EQ(PreprocessImage(tiny, opt).status().code(), StatusCode::kInvalidArgument);
  opt = {};
  opt.size = 0;
  EXPECT_EQ(PreprocessImage(tiny, opt).status().code(), StatusCode::kInvalidArgument);
  opt = {};
  opt.std[1] = 0.f;
  EXPECT_EQ(PreprocessImage(tiny, opt).status().code(), StatusCode::kInvalidArgument);
}

TEST(PreprocessImageTest, CropFractionOneCropsTheWholeShortSide) {
  PreprocessOptions opt;
  opt.size = 4;
  opt.crop_fraction = 1.0;
  opt.mean = {0.f, 0.f, 0.f};
  opt.std = {1.f, 1.f, 1.f};
  Image img{4, 6, std::vector<uint8_t>(72)};
  for (size_t i = 0; i < img.rgb.size(); ++i) img.rgb[i] = static_cast<uint8_t>(i);
  StatusOr<Tensor> t = PreprocessImage(img, opt);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  // No resize (short side already 4); the 4x4 crop starts at column round(2 / 2.0) = 1.
  EXPECT_EQ(t->data<float>()[0], img.rgb[(0 * 6 + 1) * 3 + 0] / 255.0f);
  EXPECT_EQ(t->data<float>()[16 + 5], img.rgb[(1 * 6 + 2) * 3 + 1] / 255.0f);
}

TEST(ResizeBicubicTest, SameSizeIsACopyAndBadSizesGiveAnEmptyImage) {
  const Image img{2, 3, std::vector<uint8_t>(18, 9)};
  EXPECT_EQ(ResizeBicubic(img, 2, 3).rgb, img.rgb);
  EXPECT_TRUE(ResizeBicubic(img, 0, 3).rgb.empty());
  EXPECT_TRUE(ResizeBicubic(img, 2, -1).rgb.empty());
  EXPECT_TRUE(ResizeBicubic(Image{2, 3, {}}, 4, 4).rgb.empty());
}

TEST(ResizeBicubicTest, ConstantImageStaysConstant) {
  const Image img{7, 5, std::vector<uint8_t>(105, 200)};
  for (auto [h, w] : {std::pair{1, 1}, {3, 2}, {20, 13}, {7, 11}}) {
    const Image out = ResizeBicubic(img, h, w);
    ASSERT_EQ(out.rgb.size(), static_cast<size_t>(h * w * 3));
    for (uint8_t v : out.rgb) EXPECT_EQ(v, 200);
  }
}

}  // namespace
}  // namespace parnet::io
