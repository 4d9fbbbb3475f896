// Images for `parnet run --input cat.jpg`: decode PNG/JPEG to 8-bit RGB, resize, and turn them
// into the normalized FP32 tensors that ImageNet-trained ParNets expect.
//
// Parity target: Pillow 9.4 + torchvision 0.14, the reference the models are evaluated with.
// DecodeImage gives the pixels of np.asarray(PIL.Image.open(p).convert('RGB')); ResizeBicubic the
// pixels of img.resize((w, h), Image.BICUBIC); PreprocessImage the tensor of
// Compose([Resize(size / crop_fraction, BICUBIC), CenterCrop(size), ToTensor(), Normalize(...)]).
//
// Thread-safety: all functions are reentrant; they share no state. None aborts on bad input.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/core/status.h"
#include "runtime/core/tensor.h"

namespace parnet::io {

// An 8-bit RGB image, row-major HWC: pixel (y, x) channel c is rgb[(y * width + x) * 3 + c].
// A valid image has rgb.size() == height * width * 3.
struct Image {
  int64_t height = 0, width = 0;
  std::vector<uint8_t> rgb;
};

// Decodes a PNG or JPEG file, recognised by its magic bytes (never its extension), to RGB the way
// Pillow's Image.convert('RGB') does: alpha dropped, gray replicated, palettes looked up, 16-bit
// PNG channels reduced to their high byte (16-bit grayscale is clipped to 255, as Pillow's mode
// "I" conversion does), JPEG decoded by libjpeg-turbo's default ISLOW DCT, CMYK JPEGs converted
// with Pillow's formula. Errors name the path: NOT_FOUND (no file), INVALID_ARGUMENT (unknown
// format, too large), DATA_LOSS (truncated or corrupt data).
StatusOr<Image> DecodeImage(const std::string& path);

// DecodeImage on bytes already in memory; `source` names them in error messages.
StatusOr<Image> DecodeImageBytes(std::string_view bytes, const std::string& source);

// Pillow 9.4's antialiased BICUBIC resize (ImagingResample, a = -0.5) of an 8-bit RGB image:
// separable, horizontal pass first, 22-bit fixed-point coefficients and uint8 rounding between
// the passes, so the result equals PIL's pixel for pixel. An axis whose size does not change is
// not resampled, as in Pillow. Returns an empty Image when out_h or out_w is not positive or `in`
// is not a valid image.
Image ResizeBicubic(const Image& in, int64_t out_h, int64_t out_w);

// The ImageNet evaluation transform of timm and torchvision.
struct PreprocessOptions {
  int64_t size = 224;            // side of the square center crop
  double crop_fraction = 0.875;  // the shorter side is first resized to floor(size / crop_fraction)
  std::array<float, 3> mean = {0.485f, 0.456f, 0.406f};
  std::array<float, 3> std = {0.229f, 0.224f, 0.225f};
};

// Resizes `img` so its shorter side is floor(opt.size / opt.crop_fraction) (the longer side as
// torchvision.transforms.Resize(int) computes it), center-crops opt.size x opt.size (torchvision
// CenterCrop's rounding), scales to [0, 1] and normalizes per channel: (x / 255 - mean) / std, in
// FP32 as torch does. Returns FP32 [3, size, size] (CHW). INVALID_ARGUMENT for an invalid image
// or options.
StatusOr<Tensor> PreprocessImage(const Image& img, const PreprocessOptions& opt);

// Decodes and preprocesses each path into one FP32 [N, 3, size, size] batch. The first failing
// path's error is returned. INVALID_ARGUMENT for an empty list.
StatusOr<Tensor> LoadImageBatch(const std::vector<std::string>& paths,
                                const PreprocessOptions& opt);

}  // namespace parnet::io
