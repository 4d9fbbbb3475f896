// Element types at the serving edge: the protocol's names ("FP32"), Triton's config enum
// (TYPE_FP32) and parnet's DType, and the float conversions done when a model config declares
// FP16 or BF16 for a tensor the model itself holds as FP32.
#pragma once

#include <string>

#include "proto/model_config.pb.h"
#include "runtime/core/status.h"
#include "runtime/core/tensor.h"

namespace parnet::serve {

// "FP32" -> DType::kFloat32; an unknown name is an INVALID_ARGUMENT that lists the known ones.
StatusOr<DType> DTypeFromProtocolName(const std::string& name);
// The protocol's name of a DType ("FP32", "BF16", ...).
std::string ProtocolName(DType dtype);

// TYPE_FP32 -> DType::kFloat32; kUndefined for types parnet does not hold (TYPE_STRING).
DType DTypeFromConfig(inference::DataType type);
inference::DataType ConfigTypeOf(DType dtype);

// Whether `from` converts to `to` at the edge: equal types, or FP32 <-> FP16/BF16.
bool CanConvert(DType from, DType to);
// Element-wise conversion between FP32, FP16 and BF16 (round to nearest even); same type: the
// same tensor. REQUIRES: CanConvert(t.dtype(), to).
Tensor ConvertTo(const Tensor& t, DType to);

// IEEE half and bfloat16 from and to float, round to nearest even; NaN stays NaN.
uint16_t FloatToHalf(float f);
float HalfToFloat(uint16_t h);
uint16_t FloatToBFloat16(float f);
float BFloat16ToFloat(uint16_t b);

}  // namespace parnet::serve
