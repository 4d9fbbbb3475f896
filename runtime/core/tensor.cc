#include "runtime/core/tensor.h"

#include <algorithm>
#include <cstring>
#include <sstream>

namespace parnet {

int64_t NumElements(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
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
  // At least one byte so that data() of an empty tensor is a valid, distinct pointer.
  const size_t bytes = std::max<size_t>(num_bytes(), 1);
  owned_ = std::make_shared<std::byte[]>(bytes);  // value-initialised: zero-filled
  data_ = owned_.get();
}

Tensor Tensor::Borrow(DType dtype, Shape shape, void* data) {
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  t.data_ = data;
  return t;
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
