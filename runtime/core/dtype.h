// Element types of tensors, with the ONNX TensorProto numbering so conversions are one table.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace parnet {

enum class DType : int {
  kUndefined = 0,
  kFloat32 = 1,
  kUInt8 = 2,
  kInt8 = 3,
  kUInt16 = 4,
  kInt16 = 5,
  kInt32 = 6,
  kInt64 = 7,
  kBool = 9,
  kFloat16 = 10,
  kFloat64 = 11,
  kUInt32 = 12,
  kUInt64 = 13,
  kBFloat16 = 16,
};

// Bytes per element; 0 for kUndefined.
size_t DTypeSize(DType dtype);
// "FP32", "INT64", ...: the names of the Open Inference Protocol.
std::string DTypeName(DType dtype);
// Maps an ONNX TensorProto.DataType value; kUndefined for types parnet does not hold.
DType DTypeFromOnnx(int onnx_type);

// The value of an IEEE binary16 (FP16) bit pattern, exactly (subnormals, infinities, NaN).
float HalfToFloat(uint16_t bits);
// The value of a bfloat16 (BF16) bit pattern: the upper half of an FP32.
float BFloat16ToFloat(uint16_t bits);

template <typename T>
constexpr DType DTypeOf();
template <>
constexpr DType DTypeOf<float>() {
  return DType::kFloat32;
}
template <>
constexpr DType DTypeOf<double>() {
  return DType::kFloat64;
}
template <>
constexpr DType DTypeOf<int64_t>() {
  return DType::kInt64;
}
template <>
constexpr DType DTypeOf<int32_t>() {
  return DType::kInt32;
}
template <>
constexpr DType DTypeOf<int16_t>() {
  return DType::kInt16;
}
template <>
constexpr DType DTypeOf<int8_t>() {
  return DType::kInt8;
}
template <>
constexpr DType DTypeOf<uint8_t>() {
  return DType::kUInt8;
}
template <>
constexpr DType DTypeOf<uint16_t>() {
  return DType::kUInt16;
}
template <>
constexpr DType DTypeOf<uint32_t>() {
  return DType::kUInt32;
}
template <>
constexpr DType DTypeOf<uint64_t>() {
  return DType::kUInt64;
}
template <>
constexpr DType DTypeOf<bool>() {
  return DType::kBool;
}

}  // namespace parnet
