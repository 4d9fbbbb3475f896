#include "runtime/io/image.h"

#include <cmath>
#include <cstdio>
#include <cstring>

#include "runtime/io/file_util.h"
#include "runtime/io/image_codecs.h"

namespace parnet::io {
namespace internal {

Status CheckImageSize(int64_t width, int64_t height) {
  if (width <= 0 || height <= 0) {
    return InvalidArgument("image header says " + std::to_string(width) + "x" +
                           std::to_string(height) + " pixels; the file is corrupt");
  }
  if (width * height > kMaxImagePixels) {
    return InvalidArgument("image is " + std::to_string(width) + "x" + std::to_string(height) +
                           " = " + std::to_string(width * height) + " pixels, above the limit of " +
                           std::to_string(kMaxImagePixels) +
                           " (Pillow's decompression-bomb "
                           "limit); downscale it first");
  }
  return Status::Ok();
}

}  // namespace internal

namespace {

constexpr std::string_view kPngMagic("\x89PNG\r\n\x1a\n", 8);
constexpr std::string_view kJpegMagic("\xff\xd8\xff", 3);

std::string FirstBytesHex(std::string_view bytes) {
  std::string s;
  for (size_t i = 0; i < std::min<size_t>(bytes.size(), 8); ++i) {
    char hex[4];
    std::snprintf(hex, sizeof(hex), "%02x", static_cast<unsigned char>(bytes[i]));
    s += (i ? " " : "") + std::string(hex);
  }
  return s;
}

StatusOr<Image> DecodeByMagic(std::string_view bytes) {
  if (bytes.empty()) return InvalidArgument("the file is empty; expected a PNG or JPEG image");
  if (bytes.starts_with(kPngMagic)) return internal::DecodePng(bytes);
  if (bytes.starts_with(kJpegMagic)) return internal::DecodeJpeg(bytes);
  return InvalidArgument("unknown image format: the first bytes are " + FirstBytesHex(bytes) +
                         ", neither PNG (89 50 4e 47) nor JPEG (ff d8 ff); parnet reads PNG and "
                         "JPEG, whatever the extension says; convert the image to one of them");
}

Status CheckImage(const Image& img) {
  if (img.height <= 0 || img.width <= 0 ||
      img.rgb.size() != static_cast<size_t>(img.height) * img.width * 3) {
    return InvalidArgument("invalid image: " + std::to_string(img.height) + "x" +
                           std::to_string(img.width) + " with " + std::to_string(img.rgb.size()) +
                           " bytes; expected height * width * 3 > 0 bytes of RGB");
  }
  return Status::Ok();
}

Status CheckOptions(const PreprocessOptions& opt) {
  if (opt.size <= 0 || opt.size > (1 << 16)) {
    return InvalidArgument("preprocess size " + std::to_string(opt.size) +
                           " is out of range; use a crop side in [1, 65536], e.g. 224");
  }
  if (!(opt.crop_fraction > 0.0 && opt.crop_fraction <= 1.0)) {
    return InvalidArgument("crop_fraction " + std::to_string(opt.crop_fraction) +
                           " is out of range; use a value in (0, 1], e.g. 0.875");
  }
  for (int c = 0; c < 3; ++c) {
    if (!(std::isfinite(opt.std[c]) && opt.std[c] != 0.0f && std::isfinite(opt.mean[c]))) {
      return InvalidArgument("normalization of channel " + std::to_string(c) + ": mean " +
                             std::to_string(opt.mean[c]) + ", std " + std::to_string(opt.std[c]) +
                             "; both must be finite and std non-zero");
    }
  }
  return Status::Ok();
}

// torchvision 0.14 Resize(int): the shorter side becomes `short_side` and the longer one
// int(short_side * long / short), a truncated float division (not a rounding).
void ResizedSize(int64_t h, int64_t w, int64_t short_side, int64_t& out_h, int64_t& out_w) {
  const int64_t shorter = std::min(h, w), longer = std::max(h, w);
  const auto new_long =
      static_cast<int64_t>(static_cast<double>(short_side * longer) / static_cast<double>(shorter));
  out_h = w <= h ? new_long : short_side;
  out_w = w <= h ? short_side : new_long;
}

// torchvision CenterCrop: int(round((extent - crop) / 2.0)). Python rounds halves to even, so an
// odd margin of 2k + 1 starts the crop at k when k is even and at k + 1 when k is odd.
int64_t CenterOffset(int64_t extent, int64_t crop) {
  const int64_t margin = extent - crop;
  int64_t offset = margin / 2;
  if (margin % 2 == 1 && offset % 2 == 1) ++offset;
  return offset;
}

// Crops and normalizes into `out` (3 * size * size floats, CHW). torch computes ToTensor as a
// float division by 255 and Normalize as (x - mean) / std, both in FP32; the same operations in
// the same order give the same bits.
void CropAndNormalize(const Image& img, int64_t top, int64_t left, const PreprocessOptions& opt,
                      float* out) {
  const int64_t s = opt.size;
  for (int64_t y = 0; y < s; ++y) {
    const uint8_t* row = &img.rgb[static_cast<size_t>((top + y) * img.width + left) * 3];
    for (int64_t x = 0; x < s; ++x) {
      for (int c = 0; c < 3; ++c) {
        const float v = static_cast<float>(row[x * 3 + c]) / 255.0f;
        out[(c * s + y) * s + x] = (v - opt.mean[c]) / opt.std[c];
      }
    }
  }
}

}  // namespace

StatusOr<Image> DecodeImageBytes(std::string_view bytes, const std::string& source) {
  StatusOr<Image> img = DecodeByMagic(bytes);
  if (!img.ok()) return img.status().WithContext("image '" + source + "'");
  return img;
}

StatusOr<Image> DecodeImage(const std::string& path) {
  ASSIGN_OR_RETURN(std::string bytes, ReadFileBytes(path, "image"));
  return DecodeImageBytes(bytes, path);
}

StatusOr<Tensor> PreprocessImage(const Image& img, const PreprocessOptions& opt) {
  RETURN_IF_ERROR(CheckImage(img));
  RETURN_IF_ERROR(CheckOptions(opt));
  const auto short_side =
      static_cast<int64_t>(std::floor(static_cast<double>(opt.size) / opt.crop_fraction));
  int64_t h = 0, w = 0;
  ResizedSize(img.height, img.width, short_side, h, w);
  if (h < opt.size || w < opt.size) {
    return InvalidArgument("image " + std::to_string(img.height) + "x" + std::to_string(img.width) +
                           " resizes to " + std::to_string(h) + "x" + std::to_string(w) +
                           ", smaller than the " + std::to_string(opt.size) + "x" +
                           std::to_string(opt.size) + " crop; use a larger image");
  }
  const bool same = h == img.height && w == img.width;
  const Image resized = same ? Image{} : ResizeBicubic(img, h, w);
  const Image& src = same ? img : resized;
  if (src.rgb.empty())
    return InvalidArgument("cannot resize the image to " + std::to_string(h) + "x" +
                           std::to_string(w));
  Tensor t(DType::kFloat32, {3, opt.size, opt.size});
  CropAndNormalize(src, CenterOffset(h, opt.size), CenterOffset(w, opt.size), opt, t.data<float>());
  return t;
}

StatusOr<Tensor> LoadImageBatch(const std::vector<std::string>& paths,
                                const PreprocessOptions& opt) {
  if (paths.empty()) return InvalidArgument("no images given; pass at least one image path");
  RETURN_IF_ERROR(CheckOptions(opt));
  const int64_t n = static_cast<int64_t>(paths.size());
  Tensor batch(DType::kFloat32, {n, 3, opt.size, opt.size});
  const size_t per_image = static_cast<size_t>(3 * opt.size * opt.size);
  for (int64_t i = 0; i < n; ++i) {
    ASSIGN_OR_RETURN(Image img, DecodeImage(paths[i]));
    StatusOr<Tensor> one = PreprocessImage(img, opt);
    if (!one.ok()) return one.status().WithContext("image '" + paths[i] + "'");
    std::memcpy(batch.data<float>() + i * per_image, one->data<float>(), per_image * 4);
  }
  return batch;
}

}  // namespace parnet::io
