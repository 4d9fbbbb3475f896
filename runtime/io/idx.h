// IDX files (the MNIST / Fashion-MNIST format), plain or gzip-compressed.
#pragma once

#include <string>
#include <string_view>

#include "runtime/core/status.h"
#include "runtime/core/tensor.h"

namespace parnet::io {

// Reads an IDX file of unsigned bytes (type code 0x08) into a UINT8 tensor whose shape is the
// header's dimensions (big-endian). A name ending in ".gz" is decompressed with zlib. Errors name
// the path: NOT_FOUND, INVALID_ARGUMENT (bad magic, unsupported type code), DATA_LOSS (the body is
// shorter or longer than the header says).
StatusOr<Tensor> ReadIdx(const std::string& path);
// The same on bytes already decompressed; `source` names them in messages.
StatusOr<Tensor> ParseIdx(std::string_view bytes, const std::string& source);

}  // namespace parnet::io
