#include "runtime/io/file_util.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

namespace parnet::io {
namespace {

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};
using File = std::unique_ptr<std::FILE, FileCloser>;

// Maps the errno of a failed fopen to a canonical code, so callers can tell "no such file" from
// "not allowed" without parsing text.
Status OpenError(const std::string& path, const std::string& what, const char* action, int err) {
  std::string msg =
      "cannot open " + what + " '" + path + "' for " + action + ": " + std::strerror(err);
  if (err == ENOENT) return NotFound(msg + "; check the path");
  if (err == EACCES || err == EPERM) {
    return Status(StatusCode::kPermissionDenied, msg + "; check the file's permissions");
  }
  if (err == EISDIR) return InvalidArgument(msg + "; pass a file, not a directory");
  return InvalidArgument(msg);
}

}  // namespace

StatusOr<std::string> ReadFileBytes(const std::string& path, const std::string& what) {
  File f(std::fopen(path.c_str(), "rb"));
  if (!f) return OpenError(path, what, "reading", errno);
  std::string bytes;
  char chunk[1 << 16];
  size_t n = 0;
  while ((n = std::fread(chunk, 1, sizeof(chunk), f.get())) > 0) bytes.append(chunk, n);
  // fopen succeeds on a directory on Linux; the read then fails with EISDIR.
  if (std::ferror(f.get())) {
    return DataLoss("reading " + what + " '" + path + "' failed: " + std::strerror(errno));
  }
  return bytes;
}

Status WriteFileBytes(const std::string& path, std::string_view bytes, const std::string& what) {
  File f(std::fopen(path.c_str(), "wb"));
  if (!f) return OpenError(path, what, "writing", errno);
  if (std::fwrite(bytes.data(), 1, bytes.size(), f.get()) != bytes.size() ||
      std::fflush(f.get()) != 0) {
    return DataLoss("writing " + what + " '" + path + "' failed after " +
                    std::to_string(bytes.size()) + " bytes requested: " + std::strerror(errno) +
                    "; check free disk space");
  }
  return Status::Ok();
}

}  // namespace parnet::io
