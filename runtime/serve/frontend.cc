#include "runtime/serve/frontend.h"

#include <algorithm>
#include <cassert>
#include <cstring>
#include <future>
#include <limits>

#include "runtime/serve/datatype.h"

namespace parnet::serve {

std::vector<std::string> ServerExtensions(const SharedMemoryRegions& regions) {
  std::vector<std::string> out = {"model_configuration", "statistics", "binary_tensor_data",
                                  "model_repository", "classification"};
  if (regions.allowed()) out.push_back("system_shared_memory");
  return out;
}

StatusOr<InferResult> InferAndWait(ServedModel* model, InferRequest request,
                                   const std::function<bool()>& client_gone) {
  auto promise = std::make_shared<std::promise<StatusOr<InferResult>>>();
  std::future<StatusOr<InferResult>> future = promise->get_future();
  std::shared_ptr<std::atomic<bool>> gone;
  if (client_gone) {
    gone = std::make_shared<std::atomic<bool>>(false);
    request.cancelled = gone;
  }
  RETURN_IF_ERROR(model->Submit(
      std::move(request),
      [promise](StatusOr<InferResult> result) { promise->set_value(std::move(result)); },
      ServedModel::Dispatch::kCallerMayRun));
  if (gone) {
    while (future.wait_for(kClientPoll) != std::future_status::ready) {
      if (!gone->load() && client_gone()) gone->store(true);
    }
  }
  return future.get();
}

StatusOr<size_t> TensorByteSize(const std::string& input, DType dtype, const Shape& shape) {
  // Bound the element count well below what size_t holds, so the product cannot overflow.
  constexpr int64_t kMaxElements = int64_t{1} << 40;
  int64_t elements = 1;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] < 1) {
      return InvalidArgument("input '" + input + "': shape " + ShapeToString(shape) +
                             " has dimension " + std::to_string(d) + " = " +
                             std::to_string(shape[d]) + "; every dimension must be >= 1");
    }
    if (shape[d] > kMaxElements / elements) {
      return InvalidArgument("input '" + input + "': shape " + ShapeToString(shape) +
                             " has more than 2^40 elements; send smaller batches");
    }
    elements *= shape[d];
  }
  return static_cast<size_t>(elements) * DTypeSize(dtype);
}

StatusOr<std::vector<std::string>> SelectOutputs(const ServedModel& model,
                                                 const std::vector<std::string>& requested) {
  std::vector<std::string> all;
  for (const auto& out : model.config().output()) all.push_back(out.name());
  if (requested.empty()) return all;
  for (const auto& name : requested) {
    if (std::find(all.begin(), all.end(), name) == all.end()) {
      std::string list;
      for (const auto& n : all) list += (list.empty() ? "'" : ", '") + n + "'";
      return InvalidArgument("requested output '" + name + "' is not an output of model '" +
                             model.name() + "'; its outputs: " + list);
    }
  }
  return requested;
}

StatusOr<std::optional<SharedMemoryRef>> SharedMemoryRefOf(const std::string& what,
                                                           const std::string* region,
                                                           const int64_t* offset,
                                                           const int64_t* byte_size) {
  if (region == nullptr && byte_size == nullptr) {
    if (offset != nullptr) {
      return InvalidArgument(what +
                             " has shared_memory_offset without shared_memory_region and "
                             "shared_memory_byte_size; send all three or none");
    }
    return std::optional<SharedMemoryRef>();
  }
  if (region == nullptr || byte_size == nullptr) {
    return InvalidArgument(
        what + " has " + (region ? "shared_memory_region" : "shared_memory_byte_size") +
        " without " + (region ? "shared_memory_byte_size" : "shared_memory_region") +
        "; a tensor in shared memory needs both");
  }
  if (*byte_size < 0 || (offset != nullptr && *offset < 0)) {
    return InvalidArgument(what + ": shared_memory_byte_size " + std::to_string(*byte_size) +
                           " and shared_memory_offset " + std::to_string(offset ? *offset : 0) +
                           " must not be negative");
  }
  SharedMemoryRef ref;
  ref.region = *region;
  ref.offset = offset ? static_cast<uint64_t>(*offset) : 0;
  ref.byte_size = static_cast<uint64_t>(*byte_size);
  return std::optional<SharedMemoryRef>(std::move(ref));
}

Tensor BorrowOrCopy(DType dtype, const Shape& shape, const void* data, size_t bytes) {
  if (reinterpret_cast<uintptr_t>(data) % DTypeSize(dtype) == 0) {
    return Tensor::Borrow(dtype, shape, const_cast<void*>(data));
  }
  Tensor t(dtype, shape);
  std::memcpy(t.raw_data(), data, bytes);
  return t;
}

StatusOr<Tensor> InputFromSharedMemory(const SharedMemoryRegions& regions,
                                       const SharedMemoryRef& ref, const std::string& name,
                                       DType dtype, const Shape& shape, size_t bytes,
                                       InferRequest* request) {
  const std::string what = "input '" + name + "'";
  if (ref.byte_size != bytes) {
    return InvalidArgument(what + ": shared_memory_byte_size is " + std::to_string(ref.byte_size) +
                           ", but " + ProtocolName(dtype) + ShapeToString(shape) + " needs " +
                           std::to_string(bytes));
  }
  ASSIGN_OR_RETURN(SharedMemorySlice slice, regions.Slice(ref, what));
  Tensor tensor = BorrowOrCopy(dtype, shape, slice.data, bytes);
  request->shared_inputs[name] = std::move(slice);
  return tensor;
}

Status OutputToSharedMemory(const SharedMemorySlice& slice, const std::string& name,
                            const Tensor& t) {
  const std::string what = "output '" + name + "'";
  if (t.num_bytes() > slice.bytes) {
    return InvalidArgument(what + " is " + ProtocolName(t.dtype()) + ShapeToString(t.shape()) +
                           ", " + std::to_string(t.num_bytes()) +
                           " bytes, more than its shared_memory_byte_size " +
                           std::to_string(slice.bytes) + "; give it a larger part of the region");
  }
  if (t.num_bytes() > 0) std::memcpy(slice.data, t.raw_data(), t.num_bytes());
  return slice.Ok(what);
}

int64_t BatchOf(const InferRequest& request) {
  if (request.inputs.empty()) return 1;
  const Tensor& t = request.inputs.begin()->second;
  return t.rank() > 0 ? t.dim(0) : 1;
}

StatusOr<SharedMemorySlice> CheckOutputRegion(const SharedMemoryRegions& regions,
                                              const ServedModel& model, const std::string& name,
                                              const SharedMemoryRef& ref, int64_t batch) {
  const std::string what = "output '" + name + "'";
  ASSIGN_OR_RETURN(SharedMemorySlice slice, regions.Slice(ref, what));
  for (const auto& out : model.config().output()) {
    if (out.name() != name) continue;
    // The batch is the client's, not yet checked against the model: an overflowing product
    // skips this early check (the model refuses the request).
    int64_t elements = model.config().max_batch_size() > 0 ? batch : 1;
    for (int64_t d : out.dims()) {
      if (d < 0 || __builtin_mul_overflow(elements, d, &elements)) return slice;
    }
    uint64_t bytes = 0;
    if (__builtin_mul_overflow(static_cast<uint64_t>(elements),
                               DTypeSize(DTypeFromConfig(out.data_type())), &bytes)) {
      return slice;
    }
    if (bytes > ref.byte_size) {
      return InvalidArgument(what + " will be " + std::to_string(bytes) +
                             " bytes, more than its shared_memory_byte_size " +
                             std::to_string(ref.byte_size) +
                             "; give it a larger part of the region");
    }
  }
  return slice;
}

const Tensor& OutputOf(const InferResult& result, const std::string& name) {
  for (const auto& [n, t] : result.outputs) {
    if (n == name) return t;
  }
  assert(false && "SelectOutputs accepted an output the result lacks");
  return result.outputs.front().second;
}

int HttpStatusOf(StatusCode code) {
  switch (code) {
    case StatusCode::kOk:
      return 200;
    case StatusCode::kNotFound:
      return 404;
    case StatusCode::kResourceExhausted:
      return 429;
    case StatusCode::kUnavailable:
      return 503;
    case StatusCode::kDeadlineExceeded:
      return 504;
    case StatusCode::kUnimplemented:
      return 501;
    case StatusCode::kInternal:
    case StatusCode::kUnknown:
    case StatusCode::kDataLoss:
      return 500;
    default:
      return 400;
  }
}

}  // namespace parnet::serve
