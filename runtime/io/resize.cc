// Pillow 9.4's ImagingResample (src/libImaging/Resample.c) for 8-bit RGB with the BICUBIC filter,
// re-derived so that results are bit-identical. The facts that matter for exactness:
//  - the kernel is Keys' cubic with a = -0.5, evaluated in double in Pillow's operation order;
//  - when shrinking, the kernel is stretched by scale = in / out (support 2 * scale), which is
//    what makes the resize antialiased; when enlarging, support stays 2;
//  - each output pixel's window is [int(center - support + 0.5), int(center + support + 0.5))
//    clipped to the image, its weights are normalized to sum 1, then rounded half away from zero
//    to 22 fractional bits (32 - 8 - 2: 8 bits of data, 2 of headroom for negative lobes);
//  - each sum starts at 0.5 in that fixed point, is shifted down and clipped to [0, 255];
//  - horizontal pass first, rounded to uint8, then vertical; a pass whose size is unchanged is
//    skipped entirely (not run as an identity filter).
#include <algorithm>
#include <cmath>

#include "runtime/io/image.h"

namespace parnet::io {
namespace {

constexpr int kPrecisionBits = 32 - 8 - 2;

double BicubicKernel(double x) {
  constexpr double a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

// For each output index: the first input index, how many inputs, and their fixed-point weights
// (`ksize` slots per output, unused ones zero).
struct Taps {
  int ksize = 0;
  std::vector<int> first, count;
  std::vector<int32_t> weights;
};

Taps ComputeTaps(int in_size, int out_size) {
  const double scale = static_cast<double>(in_size) / out_size;
  const double filterscale = std::max(scale, 1.0);
  const double support = 2.0 * filterscale;
  Taps t;
  t.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  t.first.resize(out_size);
  t.count.resize(out_size);
  t.weights.assign(static_cast<size_t>(out_size) * t.ksize, 0);
  std::vector<double> w(t.ksize);
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = (xx + 0.5) * scale;
    const double inv = 1.0 / filterscale;
    // Pillow rounds the window ends (here) and the weights (below) by adding +-0.5 and truncating
    // toward zero; std::lround can differ on near-ties, so the truncation is deliberate.
    // NOLINTBEGIN(bugprone-incorrect-roundings)
    const int xmin = std::max(static_cast<int>(center - support + 0.5), 0);
    const int xmax = std::min(static_cast<int>(center + support + 0.5), in_size) - xmin;
    // NOLINTEND(bugprone-incorrect-roundings)
    double sum = 0.0;
    for (int x = 0; x < xmax; ++x) {
      w[x] = BicubicKernel((x + xmin - center + 0.5) * inv);
      sum += w[x];
    }
    int32_t* k = &t.weights[static_cast<size_t>(xx) * t.ksize];
    for (int x = 0; x < xmax; ++x) {
      const double v = (sum != 0.0 ? w[x] / sum : w[x]) * (1 << kPrecisionBits);
      k[x] = static_cast<int32_t>(v < 0 ? -0.5 + v : 0.5 + v);
    }
    t.first[xx] = xmin;
    t.count[xx] = std::max(xmax, 0);
  }
  return t;
}

// Rounds a fixed-point sum to uint8. The weights' absolute sum stays below 2, so 255 * it fits
// in int32 with the two headroom bits.
uint8_t Clip8(int32_t acc) {
  return static_cast<uint8_t>(std::clamp(acc >> kPrecisionBits, 0, 255));
}

Image ResampleHorizontal(const Image& in, int out_w) {
  const Taps taps = ComputeTaps(static_cast<int>(in.width), out_w);
  Image out{in.height, out_w, std::vector<uint8_t>(static_cast<size_t>(in.height) * out_w * 3)};
  for (int64_t y = 0; y < in.height; ++y) {
    const uint8_t* row = &in.rgb[static_cast<size_t>(y) * in.width * 3];
    uint8_t* dst = &out.rgb[static_cast<size_t>(y) * out_w * 3];
    for (int xx = 0; xx < out_w; ++xx) {
      const int32_t* k = &taps.weights[static_cast<size_t>(xx) * taps.ksize];
      const uint8_t* src = row + static_cast<size_t>(taps.first[xx]) * 3;
      int32_t acc[3] = {1 << (kPrecisionBits - 1), 1 << (kPrecisionBits - 1),
                        1 << (kPrecisionBits - 1)};
      for (int i = 0; i < taps.count[xx]; ++i) {
        for (int c = 0; c < 3; ++c) acc[c] += src[i * 3 + c] * k[i];
      }
      for (int c = 0; c < 3; ++c) dst[xx * 3 + c] = Clip8(acc[c]);
    }
  }
  return out;
}

Image ResampleVertical(const Image& in, int out_h) {
  const Taps taps = ComputeTaps(static_cast<int>(in.height), out_h);
  const size_t stride = static_cast<size_t>(in.width) * 3;
  Image out{out_h, in.width, std::vector<uint8_t>(out_h * stride)};
  for (int yy = 0; yy < out_h; ++yy) {
    const int32_t* k = &taps.weights[static_cast<size_t>(yy) * taps.ksize];
    const uint8_t* src = &in.rgb[taps.first[yy] * stride];
    uint8_t* dst = &out.rgb[yy * stride];
    for (size_t x = 0; x < stride; ++x) {
      int32_t acc = 1 << (kPrecisionBits - 1);
      for (int i = 0; i < taps.count[yy]; ++i) acc += src[i * stride + x] * k[i];
      dst[x] = Clip8(acc);
    }
  }
  return out;
}

}  // namespace

Image ResizeBicubic(const Image& in, int64_t out_h, int64_t out_w) {
  // Pillow's sizes are C ints; so are ours, which also keeps the int32 accumulators in range.
  constexpr int64_t kMaxSide = 1 << 24;
  const bool valid = in.height > 0 && in.width > 0 && in.height <= kMaxSide &&
                     in.width <= kMaxSide &&
                     in.rgb.size() == static_cast<size_t>(in.height * in.width * 3);
  if (!valid || out_h <= 0 || out_w <= 0 || out_h > kMaxSide || out_w > kMaxSide) return Image{};
  if (out_w == in.width && out_h == in.height) return in;
  if (out_w == in.width) return ResampleVertical(in, static_cast<int>(out_h));
  Image horizontal = ResampleHorizontal(in, static_cast<int>(out_w));
  if (out_h == in.height) return horizontal;
  return ResampleVertical(horizontal, static_cast<int>(out_h));
}

}  // namespace parnet::io
