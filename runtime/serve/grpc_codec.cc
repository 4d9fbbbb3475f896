#include "runtime/serve/grpc_codec.h"

#include <cstdint>
#include <map>
#include <optional>

#include "runtime/serve/classification.h"
#include "runtime/serve/datatype.h"
#include "runtime/serve/frontend.h"

namespace parnet::serve {
namespace {

using inference::ModelInferRequest;
using inference::ModelInferResponse;

template <typename T, typename Field>
Tensor CopyTyped(DType dtype, const Shape& shape, const Field& values) {
  Tensor t(dtype, shape);
  T* dst = static_cast<T*>(t.raw_data());
  for (int i = 0; i < values.size(); ++i) dst[i] = static_cast<T>(values.Get(i));
  return t;
}

// The typed contents of one input as a tensor; the element count must match the shape.
StatusOr<Tensor> DecodeTyped(const ModelInferRequest::InferInputTensor& in, DType dtype,
                             const Shape& shape) {
  const auto& c = in.contents();
  const int64_t n = NumElements(shape);
  auto count_ok = [&](int have, const char* field) -> Status {
    if (have == n) return Status::Ok();
    return InvalidArgument("input '" + in.name() + "': contents." + field + " holds " +
                           std::to_string(have) + " values, but " + ProtocolName(dtype) +
                           ShapeToString(shape) + " needs " + std::to_string(n));
  };
  switch (dtype) {
    case DType::kFloat32:
      RETURN_IF_ERROR(count_ok(c.fp32_contents_size(), "fp32_contents"));
      return CopyTyped<float>(dtype, shape, c.fp32_contents());
    case DType::kFloat64:
      RETURN_IF_ERROR(count_ok(c.fp64_contents_size(), "fp64_contents"));
      return CopyTyped<double>(dtype, shape, c.fp64_contents());
    case DType::kInt64:
      RETURN_IF_ERROR(count_ok(c.int64_contents_size(), "int64_contents"));
      return CopyTyped<int64_t>(dtype, shape, c.int64_contents());
    case DType::kInt32:
      RETURN_IF_ERROR(count_ok(c.int_contents_size(), "int_contents"));
      return CopyTyped<int32_t>(dtype, shape, c.int_contents());
    case DType::kInt16:
      RETURN_IF_ERROR(count_ok(c.int_contents_size(), "int_contents"));
      return CopyTyped<int16_t>(dtype, shape, c.int_contents());
    case DType::kInt8:
      RETURN_IF_ERROR(count_ok(c.int_contents_size(), "int_contents"));
      return CopyTyped<int8_t>(dtype, shape, c.int_contents());
    case DType::kUInt64:
      RETURN_IF_ERROR(count_ok(c.uint64_contents_size(), "uint64_contents"));
      return CopyTyped<uint64_t>(dtype, shape, c.uint64_contents());
    case DType::kUInt32:
      RETURN_IF_ERROR(count_ok(c.uint_contents_size(), "uint_contents"));
      return CopyTyped<uint32_t>(dtype, shape, c.uint_contents());
    case DType::kUInt16:
      RETURN_IF_ERROR(count_ok(c.uint_contents_size(), "uint_contents"));
      return CopyTyped<uint16_t>(dtype, shape, c.uint_contents());
    case DType::kUInt8:
      RETURN_IF_ERROR(count_ok(c.uint_contents_size(), "uint_contents"));
      return CopyTyped<uint8_t>(dtype, shape, c.uint_contents());
    case DType::kBool:
      RETURN_IF_ERROR(count_ok(c.bool_contents_size(), "bool_contents"));
      return CopyTyped<bool>(dtype, shape, c.bool_contents());
    default:
      return InvalidArgument("input '" + in.name() + "': " + ProtocolName(dtype) +
                             " has no typed contents field; send it in raw_input_contents");
  }
}

bool HasTypedContents(const ModelInferRequest::InferInputTensor& in) {
  const auto& c = in.contents();
  return c.bool_contents_size() || c.int_contents_size() || c.int64_contents_size() ||
         c.uint_contents_size() || c.uint64_contents_size() || c.fp32_contents_size() ||
         c.fp64_contents_size() || c.bytes_contents_size();
}

bool WantsBinary(const google::protobuf::Map<std::string, inference::InferParameter>& params,
                 const char* key) {
  auto it = params.find(key);
  return it != params.end() && it->second.bool_param();
}

void SetTyped(const Tensor& t, inference::InferTensorContents* c) {
  const int64_t n = t.num_elements();
  switch (t.dtype()) {
    case DType::kFloat32:
      c->mutable_fp32_contents()->Add(t.data<float>(), t.data<float>() + n);
      break;
    case DType::kFloat64:
      c->mutable_fp64_contents()->Add(t.data<double>(), t.data<double>() + n);
      break;
    case DType::kInt64:
      c->mutable_int64_contents()->Add(t.data<int64_t>(), t.data<int64_t>() + n);
      break;
    case DType::kInt32:
      c->mutable_int_contents()->Add(t.data<int32_t>(), t.data<int32_t>() + n);
      break;
    default:
      break;  // HasTypedField() said no: the caller sends raw bytes instead
  }
}

using Parameters = google::protobuf::Map<std::string, inference::InferParameter>;

// An integer parameter as int64_param or uint64_param (clients use either); null when absent.
StatusOr<const int64_t*> IntParameter(const Parameters& params, const char* key,
                                      const std::string& what, int64_t* storage) {
  auto it = params.find(key);
  if (it == params.end()) return static_cast<const int64_t*>(nullptr);
  switch (it->second.parameter_choice_case()) {
    case inference::InferParameter::kInt64Param:
      *storage = it->second.int64_param();
      return static_cast<const int64_t*>(storage);
    case inference::InferParameter::kUint64Param:
      if (it->second.uint64_param() <= static_cast<uint64_t>(INT64_MAX)) {
        *storage = static_cast<int64_t>(it->second.uint64_param());
        return static_cast<const int64_t*>(storage);
      }
      break;
    default:
      break;
  }
  return InvalidArgument(what + ": parameter " + key + " must be an int64_param");
}

// The shared memory parameters of a tensor, if it has any.
StatusOr<std::optional<SharedMemoryRef>> RefOf(const Parameters& params, const std::string& what) {
  const std::string* region = nullptr;
  if (auto it = params.find("shared_memory_region"); it != params.end()) {
    if (it->second.parameter_choice_case() != inference::InferParameter::kStringParam) {
      return InvalidArgument(what + ": parameter shared_memory_region must be a string_param");
    }
    region = &it->second.string_param();
  }
  int64_t offset_value = 0, size_value = 0;
  ASSIGN_OR_RETURN(const int64_t* offset,
                   IntParameter(params, "shared_memory_offset", what, &offset_value));
  ASSIGN_OR_RETURN(const int64_t* size,
                   IntParameter(params, "shared_memory_byte_size", what, &size_value));
  return SharedMemoryRefOf(what, region, offset, size);
}

// The class count an output is requested with (the classification extension); 0: none.
StatusOr<int64_t> ClassCountOf(const Parameters& params, const std::string& what) {
  int64_t value = 0;
  ASSIGN_OR_RETURN(const int64_t* count, IntParameter(params, "classification", what, &value));
  if (count == nullptr) return int64_t{0};
  RETURN_IF_ERROR(CheckClassCount(what, *count));
  return *count;
}

bool HasTypedField(DType d) {
  return d == DType::kFloat32 || d == DType::kFloat64 || d == DType::kInt64 || d == DType::kInt32;
}

}  // namespace

StatusOr<InferRequest> Decode(const ModelInferRequest& req, const SharedMemoryRegions& regions) {
  InferRequest out;
  out.id = req.id();
  // raw_input_contents holds one entry per input that is not in shared memory, in order.
  std::vector<std::optional<SharedMemoryRef>> refs;
  int in_messages = 0;
  for (const auto& in : req.inputs()) {
    ASSIGN_OR_RETURN(refs.emplace_back(), RefOf(in.parameters(), "input '" + in.name() + "'"));
    if (!refs.back()) ++in_messages;
  }
  const bool raw = req.raw_input_contents_size() > 0;
  if (raw && req.raw_input_contents_size() != in_messages) {
    return InvalidArgument("raw_input_contents has " +
                           std::to_string(req.raw_input_contents_size()) + " entries for " +
                           std::to_string(in_messages) +
                           " inputs not in shared memory; send one entry per such input, in the "
                           "order of 'inputs'");
  }
  int raw_index = 0;
  for (int i = 0; i < req.inputs_size(); ++i) {
    const auto& in = req.inputs(i);
    ASSIGN_OR_RETURN(DType dtype, DTypeFromProtocolName(in.datatype()));
    const Shape shape(in.shape().begin(), in.shape().end());
    ASSIGN_OR_RETURN(size_t bytes, TensorByteSize(in.name(), dtype, shape));
    if (out.inputs.count(in.name())) {
      return InvalidArgument("input '" + in.name() + "' appears twice; send each input once");
    }
    Tensor tensor;
    if (refs[i]) {
      if (HasTypedContents(in)) {
        return InvalidArgument("input '" + in.name() +
                               "' has typed contents and shared memory "
                               "parameters; send its data one way");
      }
      ASSIGN_OR_RETURN(
          tensor, InputFromSharedMemory(regions, *refs[i], in.name(), dtype, shape, bytes, &out));
    } else if (raw) {
      if (HasTypedContents(in)) {
        return InvalidArgument("input '" + in.name() + "' has typed contents while the " +
                               "request also has raw_input_contents; use one form for all inputs");
      }
      const std::string& data = req.raw_input_contents(raw_index++);
      if (data.size() != bytes) {
        return InvalidArgument("input '" + in.name() + "': raw contents hold " +
                               std::to_string(data.size()) + " bytes, but " + ProtocolName(dtype) +
                               ShapeToString(shape) + " needs " + std::to_string(bytes));
      }
      tensor = BorrowOrCopy(dtype, shape, data.data(), bytes);
    } else {
      ASSIGN_OR_RETURN(tensor, DecodeTyped(in, dtype, shape));
    }
    out.inputs[in.name()] = std::move(tensor);
  }
  auto timeout = req.parameters().find("timeout");
  if (timeout != req.parameters().end() && timeout->second.int64_param() > 0) {
    out.timeout_us = static_cast<uint64_t>(timeout->second.int64_param());
  }
  return out;
}

StatusOr<ModelInferResponse> Encode(const ServedModel& model, const ModelInferRequest& req,
                                    const InferResult& result, const OutputRequests& outputs) {
  std::vector<std::string> requested;
  // Typed outputs answer a request that sent typed contents; raw_input_contents or inputs in
  // shared memory get raw outputs, which is all Triton's clients read.
  bool typed_request = false;
  for (const auto& in : req.inputs()) typed_request = typed_request || HasTypedContents(in);
  bool raw = req.raw_input_contents_size() > 0 || !typed_request ||
             WantsBinary(req.parameters(), "binary_data_output");
  for (const auto& out : req.outputs()) {
    requested.push_back(out.name());
    raw = raw || WantsBinary(out.parameters(), "binary_data");
  }
  ASSIGN_OR_RETURN(std::vector<std::string> names, SelectOutputs(model, requested));
  for (const auto& name : names) raw = raw || !HasTypedField(OutputOf(result, name).dtype());
  ModelInferResponse response;
  response.set_model_name(model.name());
  response.set_model_version(std::to_string(model.version()));
  response.set_id(req.id());
  // raw_output_contents holds an entry for every output, in order (clients index it so; Triton's
  // C++ client reads past the end otherwise): empty for an output in shared memory.
  for (const std::string& name : names) {
    const Tensor& t = OutputOf(result, name);
    auto* out = response.add_outputs();
    out->set_name(name);
    if (auto count = outputs.classes.find(name); count != outputs.classes.end()) {
      ASSIGN_OR_RETURN(Classes classes,
                       Classify("output '" + name + "'", t, count->second,
                                model.config().max_batch_size() > 0, model.labels()));
      out->set_datatype("BYTES");
      for (int64_t d : classes.shape) out->add_shape(d);
      if (raw) {
        response.add_raw_output_contents(SerializeBytes(classes.values));
      } else {
        for (auto& v : classes.values) out->mutable_contents()->add_bytes_contents(std::move(v));
      }
      continue;
    }
    out->set_datatype(ProtocolName(t.dtype()));
    for (int64_t d : t.shape()) out->add_shape(d);
    if (auto slice = outputs.slices.find(name); slice != outputs.slices.end()) {
      // As Triton 2.51 answers: no parameters, an empty raw entry.
      RETURN_IF_ERROR(OutputToSharedMemory(slice->second, name, t));
      if (raw) response.add_raw_output_contents();
    } else if (raw) {
      response.add_raw_output_contents(static_cast<const char*>(t.raw_data()), t.num_bytes());
    } else {
      SetTyped(t, out->mutable_contents());
    }
  }
  return response;
}

StatusOr<OutputRequests> CheckOutputRequests(const ServedModel& model, const ModelInferRequest& req,
                                             const InferRequest& decoded,
                                             const SharedMemoryRegions& regions) {
  std::vector<std::string> requested;
  for (const auto& out : req.outputs()) requested.push_back(out.name());
  RETURN_IF_ERROR(SelectOutputs(model, requested).status());
  OutputRequests outputs;
  for (const auto& out : req.outputs()) {
    const std::string what = "output '" + out.name() + "'";
    ASSIGN_OR_RETURN(int64_t classes, ClassCountOf(out.parameters(), what));
    ASSIGN_OR_RETURN(std::optional<SharedMemoryRef> ref, RefOf(out.parameters(), what));
    if (classes > 0 && ref) return ClassesInSharedMemory(what);
    if (classes > 0) outputs.classes[out.name()] = classes;
    if (ref) {
      ASSIGN_OR_RETURN(outputs.slices[out.name()],
                       CheckOutputRegion(regions, model, out.name(), *ref, BatchOf(decoded)));
    }
  }
  return outputs;
}

}  // namespace parnet::serve
