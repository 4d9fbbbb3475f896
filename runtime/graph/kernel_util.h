// Helpers shared by the reference kernels (ops_*.cc). Not a public header.
#pragma once

#include <cstdint>
#include <vector>

#include "runtime/core/status.h"
#include "runtime/core/tensor.h"

namespace parnet::ops {

// Calls f(T{}) with the C++ type of a numeric dtype; an error for the others.
template <typename F>
Status VisitNumeric(DType dtype, F&& f) {
  switch (dtype) {
    case DType::kFloat32:
      f(float{});
      return Status::Ok();
    case DType::kFloat64:
      f(double{});
      return Status::Ok();
    case DType::kInt64:
      f(int64_t{});
      return Status::Ok();
    case DType::kInt32:
      f(int32_t{});
      return Status::Ok();
    case DType::kInt16:
      f(int16_t{});
      return Status::Ok();
    case DType::kInt8:
      f(int8_t{});
      return Status::Ok();
    case DType::kUInt8:
      f(uint8_t{});
      return Status::Ok();
    case DType::kUInt16:
      f(uint16_t{});
      return Status::Ok();
    case DType::kUInt32:
      f(uint32_t{});
      return Status::Ok();
    case DType::kUInt64:
      f(uint64_t{});
      return Status::Ok();
    case DType::kBool:
      f(bool{});
      return Status::Ok();
    default:
      return Unimplemented("element type " + DTypeName(dtype) + " has no reference kernel");
  }
}

// Row-major strides of `shape`.
inline std::vector<int64_t> Strides(const Shape& shape) {
  std::vector<int64_t> strides(shape.size(), 1);
  for (int64_t i = static_cast<int64_t>(shape.size()) - 2; i >= 0; --i) {
    strides[i] = strides[i + 1] * shape[i + 1];
  }
  return strides;
}

// Strides of `in` read as if broadcast to `out` (0 along broadcast dimensions).
inline std::vector<int64_t> BroadcastStrides(const Shape& in, const Shape& out) {
  std::vector<int64_t> strides(out.size(), 0);
  const std::vector<int64_t> own = Strides(in);
  const size_t offset = out.size() - in.size();
  for (size_t i = 0; i < in.size(); ++i) {
    strides[offset + i] = in[i] == 1 ? 0 : own[i];
  }
  return strides;
}

// Visits every element of `out` in row-major order, calling f(out_index, a_offset, b_offset),
// where the offsets follow `a_strides` and `b_strides` (from BroadcastStrides).
template <typename F>
void ForEachBroadcast(const Shape& out, const std::vector<int64_t>& a_strides,
                      const std::vector<int64_t>& b_strides, F&& f) {
  const int64_t total = NumElements(out);
  const size_t rank = out.size();
  std::vector<int64_t> index(rank, 0);
  int64_t a = 0, b = 0;
  for (int64_t i = 0; i < total; ++i) {
    f(i, a, b);
    for (size_t d = rank; d-- > 0;) {
      if (++index[d] < out[d]) {
        a += a_strides[d];
        b += b_strides[d];
        break;
      }
      a -= a_strides[d] * (out[d] - 1);
      b -= b_strides[d] * (out[d] - 1);
      index[d] = 0;
    }
  }
}

}  // namespace parnet::ops
