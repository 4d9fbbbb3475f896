#include "runtime/serve/grpc_frontend.h"

#include <grpcpp/grpcpp.h>

#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>

#include "proto/grpc_service.grpc.pb.h"
#include "runtime/serve/datatype.h"
#include "runtime/serve/frontend.h"

namespace parnet::serve {
namespace {

using inference::ModelInferRequest;
using inference::ModelInferResponse;

// Responses of one ModelStreamInfer waiting to be written before the server stops reading that
// stream's requests.
constexpr size_t kStreamBacklog = 64;

grpc::Status ToGrpc(const Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), s.message());
}

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

// The wire request as an InferRequest. Raw tensors borrow from `req`, which must outlive it.
StatusOr<InferRequest> Decode(const ModelInferRequest& req) {
  InferRequest out;
  out.id = req.id();
  const bool raw = req.raw_input_contents_size() > 0;
  if (raw && req.raw_input_contents_size() != req.inputs_size()) {
    return InvalidArgument("raw_input_contents has " +
                           std::to_string(req.raw_input_contents_size()) + " entries for " +
                           std::to_string(req.inputs_size()) +
                           " inputs; send one entry per input, in the order of 'inputs'");
  }
  for (int i = 0; i < req.inputs_size(); ++i) {
    const auto& in = req.inputs(i);
    ASSIGN_OR_RETURN(DType dtype, DTypeFromProtocolName(in.datatype()));
    const Shape shape(in.shape().begin(), in.shape().end());
    ASSIGN_OR_RETURN(size_t bytes, TensorByteSize(in.name(), dtype, shape));
    if (out.inputs.count(in.name())) {
      return InvalidArgument("input '" + in.name() + "' appears twice; send each input once");
    }
    Tensor tensor;
    if (raw) {
      if (HasTypedContents(in)) {
        return InvalidArgument("input '" + in.name() + "' has typed contents while the " +
                               "request also has raw_input_contents; use one form for all inputs");
      }
      const std::string& data = req.raw_input_contents(i);
      if (data.size() != bytes) {
        return InvalidArgument("input '" + in.name() + "': raw contents hold " +
                               std::to_string(data.size()) + " bytes, but " +
                               ProtocolName(dtype) + ShapeToString(shape) + " needs " +
                               std::to_string(bytes));
      }
      const auto address = reinterpret_cast<uintptr_t>(data.data());
      if (address % DTypeSize(dtype) == 0) {
        tensor = Tensor::Borrow(dtype, shape, const_cast<char*>(data.data()));
      } else {
        tensor = Tensor(dtype, shape);
        std::memcpy(tensor.raw_data(), data.data(), bytes);
      }
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

// The call's deadline on the server's clock; max() when the client set none.
Clock::time_point ClientDeadline(const grpc::ServerContext& context) {
  const auto deadline = context.deadline();
  const auto left = deadline - std::chrono::system_clock::now();
  if (deadline == std::chrono::system_clock::time_point::max() ||
      left > std::chrono::hours(24 * 365)) {
    return Clock::time_point::max();
  }
  return Clock::now() + std::chrono::duration_cast<Clock::duration>(left);
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

bool HasTypedField(DType d) {
  return d == DType::kFloat32 || d == DType::kFloat64 || d == DType::kInt64 ||
         d == DType::kInt32;
}

// The response for `result`: the selected outputs, raw when the request came raw (as Triton's
// clients expect), when asked with the "binary_data" parameter, or when a datatype has no typed
// field (FP16, BF16).
StatusOr<ModelInferResponse> Encode(const ServedModel& model, const ModelInferRequest& req,
                                    const InferResult& result) {
  std::vector<std::string> requested;
  bool raw = req.raw_input_contents_size() > 0 || WantsBinary(req.parameters(), "binary_data_output");
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
  for (const auto& name : names) {
    const Tensor& t = OutputOf(result, name);
    auto* out = response.add_outputs();
    out->set_name(name);
    out->set_datatype(ProtocolName(t.dtype()));
    for (int64_t d : t.shape()) out->add_shape(d);
    if (raw) {
      response.add_raw_output_contents(static_cast<const char*>(t.raw_data()), t.num_bytes());
    } else {
      SetTyped(t, out->mutable_contents());
    }
  }
  return response;
}

Status CheckOutputRequests(const ServedModel& model, const ModelInferRequest& req) {
  std::vector<std::string> requested;
  for (const auto& out : req.outputs()) {
    if (out.parameters().count("classification")) {
      return Unimplemented("output '" + out.name() + "': the classification extension is not " +
                           "supported; request the logits and take the top-k on the client");
    }
    requested.push_back(out.name());
  }
  return SelectOutputs(model, requested).status();
}

class GrpcService final : public inference::GRPCInferenceService::Service {
 public:
  GrpcService(const ModelRepository* repository, const std::atomic<bool>* ready)
      : repo_(repository), ready_(ready) {}

  grpc::Status ServerLive(grpc::ServerContext*, const inference::ServerLiveRequest*,
                          inference::ServerLiveResponse* response) override {
    response->set_live(true);
    return grpc::Status::OK;
  }

  grpc::Status ServerReady(grpc::ServerContext*, const inference::ServerReadyRequest*,
                           inference::ServerReadyResponse* response) override {
    response->set_ready(ready_->load());
    return grpc::Status::OK;
  }

  grpc::Status ModelReady(grpc::ServerContext*, const inference::ModelReadyRequest* request,
                          inference::ModelReadyResponse* response) override {
    StatusOr<ServedModel*> model = repo_->Find(request->name(), request->version());
    response->set_ready(model.ok() && (*model)->ready());
    return grpc::Status::OK;
  }

  grpc::Status ServerMetadata(grpc::ServerContext*, const inference::ServerMetadataRequest*,
                              inference::ServerMetadataResponse* response) override {
    response->set_name(kServerName);
    response->set_version(kServerVersion);
    for (const auto& e : ServerExtensions()) response->add_extensions(e);
    return grpc::Status::OK;
  }

  grpc::Status ModelMetadata(grpc::ServerContext*, const inference::ModelMetadataRequest* request,
                             inference::ModelMetadataResponse* response) override {
    StatusOr<ServedModel*> found = repo_->Find(request->name(), request->version());
    if (!found.ok()) return ToGrpc(found.status());
    const ServedModel& model = **found;
    const auto& config = model.config();
    response->set_name(model.name());
    for (int64_t v : repo_->Versions(model.name())) response->add_versions(std::to_string(v));
    response->set_platform(config.platform().empty() ? "onnxruntime_onnx" : config.platform());
    const bool batched = config.max_batch_size() > 0;
    auto fill = [&](auto* meta, const std::string& name, inference::DataType type,
                    const auto& dims) {
      meta->set_name(name);
      meta->set_datatype(ProtocolName(DTypeFromConfig(type)));
      if (batched) meta->add_shape(-1);
      for (int64_t d : dims) meta->add_shape(d);
    };
    for (const auto& in : config.input()) {
      fill(response->add_inputs(), in.name(), in.data_type(), in.dims());
    }
    for (const auto& out : config.output()) {
      fill(response->add_outputs(), out.name(), out.data_type(), out.dims());
    }
    return grpc::Status::OK;
  }

  grpc::Status ModelConfig(grpc::ServerContext*, const inference::ModelConfigRequest* request,
                           inference::ModelConfigResponse* response) override {
    StatusOr<ServedModel*> model = repo_->Find(request->name(), request->version());
    if (!model.ok()) return ToGrpc(model.status());
    *response->mutable_config() = (*model)->config();
    return grpc::Status::OK;
  }

  grpc::Status ModelStatistics(grpc::ServerContext*,
                               const inference::ModelStatisticsRequest* request,
                               inference::ModelStatisticsResponse* response) override {
    std::vector<ServedModel*> models;
    if (request->name().empty()) {
      models = repo_->All();
    } else if (request->version().empty()) {
      for (ServedModel* m : repo_->All()) {
        if (m->name() == request->name()) models.push_back(m);
      }
      if (models.empty()) return ToGrpc(repo_->Find(request->name(), "").status());
    } else {
      StatusOr<ServedModel*> model = repo_->Find(request->name(), request->version());
      if (!model.ok()) return ToGrpc(model.status());
      models.push_back(*model);
    }
    for (ServedModel* m : models) FillStatistics(*m, response->add_model_stats());
    return grpc::Status::OK;
  }

  grpc::Status RepositoryIndex(grpc::ServerContext*, const inference::RepositoryIndexRequest*,
                               inference::RepositoryIndexResponse* response) override {
    for (ServedModel* m : repo_->All()) {
      auto* entry = response->add_models();
      entry->set_name(m->name());
      entry->set_version(std::to_string(m->version()));
      entry->set_state(m->ready() ? "READY" : "LOADING");
    }
    return grpc::Status::OK;
  }

  grpc::Status ModelInfer(grpc::ServerContext* context, const ModelInferRequest* request,
                          ModelInferResponse* response) override {
    const Clock::time_point arrival = Clock::now();
    StatusOr<ServedModel*> model = repo_->Find(request->model_name(), request->model_version());
    if (!model.ok()) return ToGrpc(model.status());
    StatusOr<InferRequest> decoded = Decode(*request);
    Status checked = decoded.ok() ? CheckOutputRequests(**model, *request) : decoded.status();
    if (!checked.ok()) {
      (*model)->RecordFailure(arrival);
      return ToGrpc(checked);
    }
    decoded->arrival = arrival;
    decoded->client_deadline = ClientDeadline(*context);
    // Only this thread asks gRPC (a call's completion queue takes a few pollers at most).
    StatusOr<InferResult> result =
        InferAndWait(*model, std::move(*decoded), [context] { return context->IsCancelled(); });
    if (!result.ok()) return ToGrpc(result.status());
    StatusOr<ModelInferResponse> encoded = Encode(**model, *request, *result);
    if (!encoded.ok()) return ToGrpc(encoded.status());
    *response = std::move(*encoded);
    return grpc::Status::OK;
  }

  // Requests on one stream run concurrently (and batch together); responses are written as
  // they complete, each carrying its request's id. An error travels in error_message and the
  // stream goes on. A writer thread of the stream writes the responses: a finished execution
  // only queues its response, so a client that stops reading stalls its own stream (reading
  // stops once kStreamBacklog responses wait, and gRPC's flow control holds the client), never
  // the model instance and the other clients.
  grpc::Status ModelStreamInfer(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<inference::ModelStreamInferResponse, ModelInferRequest>* stream)
      override {
    struct StreamState {
      std::mutex mu;
      std::condition_variable changed;
      std::deque<inference::ModelStreamInferResponse> backlog;  // answered, not yet written
      int outstanding = 0;  // submitted, not yet answered
      bool reading = true;
      // The client cancelled the stream; the writer asks gRPC every kClientPoll.
      std::shared_ptr<std::atomic<bool>> gone = std::make_shared<std::atomic<bool>>(false);
    };
    auto state = std::make_shared<StreamState>();
    auto queue = [state](inference::ModelStreamInferResponse r, bool answers_submitted) {
      {
        std::lock_guard<std::mutex> lock(state->mu);
        state->backlog.push_back(std::move(r));
        if (answers_submitted) --state->outstanding;
      }
      state->changed.notify_all();
    };
    std::thread writer([state, stream, context] {
      bool client_reads = true;  // after a failed Write the rest are dropped: the client left
      std::unique_lock<std::mutex> lock(state->mu);
      for (;;) {
        const bool woken = state->changed.wait_for(lock, kClientPoll, [&] {
          return !state->backlog.empty() || (!state->reading && state->outstanding == 0);
        });
        if (!woken) {
          lock.unlock();
          if (!state->gone->load() && context->IsCancelled()) state->gone->store(true);
          lock.lock();
          continue;
        }
        if (state->backlog.empty()) return;
        inference::ModelStreamInferResponse r = std::move(state->backlog.front());
        state->backlog.pop_front();
        lock.unlock();
        state->changed.notify_all();  // the reader may wait for room in the backlog
        if (client_reads) client_reads = stream->Write(r);
        lock.lock();
      }
    });
    // However the reading ends (even by an exception), the writer is joined before the stream
    // goes: once every submitted request is answered and every answer written or dropped.
    struct JoinWriter {
      StreamState& state;
      std::thread& writer;
      ~JoinWriter() {
        {
          std::lock_guard<std::mutex> lock(state.mu);
          state.reading = false;
        }
        state.changed.notify_all();
        writer.join();
      }
    } join_writer{*state, writer};
    auto write_error = [&](const ModelInferRequest& req, const Status& s) {
      inference::ModelStreamInferResponse r;
      r.set_error_message(s.message());
      r.mutable_infer_response()->set_id(req.id());
      r.mutable_infer_response()->set_model_name(req.model_name());
      queue(std::move(r), false);
    };
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(state->mu);
        state->changed.wait(lock, [&] { return state->backlog.size() < kStreamBacklog; });
      }
      auto request = std::make_shared<ModelInferRequest>();
      if (!stream->Read(request.get())) break;
      const Clock::time_point arrival = Clock::now();
      StatusOr<ServedModel*> model = repo_->Find(request->model_name(), request->model_version());
      if (!model.ok()) {
        write_error(*request, model.status());
        continue;
      }
      StatusOr<InferRequest> decoded = Decode(*request);
      Status checked = decoded.ok() ? CheckOutputRequests(**model, *request) : decoded.status();
      if (!checked.ok()) {
        (*model)->RecordFailure(arrival);
        write_error(*request, checked);
        continue;
      }
      decoded->arrival = arrival;
      decoded->keep_alive = request;
      decoded->client_deadline = ClientDeadline(*context);
      decoded->cancelled = state->gone;
      ServedModel* m = *model;
      InferDone done = [=](StatusOr<InferResult> result) {
        inference::ModelStreamInferResponse r;
        StatusOr<ModelInferResponse> encoded =
            result.ok() ? Encode(*m, *request, *result) : StatusOr<ModelInferResponse>(result.status());
        if (encoded.ok()) {
          *r.mutable_infer_response() = std::move(*encoded);
        } else {
          r.set_error_message(encoded.status().message());
          r.mutable_infer_response()->set_id(request->id());
        }
        queue(std::move(r), true);
      };
      {
        std::lock_guard<std::mutex> lock(state->mu);
        ++state->outstanding;
      }
      Status submitted = Status::Ok();
      try {
        submitted = m->Submit(std::move(*decoded), std::move(done));
      } catch (...) {  // not queued: nothing will answer it
        std::lock_guard<std::mutex> lock(state->mu);
        --state->outstanding;
        throw;
      }
      if (!submitted.ok()) {
        {
          std::lock_guard<std::mutex> lock(state->mu);
          --state->outstanding;
        }
        write_error(*request, submitted);
      }
    }
    return grpc::Status::OK;
  }

 private:
  static void Fill(const Duration& d, inference::StatisticDuration* out) {
    out->set_count(d.count);
    out->set_ns(d.ns);
  }

  static void FillStatistics(const ServedModel& m, inference::ModelStatistics* out) {
    const StatsSnapshot s = m.stats().Snapshot();
    out->set_name(m.name());
    out->set_version(std::to_string(m.version()));
    out->set_last_inference(s.last_inference_ms);
    out->set_inference_count(s.inference_count);
    out->set_execution_count(s.execution_count);
    auto* is = out->mutable_inference_stats();
    Fill(s.success, is->mutable_success());
    Fill(s.fail, is->mutable_fail());
    Fill(s.queue, is->mutable_queue());
    Fill(s.compute_input, is->mutable_compute_input());
    Fill(s.compute_infer, is->mutable_compute_infer());
    Fill(s.compute_output, is->mutable_compute_output());
    for (const auto& [size, b] : s.batches) {
      auto* bs = out->add_batch_stats();
      bs->set_batch_size(size);
      Fill(b.compute_input, bs->mutable_compute_input());
      Fill(b.compute_infer, bs->mutable_compute_infer());
      Fill(b.compute_output, bs->mutable_compute_output());
    }
  }

  const ModelRepository* repo_;
  const std::atomic<bool>* ready_;
};

}  // namespace

std::unique_ptr<grpc::Service> MakeGrpcService(const ModelRepository* repository,
                                               const std::atomic<bool>* ready) {
  return std::make_unique<GrpcService>(repository, ready);
}

}  // namespace parnet::serve
