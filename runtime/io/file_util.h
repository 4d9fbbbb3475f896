// Whole-file reads and writes for the io layer, with errors that name the file and say how to fix.
// Internal to runtime/io: not part of its public API.
#pragma once

#include <string>
#include <string_view>

#include "runtime/core/status.h"

namespace parnet::io {

// Reads all bytes of `path`. `what` names the file in messages ("npy file", "image").
// NOT_FOUND when it does not exist, PERMISSION_DENIED when it cannot be read, DATA_LOSS when the
// read fails midway.
StatusOr<std::string> ReadFileBytes(const std::string& path, const std::string& what);

// Replaces `path` with `bytes`. Errors name the file and the system's reason.
Status WriteFileBytes(const std::string& path, std::string_view bytes, const std::string& what);

}  // namespace parnet::io
