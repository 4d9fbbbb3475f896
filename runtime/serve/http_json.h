// Internal to the HTTP front end: tensors as the protocol's JSON "data" (flat or nested
// arrays of numbers; FP16 and BF16 as numbers, converted at the edge).
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "runtime/core/status.h"
#include "runtime/core/tensor.h"

namespace parnet::serve {

// The JSON data of input `name` as a `dtype` tensor of `shape`; INVALID_ARGUMENT naming the
// element that is not a number or the count that does not match the shape.
StatusOr<Tensor> TensorFromJson(const nlohmann::json& data, const std::string& name, DType dtype,
                                const Shape& shape);

// A tensor's elements as a flat JSON array (FP16 and BF16 as FP32 numbers).
nlohmann::json TensorToJson(const Tensor& t);

}  // namespace parnet::serve
