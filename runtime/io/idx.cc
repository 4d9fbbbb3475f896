#include "runtime/io/idx.h"

#include <zlib.h>

#include <cstring>

#include "runtime/io/file_util.h"

namespace parnet::io {
namespace {

StatusOr<std::string> Gunzip(const std::string& path) {
  gzFile file = gzopen(path.c_str(), "rb");
  if (file == nullptr) {
    return NotFound("IDX file '" + path +
                    "' cannot be opened; check the path (the Debian package "
                    "dataset-fashion-mnist installs /usr/share/datasets/fashion-mnist)");
  }
  std::string out;
  char buf[1 << 16];
  int n = 0;
  while ((n = gzread(file, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  int err = 0;
  const std::string message = n < 0 ? gzerror(file, &err) : "";
  gzclose(file);
  if (n < 0) return DataLoss("'" + path + "' is not a valid gzip stream: " + message);
  return out;
}

uint32_t BigEndian32(const unsigned char* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}

}  // namespace

StatusOr<Tensor> ParseIdx(std::string_view bytes, const std::string& source) {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  if (bytes.size() < 4 || p[0] != 0 || p[1] != 0) {
    return InvalidArgument("'" + source + "' is not an IDX file (its first bytes are not 00 00)");
  }
  if (p[2] != 0x08) {
    return InvalidArgument("'" + source + "' holds IDX type code 0x" + std::to_string(p[2]) +
                           "; parnet reads unsigned-byte IDX files (0x08)");
  }
  const size_t rank = p[3];
  if (rank == 0 || bytes.size() < 4 + 4 * rank) {
    return DataLoss("'" + source + "': the IDX header is truncated");
  }
  Shape shape;
  for (size_t i = 0; i < rank; ++i) shape.push_back(BigEndian32(p + 4 + 4 * i));
  const size_t header = 4 + 4 * rank;
  const size_t want = static_cast<size_t>(NumElements(shape));
  if (bytes.size() - header != want) {
    return DataLoss("'" + source + "': the header says " + ShapeToString(shape) + " = " +
                    std::to_string(want) + " bytes, the body has " +
                    std::to_string(bytes.size() - header) + " (truncated or damaged file)");
  }
  Tensor t(DType::kUInt8, shape);
  std::memcpy(t.raw_data(), bytes.data() + header, want);
  return t;
}

StatusOr<Tensor> ReadIdx(const std::string& path) {
  const bool gz = path.size() > 3 && path.compare(path.size() - 3, 3, ".gz") == 0;
  std::string bytes;
  if (gz) {
    ASSIGN_OR_RETURN(bytes, Gunzip(path));
  } else {
    ASSIGN_OR_RETURN(bytes, ReadFileBytes(path, "IDX file"));
  }
  return ParseIdx(bytes, path);
}

}  // namespace parnet::io
