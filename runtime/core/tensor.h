// Tensor: a dense, row-major (C order) array with a shape and an element type.
//
// Ownership: a Tensor is a handle. Copies share the same bytes (like a shared_ptr); Clone() makes a
// deep copy. A Tensor either owns its bytes or borrows them from a caller who keeps them alive
// (Tensor::Borrow). Not thread-safe for concurrent writes to the same bytes.
#pragma once

#include <algorithm>
#include <cassert>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "runtime/core/dtype.h"
#include "runtime/core/status.h"

namespace parnet {

using Shape = std::vector<int64_t>;

// The largest tensor parnet allocates (1 TiB): more than any machine it runs on holds, and the
// largest block AddressSanitizer serves, so anything above fails the same way everywhere, as a
// Status, before the allocator is asked.
inline constexpr size_t kMaxTensorBytes = size_t{1} << 40;

// Product of the dimensions; 1 for a scalar (empty shape). Saturates at INT64_MAX when the
// product does not fit (never overflows); use CheckedNumElements() for shapes read from files.
int64_t NumElements(const Shape& shape);
// The product, or INVALID_ARGUMENT when a dimension is negative or the product overflows int64.
StatusOr<int64_t> CheckedNumElements(const Shape& shape);
// Bytes of a `dtype` tensor of `shape`, or INVALID_ARGUMENT as above (also when they overflow),
// or RESOURCE_EXHAUSTED above kMaxTensorBytes.
StatusOr<size_t> CheckedNumBytes(DType dtype, const Shape& shape);
// "[1,3,224,224]".
std::string ShapeToString(const Shape& shape);
// "FP32[1,3,224,224]".
std::string TypeToString(DType dtype, const Shape& shape);

class Tensor {
 public:
  Tensor() = default;
  // Allocates zero-filled bytes. REQUIRES: every dimension >= 0. Throws std::bad_alloc when the
  // bytes cannot be allocated or exceed kMaxTensorBytes; the Engine turns that into
  // RESOURCE_EXHAUSTED. Code that allocates for sizes read from files uses Create() instead.
  Tensor(DType dtype, Shape shape);
  // The same as a Status: INVALID_ARGUMENT for a negative or overflowing shape,
  // RESOURCE_EXHAUSTED above kMaxTensorBytes or when the allocation fails.
  static StatusOr<Tensor> Create(DType dtype, Shape shape);

  // Wraps bytes that the caller keeps alive and unchanged for the Tensor's lifetime.
  static Tensor Borrow(DType dtype, Shape shape, void* data);

  template <typename T>
  static Tensor FromVector(Shape shape, const std::vector<T>& values) {
    Tensor t(DTypeOf<T>(), std::move(shape));
    assert(static_cast<size_t>(t.num_elements()) == values.size());
    std::copy(values.begin(), values.end(), t.data<T>());
    return t;
  }
  template <typename T>
  static Tensor Scalar(T value) {
    return FromVector<T>({}, {value});
  }

  bool defined() const { return dtype_ != DType::kUndefined; }
  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  int64_t rank() const { return static_cast<int64_t>(shape_.size()); }
  int64_t dim(int64_t i) const { return shape_[i]; }
  int64_t num_elements() const { return NumElements(shape_); }
  // Saturates at SIZE_MAX like NumElements(); a tensor that holds bytes never does.
  size_t num_bytes() const;
  // True when this handle is the only one holding its (owned) bytes, so they may be reused.
  bool sole_owner() const { return owned_ != nullptr && owned_.use_count() == 1; }
  // For a buffer kept across runs: keeps the bytes (and their old contents) when this handle is
  // their sole owner and already `dtype` of `shape`; otherwise lets them go and allocates new
  // zero-filled ones. Throws std::bad_alloc like the constructor.
  void ReuseOrAllocate(DType dtype, const Shape& shape);

  void* raw_data() { return data_; }
  const void* raw_data() const { return data_; }
  template <typename T>
  T* data() {
    assert(DTypeOf<T>() == dtype_);
    return static_cast<T*>(data_);
  }
  template <typename T>
  const T* data() const {
    assert(DTypeOf<T>() == dtype_);
    return static_cast<const T*>(data_);
  }
  template <typename T>
  std::span<const T> values() const {
    return {data<T>(), static_cast<size_t>(num_elements())};
  }

  // Same bytes viewed with another shape. REQUIRES: same element count.
  Tensor Reshaped(Shape shape) const;
  Tensor Clone() const;

  // Reads an integer tensor (INT64 or INT32) as int64 values; errors for other types.
  StatusOr<std::vector<int64_t>> ToInt64Vector() const;
  std::string TypeString() const { return TypeToString(dtype_, shape_); }

 private:
  DType dtype_ = DType::kUndefined;
  Shape shape_;
  std::shared_ptr<std::byte[]> owned_;
  void* data_ = nullptr;
};

}  // namespace parnet
