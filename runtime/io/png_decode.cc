// PNG via libpng. Pillow has its own PNG reader; what must agree is the conversion to RGB, which
// follows Pillow's modes for each (bit depth, color type) pair (PngImagePlugin._MODES):
// palettes are looked up, gray replicated, alpha dropped, 16-bit samples keep their high byte,
// except 16-bit gray, which Pillow opens as mode "I" and converts to RGB by clipping to 255.
#include <png.h>

#include <algorithm>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <vector>

#include "runtime/io/image_codecs.h"

namespace parnet::io::internal {
namespace {

// Everything the setjmp frame in RunLibpng touches lives here, in the caller's frame, so that
// libpng's longjmp skips no C++ object with a destructor and no non-volatile local is reread.
struct PngJob {
  std::string_view bytes;
  size_t pos = 0;
  char error[256] = {};
  Status size_error;
  bool gray16 = false;  // 16-bit grayscale: Pillow's mode "I"
  int channels = 0;
  png_uint_32 width = 0, height = 0;
  std::vector<uint8_t> pixels;
  std::vector<png_bytep> rows;
};

void OnPngError(png_structp png, png_const_charp message) {
  auto* job = static_cast<PngJob*>(png_get_error_ptr(png));
  std::snprintf(job->error, sizeof(job->error), "%s", message);
  png_longjmp(png, 1);
}

// Warnings concern ancillary data that does not change the pixels; Pillow ignores them too.
void OnPngWarning(png_structp, png_const_charp) {}

void ReadFromMemory(png_structp png, png_bytep out, size_t n) {
  auto* job = static_cast<PngJob*>(png_get_io_ptr(png));
  if (job->bytes.size() - job->pos < n) png_error(png, "unexpected end of file (truncated PNG)");
  std::memcpy(out, job->bytes.data() + job->pos, n);
  job->pos += n;
}

// Asks libpng for 8-bit samples (16 only for gray16) and 1 to 4 channels; RowsToRgb does the rest.
void ChooseTransforms(png_structp png, png_infop info, PngJob* job) {
  const int color = png_get_color_type(png, info);
  const int depth = png_get_bit_depth(png, info);
  if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
  job->gray16 = color == PNG_COLOR_TYPE_GRAY && depth == 16;
  if (depth == 16 && !job->gray16) png_set_strip_16(png);  // keeps the high byte, as Pillow
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
}

// Returns false when libpng failed (job->error says why) or the size is refused (job->size_error).
bool RunLibpng(png_structp png, png_infop info, PngJob* job) {
  if (setjmp(png_jmpbuf(png))) return false;  // NOLINT(cert-err52-cpp): libpng's error model
  // Pillow rejects a bad CRC in any chunk; libpng by default only in critical ones.
  png_set_crc_action(png, PNG_CRC_ERROR_QUIT, PNG_CRC_ERROR_QUIT);
  png_set_read_fn(png, job, ReadFromMemory);
  png_read_info(png, info);
  job->width = png_get_image_width(png, info);
  job->height = png_get_image_height(png, info);
  job->size_error = CheckImageSize(job->width, job->height);
  if (!job->size_error.ok()) return false;
  ChooseTransforms(png, info, job);
  job->channels = png_get_channels(png, info);
  const size_t row_bytes = png_get_rowbytes(png, info);
  job->pixels.resize(row_bytes * job->height);
  job->rows.resize(job->height);
  for (png_uint_32 y = 0; y < job->height; ++y) job->rows[y] = &job->pixels[y * row_bytes];
  png_read_image(png, job->rows.data());
  // No png_read_end: Pillow accepts a file whose image data is complete but whose trailing
  // chunks (IEND) are missing, and so do we.
  return true;
}

Image RowsToRgb(const PngJob& job) {
  Image img{job.height, job.width, std::vector<uint8_t>(size_t{job.height} * job.width * 3)};
  const int ch = job.channels;
  const size_t n = size_t{job.height} * job.width;
  for (size_t i = 0; i < n; ++i) {
    uint8_t* out = &img.rgb[i * 3];
    if (job.gray16) {
      const int v = (job.pixels[i * 2] << 8) | job.pixels[i * 2 + 1];  // PNG is big-endian
      out[0] = out[1] = out[2] = static_cast<uint8_t>(std::min(v, 255));
    } else if (ch <= 2) {  // gray, gray + alpha
      out[0] = out[1] = out[2] = job.pixels[i * ch];
    } else {  // RGB, RGBA
      std::memcpy(out, &job.pixels[i * ch], 3);
    }
  }
  return img;
}

}  // namespace

StatusOr<Image> DecodePng(std::string_view bytes) {
  PngJob job;
  job.bytes = bytes;
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &job, OnPngError, OnPngWarning);
  if (png == nullptr) return Internal("libpng: png_create_read_struct failed (out of memory?)");
  png_infop info = png_create_info_struct(png);
  const bool ok = info != nullptr && RunLibpng(png, info, &job);
  png_destroy_read_struct(&png, info ? &info : nullptr, nullptr);
  if (!job.size_error.ok()) return job.size_error;
  if (!ok) {
    return DataLoss(std::string("corrupt or truncated PNG: libpng says \"") + job.error +
                    "\" after " + std::to_string(job.pos) + " of " + std::to_string(bytes.size()) +
                    " bytes; re-export or re-download the file");
  }
  if (job.channels < 1 || job.channels > 4 || (job.gray16 && job.channels != 1)) {
    return Internal("libpng produced " + std::to_string(job.channels) + " channels");
  }
  return RowsToRgb(job);
}

}  // namespace parnet::io::internal
