#include "runtime/serve/frontend.h"

#include <algorithm>
#include <cassert>
#include <future>
#include <limits>

namespace parnet::serve {

std::vector<std::string> ServerExtensions() {
  return {"model_configuration", "statistics", "binary_tensor_data", "model_repository"};
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
