#include "runtime/io/npy.h"

#include <bit>
#include <cstring>
#include <optional>

#include "runtime/io/file_util.h"

namespace parnet::io {
namespace {

// .npy stores raw element bytes; parnet only runs on little-endian hosts, so '<' data is copied
// as is and '>' data is refused rather than silently byte-swapped.
static_assert(std::endian::native == std::endian::little, "npy.cc assumes a little-endian host");

constexpr std::string_view kMagic("\x93NUMPY", 6);
constexpr std::string_view kFix = "re-save it with numpy.save(path, np.ascontiguousarray(a))";

struct NpyType {
  std::string_view code;  // descr without its byte-order character
  DType dtype;
};
constexpr NpyType kTypes[] = {
    {"f2", DType::kFloat16}, {"f4", DType::kFloat32}, {"f8", DType::kFloat64},
    {"i1", DType::kInt8},    {"i2", DType::kInt16},   {"i4", DType::kInt32},
    {"i8", DType::kInt64},   {"u1", DType::kUInt8},   {"u2", DType::kUInt16},
    {"u4", DType::kUInt32},  {"u8", DType::kUInt64},  {"b1", DType::kBool},
};

// numpy's spelling: one-byte types carry '|' (no byte order), the others '<'.
std::string Descr(const NpyType& t) {
  return (t.code.back() == '1' ? "|" : "<") + std::string(t.code);
}

std::string SupportedDescrs() {
  std::string s;
  for (const NpyType& t : kTypes) s += (s.empty() ? "" : " ") + Descr(t);
  return s;
}

// Python's repr of a shape tuple: "()", "(5,)", "(2, 3)".
std::string ShapeRepr(const Shape& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + (shape.size() == 1 ? ",)" : ")");
}

struct Header {
  std::string descr;
  bool fortran_order = false;
  Shape shape;
};

// Parses the header: a Python dict literal with exactly the keys 'descr' (a string),
// 'fortran_order' (True/False) and 'shape' (a tuple of non-negative ints), as numpy writes it.
// Errors are DATA_LOSS without the source; the caller adds it.
class HeaderParser {
 public:
  explicit HeaderParser(std::string_view text) : text_(text) {}

  StatusOr<Header> Parse() {
    Header h;
    RETURN_IF_ERROR(Expect('{', "at the start of the dict"));
    bool seen[3] = {false, false, false};
    while (!Eat('}')) {
      RETURN_IF_ERROR(ParseItem(h, seen));
      if (!Eat(',')) {
        RETURN_IF_ERROR(Expect('}', "after an item"));
        break;
      }
    }
    SkipSpace();
    if (pos_ != text_.size()) return Error("unexpected text after the closing '}'");
    if (!seen[0] || !seen[1] || !seen[2]) {
      return Error("missing key; the dict needs 'descr', 'fortran_order' and 'shape'");
    }
    return h;
  }

 private:
  Status ParseItem(Header& h, bool seen[3]) {
    ASSIGN_OR_RETURN(std::string key, ParseString("a key"));
    RETURN_IF_ERROR(Expect(':', "after key '" + key + "'"));
    const int index = key == "descr" ? 0 : key == "fortran_order" ? 1 : key == "shape" ? 2 : -1;
    if (index < 0) {
      return Error("unexpected key '" + key +
                   "'; the dict has only 'descr', 'fortran_order' "
                   "and 'shape'");
    }
    if (seen[index]) return Error("duplicate key '" + key + "'");
    seen[index] = true;
    if (index == 0) {
      SkipSpace();
      if (pos_ < text_.size() && text_[pos_] == '[') {
        return InvalidArgument(
            "structured dtype " + std::string(Rest()) +
            " is not supported; parnet reads plain dtypes: " + SupportedDescrs());
      }
      ASSIGN_OR_RETURN(h.descr, ParseString("the 'descr' string"));
      return Status::Ok();
    }
    if (index == 1) return ParseBool(h.fortran_order);
    return ParseShape(h.shape);
  }

  Status ParseBool(bool& out) {
    SkipSpace();
    if (Rest().starts_with("True")) {
      out = true;
    } else if (Rest().starts_with("False")) {
      out = false;
    } else {
      return Error("'fortran_order' must be True or False");
    }
    pos_ += out ? 4 : 5;
    return Status::Ok();
  }

  Status ParseShape(Shape& shape) {
    RETURN_IF_ERROR(Expect('(', "to open the 'shape' tuple"));
    bool trailing_comma = false;
    while (!Eat(')')) {
      SkipSpace();
      size_t digits = 0;
      int64_t v = 0;
      // 18 digits cannot overflow int64; real dimensions are far shorter.
      while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9' && digits < 18) {
        v = v * 10 + (text_[pos_++] - '0');
        ++digits;
      }
      if (digits == 0) return Error("'shape' must be a tuple of non-negative integers");
      shape.push_back(v);
      trailing_comma = Eat(',');
      if (!trailing_comma) {
        RETURN_IF_ERROR(Expect(')', "to close the 'shape' tuple"));
        break;
      }
    }
    // "(3)" is the integer 3 in Python, not a tuple; numpy rejects it too.
    if (shape.size() == 1 && !trailing_comma) return Error("'shape' (n) needs a comma: (n,)");
    return Status::Ok();
  }

  StatusOr<std::string> ParseString(const std::string& what) {
    SkipSpace();
    if (pos_ >= text_.size() || (text_[pos_] != '\'' && text_[pos_] != '"')) {
      return Error("expected " + what + " in quotes");
    }
    const char quote = text_[pos_++];
    const size_t end = text_.find(quote, pos_);
    if (end == std::string_view::npos) return Error("unterminated string");
    std::string s(text_.substr(pos_, end - pos_));
    if (s.find('\\') != std::string::npos) return Error("escapes in strings are not supported");
    pos_ = end + 1;
    return s;
  }

  void SkipSpace() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\n' ||
                                   text_[pos_] == '\t' || text_[pos_] == '\r')) {
      ++pos_;
    }
  }
  bool Eat(char c) {
    SkipSpace();
    if (pos_ < text_.size() && text_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  Status Expect(char c, const std::string& where) {
    if (Eat(c)) return Status::Ok();
    return Error(std::string("expected '") + c + "' " + where);
  }
  std::string_view Rest() const { return text_.substr(pos_); }
  Status Error(const std::string& what) const {
    return DataLoss("malformed header dict: " + what + " (at offset " + std::to_string(pos_) + ")");
  }

  std::string_view text_;
  size_t pos_ = 0;
};

uint32_t LittleEndian(std::string_view bytes, size_t offset, size_t width) {
  uint32_t v = 0;
  for (size_t i = 0; i < width; ++i)
    v |= uint32_t{static_cast<uint8_t>(bytes[offset + i])} << (8 * i);
  return v;
}

std::string Printable(std::string_view bytes) {
  std::string s;
  for (char c : bytes) {
    if (c >= 32 && c < 127) {
      s += c;
    } else {
      char hex[8];
      std::snprintf(hex, sizeof(hex), "\\x%02x", static_cast<unsigned char>(c));
      s += hex;
    }
  }
  return s;
}

// Checks magic and version; returns the header text and sets `data_offset` past it.
StatusOr<std::string_view> SplitHeader(std::string_view bytes, size_t& data_offset) {
  if (bytes.size() < 8 || bytes.substr(0, 6) != kMagic) {
    return InvalidArgument("not a .npy file: bad magic, expected \"\\x93NUMPY\", got \"" +
                           Printable(bytes.substr(0, 6)) + "\" (" + std::to_string(bytes.size()) +
                           " bytes in all); write the array with numpy.save");
  }
  const int major = static_cast<uint8_t>(bytes[6]);
  const int minor = static_cast<uint8_t>(bytes[7]);
  if ((major != 1 && major != 2 && major != 3) || minor != 0) {
    return InvalidArgument("unsupported .npy version " + std::to_string(major) + "." +
                           std::to_string(minor) + "; parnet reads 1.0, 2.0 and 3.0; " +
                           std::string(kFix));
  }
  const size_t len_width = major == 1 ? 2 : 4;
  const size_t header_start = 8 + len_width;
  if (bytes.size() < header_start) return DataLoss("truncated: the header length is cut off");
  const size_t header_len = LittleEndian(bytes, 8, len_width);
  if (bytes.size() - header_start < header_len) {
    return DataLoss("truncated: header length says " + std::to_string(header_len) +
                    " bytes, file has " + std::to_string(bytes.size() - header_start) +
                    " after the length field");
  }
  data_offset = header_start + header_len;
  return bytes.substr(header_start, header_len);
}

StatusOr<DType> ResolveDescr(const std::string& descr) {
  const std::string supported = "; parnet reads " + SupportedDescrs();
  if (descr.size() < 2) return InvalidArgument("unsupported dtype '" + descr + "'" + supported);
  const char order = descr[0];
  const std::string_view code = std::string_view(descr).substr(1);
  const NpyType* found = nullptr;
  for (const NpyType& t : kTypes) {
    if (t.code == code) found = &t;
  }
  if (found == nullptr || (order != '<' && order != '|' && order != '>' && order != '=')) {
    return InvalidArgument("unsupported dtype '" + descr + "'" + supported);
  }
  // Byte order only matters for multi-byte elements; numpy writes '|' for one-byte ones.
  if (order == '>' && DTypeSize(found->dtype) > 1) {
    return InvalidArgument("big-endian dtype '" + descr + "' is not supported" + supported +
                           "; convert with a.astype('<" + std::string(code) + "')");
  }
  if (order == '|' && DTypeSize(found->dtype) > 1) {
    return InvalidArgument("dtype '" + descr + "' lacks a byte order" + supported);
  }
  return found->dtype;
}

// Fortran and C order lay out the same bytes when at most one dimension exceeds 1.
bool LayoutIsCOrder(const Shape& shape) {
  int big = 0;
  for (int64_t d : shape) big += d > 1;
  return big <= 1;
}

// Bytes the header's shape needs, or nullopt when that overflows.
std::optional<uint64_t> BodyBytes(const Shape& shape, DType dtype) {
  uint64_t n = DTypeSize(dtype);
  for (int64_t d : shape) {
    if (__builtin_mul_overflow(n, static_cast<uint64_t>(d), &n)) return std::nullopt;
  }
  return n;
}

StatusOr<Tensor> DecodeBody(std::string_view body, const Header& h, DType dtype) {
  const std::string what = h.descr + " " + ShapeRepr(h.shape);
  const std::optional<uint64_t> need = BodyBytes(h.shape, dtype);
  if (!need) return InvalidArgument("header says " + what + ", which overflows 64-bit sizes");
  if (body.size() < *need) {
    return DataLoss("truncated: header says " + what + " = " + std::to_string(*need) +
                    " bytes, file has " + std::to_string(body.size()) +
                    "; the file was cut "
                    "short, copy or save it again");
  }
  if (body.size() > *need) {
    return DataLoss("extra bytes: header says " + what + " = " + std::to_string(*need) +
                    " bytes, file has " + std::to_string(body.size()) +
                    "; it is not a single "
                    "array written by numpy.save (np.savez archives are not supported)");
  }
  Tensor t(dtype, h.shape);
  if (*need > 0) std::memcpy(t.raw_data(), body.data(), *need);
  if (dtype == DType::kBool) {
    for (size_t i = 0; i < *need; ++i) {
      if (static_cast<uint8_t>(body[i]) > 1) {
        return DataLoss("bool element " + std::to_string(i) + " has byte value " +
                        std::to_string(static_cast<uint8_t>(body[i])) + "; numpy writes 0 or 1");
      }
    }
  }
  return t;
}

StatusOr<Tensor> Decode(std::string_view bytes) {
  size_t data_offset = 0;
  ASSIGN_OR_RETURN(std::string_view header_text, SplitHeader(bytes, data_offset));
  StatusOr<Header> header = HeaderParser(header_text).Parse();
  if (!header.ok()) {
    return header.status().WithContext("header \"" + Printable(header_text.substr(0, 200)) + "\"");
  }
  ASSIGN_OR_RETURN(DType dtype, ResolveDescr(header->descr));
  if (header->fortran_order && !LayoutIsCOrder(header->shape)) {
    return InvalidArgument("fortran_order is True for shape " + ShapeRepr(header->shape) +
                           "; parnet reads C order only; " + std::string(kFix));
  }
  return DecodeBody(bytes.substr(data_offset), *header, dtype);
}

}  // namespace

StatusOr<Tensor> ReadNpyBytes(std::string_view bytes, const std::string& source) {
  StatusOr<Tensor> t = Decode(bytes);
  if (!t.ok()) return t.status().WithContext("npy '" + source + "'");
  return t;
}

StatusOr<Tensor> ReadNpy(const std::string& path) {
  ASSIGN_OR_RETURN(std::string bytes, ReadFileBytes(path, "npy file"));
  return ReadNpyBytes(bytes, path);
}

StatusOr<std::string> NpyBytes(const Tensor& t) {
  const NpyType* type = nullptr;
  for (const NpyType& nt : kTypes) {
    if (t.defined() && nt.dtype == t.dtype()) type = &nt;
  }
  if (type == nullptr) {
    return InvalidArgument("cannot write a " + t.TypeString() +
                           " tensor as .npy: numpy has "
                           "no such dtype; cast it to one of " +
                           SupportedDescrs());
  }
  std::string dict = "{'descr': '" + Descr(*type) +
                     "', 'fortran_order': False, 'shape': " + ShapeRepr(t.shape()) + ", }";
  // numpy >= 1.23 reserves room to grow the first dimension in place (its
  // GROWTH_AXIS_MAX_DIGITS = 21); doing the same keeps our files byte-identical to numpy.save's.
  if (t.rank() > 0) dict.append(21 - std::to_string(t.dim(0)).size(), ' ');
  // Pad so that magic + length + header + '\n' is a multiple of 64: aligned, mmap-able data.
  const bool v1 = dict.size() + 1 + 10 + 63 <= 0xFFFF;
  const size_t prefix = v1 ? 10 : 12;
  const size_t header_len = (prefix + dict.size() + 1 + 63) / 64 * 64 - prefix;
  std::string out(kMagic);
  out += static_cast<char>(v1 ? 1 : 2);
  out += '\0';
  for (size_t i = 0; i < prefix - 8; ++i) out += static_cast<char>((header_len >> (8 * i)) & 0xFF);
  out += dict;
  out.append(header_len - dict.size() - 1, ' ');
  out += '\n';
  out.append(static_cast<const char*>(t.raw_data()), t.num_bytes());
  return out;
}

Status WriteNpy(const std::string& path, const Tensor& t) {
  ASSIGN_OR_RETURN(std::string bytes, NpyBytes(t));
  return WriteFileBytes(path, bytes, "npy file");
}

}  // namespace parnet::io
