#include "runtime/io/idx.h"

#include <zlib.h>

#include <algorithm>
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
  if (n < 0) {
    return DataLoss("'" + path + "' is not a valid gzip stream: " + message +
                    "; the file is damaged (check it with `gzip -t`) or not compressed (drop "
                    "the .gz from its name)");
  }
  return out;
}

uint32_t BigEndian32(const unsigned char* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}

// "0x08", "0x0d": how IDX documentation writes the magic's bytes.
std::string Hex(unsigned char byte) {
  constexpr char kDigits[] = "0123456789abcdef";
  return std::string("0x") + kDigits[byte >> 4] + kDigits[byte & 0xf];
}

}  // namespace

StatusOr<Tensor> ParseIdx(std::string_view bytes, const std::string& source) {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  if (bytes.size() < 4 || p[0] != 0 || p[1] != 0) {
    std::string magic;
    for (size_t i = 0; i < std::min<size_t>(bytes.size(), 4); ++i) magic += " " + Hex(p[i]);
    return InvalidArgument("'" + source + "' is not an IDX file: its magic is" +
                           (magic.empty() ? " missing" : magic) +
                           ", an IDX file starts with 0x00 0x00 <type> <rank>; check the path "
                           "(and that a compressed file's name ends in .gz)");
  }
  if (p[2] != 0x08) {
    return InvalidArgument("'" + source + "' holds IDX type code " + Hex(p[2]) +
                           "; parnet reads unsigned-byte IDX files (0x08): convert the data to "
                           "uint8");
  }
  const size_t rank = p[3];
  if (rank == 0 || bytes.size() < 4 + 4 * rank) {
    return DataLoss("'" + source + "': the IDX header is truncated (rank " + std::to_string(rank) +
                    " needs " + std::to_string(4 + 4 * rank) + " header bytes, the file has " +
                    std::to_string(bytes.size()) + "); the file is damaged: download it again");
  }
  Shape shape;
  for (size_t i = 0; i < rank; ++i) shape.push_back(BigEndian32(p + 4 + 4 * i));
  const size_t header = 4 + 4 * rank;
  // The header's size is checked against the bytes present before anything is allocated.
  auto want = CheckedNumBytes(DType::kUInt8, shape);
  if (!want.ok() || bytes.size() - header != *want) {
    return DataLoss("'" + source + "': the header says " + ShapeToString(shape) + " = " +
                    (want.ok() ? std::to_string(*want) : std::string("too many")) +
                    " bytes, the body has " + std::to_string(bytes.size() - header) +
                    " (truncated or damaged file: download it again)");
  }
  ASSIGN_OR_RETURN(Tensor t, Tensor::Create(DType::kUInt8, shape));
  if (*want > 0) std::memcpy(t.raw_data(), bytes.data() + header, *want);
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
