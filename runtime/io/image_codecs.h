// The PNG and JPEG decoders behind DecodeImageBytes. Internal to runtime/io.
#pragma once

#include <cstdint>
#include <string_view>

#include "runtime/core/status.h"
#include "runtime/io/image.h"

namespace parnet::io::internal {

// Pillow refuses images above twice its MAX_IMAGE_PIXELS (DecompressionBombError); so do we, before
// allocating, so that a crafted header cannot make us reserve gigabytes.
inline constexpr int64_t kMaxImagePixels = 2 * 89478485;

// INVALID_ARGUMENT when width x height is empty or above kMaxImagePixels.
Status CheckImageSize(int64_t width, int64_t height);

// Each decodes a whole file's bytes to RGB as image.h describes. Messages do not name the file;
// DecodeImageBytes adds it.
StatusOr<Image> DecodePng(std::string_view bytes);
StatusOr<Image> DecodeJpeg(std::string_view bytes);

}  // namespace parnet::io::internal
