#include "runtime/core/tensor.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <new>
#include <sstream>

namespace parnet {

int64_t NumElements(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (__builtin_mul_overflow(n, d, &n)) return std::numeric_limits<int64_t>::max();
  }
  return n;
}

StatusOr<int64_t> CheckedNumElements(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) {
      return InvalidArgument("shape " + ShapeToString(shape) +
                             " has a negative or unknown dimension; every dimension must be >= 0");
    }
    if (__builtin_mul_overflow(n, d, &n)) {
      return InvalidArgument("shape " + ShapeToString(shape) +
                             " has more elements than a 64-bit count holds; the shape is damaged "
                             "or far too large");
    }
  }
  return n;
}

StatusOr<size_t> CheckedNumBytes(DType dtype, const Shape& shape) {
  ASSIGN_OR_RETURN(int64_t n, CheckedNumElements(shape));
  size_t bytes = 0;
  if (__builtin_mul_overflow(static_cast<size_t>(n), DTypeSize(dtype), &bytes)) {
    return InvalidArgument(TypeToString(dtype, shape) +
                           " needs more bytes than a 64-bit size holds; the shape is damaged or "
                           "far too large");
  }
  if (bytes > kMaxTensorBytes) {
    return ResourceExhausted(TypeToString(dtype, shape) + " needs " + std::to_string(bytes) +
                             " bytes, more than the " + std::to_string(kMaxTensorBytes) +
                             " parnet allocates for one tensor; use smaller inputs");
  }
  return bytes;
}

std::string ShapeToString(const Shape& shape) {
  std::ostringstream os;
  os << '[';
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) os << ',';
    if (shape[i] < 0) {
      os << '?';
    } else {
      os << shape[i];
    }
  }
  os << ']';
  return os.str();
}

std::string TypeToString(DType dtype, const Shape& shape) {
  return DTypeName(dtype) + ShapeToString(shape);
}

Tensor::Tensor(DType dtype, Shape shape) : dtype_(dtype), shape_(std::move(shape)) {
  for ([[maybe_unused]] int64_t d : shape_) assert(d >= 0);
  const size_t bytes = num_bytes();
  if (bytes > kMaxTensorBytes) throw std::bad_alloc();  // num_bytes() may have saturated
  // At least one byte so that data() of an empty tensor is a valid, distinct pointer.
  owned_ = std::make_shared<std::byte[]>(std::max<size_t>(bytes, 1));  // zero-filled
  data_ = owned_.get();
}

StatusOr<Tensor> Tensor::Create(DType dtype, Shape shape) {
  ASSIGN_OR_RETURN(size_t bytes, CheckedNumBytes(dtype, shape));
  try {
    return Tensor(dtype, shape);
  } catch (const std::bad_alloc&) {
    return ResourceExhausted("cannot allocate " + std::to_string(bytes) + " bytes for " +
                             TypeToString(dtype, shape) + "; free memory or use smaller inputs");
  }
}

size_t Tensor::num_bytes() const {
  const int64_t n = num_elements();
  size_t bytes = 0;
  if (n < 0 || __builtin_mul_overflow(static_cast<size_t>(n), DTypeSize(dtype_), &bytes)) {
    return std::numeric_limits<size_t>::max();
  }
  return bytes;
}

Tensor Tensor::Borrow(DType dtype, Shape shape, void* data) {
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  t.data_ = data;
  return t;
}

void Tensor::ReuseOrAllocate(DType dtype, const Shape& shape) {
  if (sole_owner() && dtype_ == dtype && shape_ == shape) return;
  *this = Tensor();  // the old bytes go before the new ones are allocated
  *this = Tensor(dtype, shape);
}

Tensor Tensor::Reshaped(Shape shape) const {
  assert(NumElements(shape) == num_elements());
  Tensor t = *this;
  t.shape_ = std::move(shape);
  return t;
}

Tensor Tensor::Clone() const {
  Tensor t(dtype_, shape_);
  if (num_bytes() > 0) std::memcpy(t.data_, data_, num_bytes());
  return t;
}

StatusOr<std::vector<int64_t>> Tensor::ToInt64Vector() const {
  std::vector<int64_t> out(static_cast<size_t>(num_elements()));
  if (dtype_ == DType::kInt64) {
    std::copy_n(data<int64_t>(), out.size(), out.begin());
  } else if (dtype_ == DType::kInt32) {
    std::copy_n(data<int32_t>(), out.size(), out.begin());
  } else {
    return InvalidArgument("expected an INT64 or INT32 tensor, got " + TypeString());
  }
  return out;
}

}  // namespace parnet
