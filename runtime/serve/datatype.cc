#include "runtime/serve/datatype.h"

#include <cmath>
#include <cassert>
#include <cstring>
#include <limits>
#include <utility>

namespace parnet::serve {
namespace {

struct TypeRow {
  DType dtype;
  const char* name;
  inference::DataType config;
};
constexpr TypeRow kTypes[] = {
    {DType::kBool, "BOOL", inference::TYPE_BOOL},
    {DType::kUInt8, "UINT8", inference::TYPE_UINT8},
    {DType::kUInt16, "UINT16", inference::TYPE_UINT16},
    {DType::kUInt32, "UINT32", inference::TYPE_UINT32},
    {DType::kUInt64, "UINT64", inference::TYPE_UINT64},
    {DType::kInt8, "INT8", inference::TYPE_INT8},
    {DType::kInt16, "INT16", inference::TYPE_INT16},
    {DType::kInt32, "INT32", inference::TYPE_INT32},
    {DType::kInt64, "INT64", inference::TYPE_INT64},
    {DType::kFloat16, "FP16", inference::TYPE_FP16},
    {DType::kFloat32, "FP32", inference::TYPE_FP32},
    {DType::kFloat64, "FP64", inference::TYPE_FP64},
    {DType::kBFloat16, "BF16", inference::TYPE_BF16},
};

bool IsFloat32Family(DType d) {
  return d == DType::kFloat32 || d == DType::kFloat16 || d == DType::kBFloat16;
}

}  // namespace

StatusOr<DType> DTypeFromProtocolName(const std::string& name) {
  std::string known;
  for (const TypeRow& row : kTypes) {
    if (name == row.name) return row.dtype;
    known += (known.empty() ? "" : ", ") + std::string(row.name);
  }
  return InvalidArgument("unknown datatype '" + name + "'; the protocol's datatypes are " + known);
}

std::string ProtocolName(DType dtype) {
  for (const TypeRow& row : kTypes) {
    if (row.dtype == dtype) return row.name;
  }
  return "INVALID";
}

DType DTypeFromConfig(inference::DataType type) {
  for (const TypeRow& row : kTypes) {
    if (row.config == type) return row.dtype;
  }
  return DType::kUndefined;
}

inference::DataType ConfigTypeOf(DType dtype) {
  for (const TypeRow& row : kTypes) {
    if (row.dtype == dtype) return row.config;
  }
  return inference::TYPE_INVALID;
}

bool CanConvert(DType from, DType to) {
  return from == to || (IsFloat32Family(from) && IsFloat32Family(to));
}

uint16_t FloatToHalf(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t abs = x & 0x7fffffffu;
  if (abs > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u);  // NaN
  if (abs >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // overflow -> inf
  if (abs < 0x38800000u) {
    // Subnormal half (or zero): scale into the 10-bit mantissa with round to nearest even.
    if (abs < 0x33000000u) return static_cast<uint16_t>(sign);
    const uint32_t exp = abs >> 23;
    const uint32_t mant = (abs & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126 - exp;  // 14..24
    uint32_t half = mant >> shift;
    const uint32_t rem = mant & ((1u << shift) - 1);
    const uint32_t mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1u))) ++half;
    return static_cast<uint16_t>(sign | half);
  }
  // Normal: rebias the exponent (127 -> 15) and round the 13 dropped mantissa bits.
  uint32_t half = ((abs - 0x38000000u) >> 13);
  const uint32_t rem = abs & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (half & 1u))) ++half;
  return static_cast<uint16_t>(sign | half);
}

float HalfToFloat(uint16_t h) {
  const uint32_t sign = (static_cast<uint32_t>(h) & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  const uint32_t mant = h & 0x3ffu;
  float magnitude;
  if (exp == 0) {
    magnitude = std::ldexp(static_cast<float>(mant), -24);
  } else if (exp == 31) {
    magnitude = mant ? std::numeric_limits<float>::quiet_NaN() : INFINITY;
  } else {
    magnitude = std::ldexp(static_cast<float>(mant | 0x400u), static_cast<int>(exp) - 25);
  }
  uint32_t bits;
  std::memcpy(&bits, &magnitude, 4);
  bits |= sign;
  float out;
  std::memcpy(&out, &bits, 4);
  return out;
}

uint16_t FloatToBFloat16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x40u);  // NaN
  const uint32_t rounding = 0x7fffu + ((x >> 16) & 1u);
  return static_cast<uint16_t>((x + rounding) >> 16);
}

float BFloat16ToFloat(uint16_t b) {
  const uint32_t x = static_cast<uint32_t>(b) << 16;
  float out;
  std::memcpy(&out, &x, 4);
  return out;
}

Tensor ConvertTo(const Tensor& t, DType to) {
  assert(CanConvert(t.dtype(), to));
  if (t.dtype() == to) return t;
  const int64_t n = t.num_elements();
  // Through FP32: at most two passes, and the FP16 <-> BF16 case is rare.
  Tensor f32 = t;
  if (t.dtype() != DType::kFloat32) {
    f32 = Tensor(DType::kFloat32, t.shape());
    const auto* src = static_cast<const uint16_t*>(t.raw_data());
    float* dst = f32.data<float>();
    const bool half = t.dtype() == DType::kFloat16;
    for (int64_t i = 0; i < n; ++i) dst[i] = half ? HalfToFloat(src[i]) : BFloat16ToFloat(src[i]);
  }
  if (to == DType::kFloat32) return f32;
  Tensor out(to, t.shape());
  const float* src = f32.data<float>();
  auto* dst = static_cast<uint16_t*>(out.raw_data());
  const bool half = to == DType::kFloat16;
  for (int64_t i = 0; i < n; ++i) dst[i] = half ? FloatToHalf(src[i]) : FloatToBFloat16(src[i]);
  return out;
}

}  // namespace parnet::serve
