#include "runtime/serve/grpc_frontend.h"

#include <grpcpp/grpcpp.h>

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "proto/grpc_service.grpc.pb.h"
#include "runtime/serve/datatype.h"
#include "runtime/serve/frontend.h"
#include "runtime/serve/grpc_codec.h"

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

// The answers of one ModelStreamInfer call, written by a thread of their own: a finished
// execution only queues its answer, so a client that stops reading stalls its own stream (the
// handler stops reading requests once kStreamBacklog answers wait, and gRPC's flow control
// holds the client), never the model instance and its other clients. The writer also asks gRPC
// every kClientPoll whether the client cancelled, for the stream's queued requests (gone()).
class StreamAnswers {
  struct State;

 public:
  using Stream = grpc::ServerReaderWriter<inference::ModelStreamInferResponse, ModelInferRequest>;

  // One answer the stream waits for: Answer() queues it; destroyed unanswered (the request was
  // refused, or Submit threw), it stops being waited for. Held by the request's InferDone.
  class Expected {
   public:
    explicit Expected(std::shared_ptr<State> state);
    ~Expected();
    void Answer(inference::ModelStreamInferResponse response);

   private:
    std::shared_ptr<State> state_;
    bool answered_ = false;
  };

  // `context` and `stream` must outlive this object (the handler's own).
  StreamAnswers(grpc::ServerContext* context, Stream* stream);
  // Waits until every Expected is answered or gone and every answer written (or dropped: the
  // client left), then joins the writer.
  ~StreamAnswers();

  // Blocks while kStreamBacklog answers wait to be written.
  void WaitForRoom();
  // Queues an answer no Expected stands for (a refused request's error).
  void Queue(inference::ModelStreamInferResponse response);
  std::shared_ptr<Expected> Expect();
  // Set once the client cancelled the stream or stopped taking answers.
  std::shared_ptr<const std::atomic<bool>> gone() const { return state_->gone; }

 private:
  struct State {
    std::mutex mu;
    std::condition_variable changed;
    std::deque<inference::ModelStreamInferResponse> backlog;  // answered, not yet written
    int expected = 0;                                         // Expected not yet settled
    bool reading = true;
    std::shared_ptr<std::atomic<bool>> gone = std::make_shared<std::atomic<bool>>(false);
  };
  void WriteLoop(grpc::ServerContext* context, Stream* stream);

  std::shared_ptr<State> state_ = std::make_shared<State>();
  std::thread writer_;
};

StreamAnswers::Expected::Expected(std::shared_ptr<StreamAnswers::State> state)
    : state_(std::move(state)) {
  std::lock_guard<std::mutex> lock(state_->mu);
  ++state_->expected;
}

StreamAnswers::Expected::~Expected() {
  if (answered_) return;
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    --state_->expected;
  }
  state_->changed.notify_all();
}

void StreamAnswers::Expected::Answer(inference::ModelStreamInferResponse response) {
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    state_->backlog.push_back(std::move(response));
    --state_->expected;
    answered_ = true;
  }
  state_->changed.notify_all();
}

StreamAnswers::StreamAnswers(grpc::ServerContext* context, Stream* stream)
    : writer_([this, context, stream] { WriteLoop(context, stream); }) {}

StreamAnswers::~StreamAnswers() {
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    state_->reading = false;
  }
  state_->changed.notify_all();
  writer_.join();
}

void StreamAnswers::WaitForRoom() {
  std::unique_lock<std::mutex> lock(state_->mu);
  state_->changed.wait(lock, [&] { return state_->backlog.size() < kStreamBacklog; });
}

void StreamAnswers::Queue(inference::ModelStreamInferResponse response) {
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    state_->backlog.push_back(std::move(response));
  }
  state_->changed.notify_all();
}

std::shared_ptr<StreamAnswers::Expected> StreamAnswers::Expect() {
  return std::make_shared<Expected>(state_);
}

void StreamAnswers::WriteLoop(grpc::ServerContext* context, Stream* stream) {
  State& state = *state_;
  bool client_reads = true;  // after a failed Write the rest are dropped: the client left
  Clock::time_point asked = Clock::now();
  std::unique_lock<std::mutex> lock(state.mu);
  for (;;) {
    const bool woken = state.changed.wait_for(lock, kClientPoll, [&] {
      return !state.backlog.empty() || (!state.reading && state.expected == 0);
    });
    // Every kClientPoll, busy or not: a stream that keeps answering must notice too.
    if (!state.gone->load() && Clock::now() - asked >= kClientPoll) {
      lock.unlock();
      if (context->IsCancelled()) state.gone->store(true);
      asked = Clock::now();
      lock.lock();
    }
    if (!woken) continue;
    if (state.backlog.empty()) return;
    inference::ModelStreamInferResponse r = std::move(state.backlog.front());
    state.backlog.pop_front();
    lock.unlock();
    state.changed.notify_all();  // the reader may wait for room in the backlog
    if (client_reads) client_reads = stream->Write(r);
    if (!client_reads) state.gone->store(true);
    lock.lock();
  }
}

class GrpcService final : public inference::GRPCInferenceService::Service {
 public:
  GrpcService(const ModelRepository* repository, const std::atomic<bool>* ready,
              SharedMemoryRegions* regions)
      : repo_(repository), ready_(ready), regions_(regions) {}

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
    for (const auto& e : ServerExtensions(*regions_)) response->add_extensions(e);
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
    StatusOr<InferRequest> decoded = Decode(*request, *regions_);
    StatusOr<OutputRequests> outputs =
        decoded.ok() ? CheckOutputRequests(**model, *request, *decoded, *regions_)
                     : StatusOr<OutputRequests>(decoded.status());
    if (!outputs.ok()) {
      (*model)->RecordRequest(arrival, false);
      return ToGrpc(outputs.status());
    }
    decoded->arrival = arrival;
    decoded->client_deadline = ClientDeadline(*context);
    decoded->counted_by_front_end = true;
    // Only this thread asks gRPC (a call's completion queue takes a few pollers at most).
    StatusOr<InferResult> result =
        InferAndWait(*model, std::move(*decoded), [context] { return context->IsCancelled(); });
    if (!result.ok()) return ToGrpc(result.status());
    StatusOr<ModelInferResponse> encoded = Encode(**model, *request, *result, *outputs);
    (*model)->RecordRequest(arrival, encoded.ok());
    if (!encoded.ok()) return ToGrpc(encoded.status());
    *response = std::move(*encoded);
    return grpc::Status::OK;
  }

  // Requests on one stream run concurrently (and batch together); answers are written as they
  // complete, each carrying its request's id (see StreamAnswers). An error travels in
  // error_message and the stream goes on.
  grpc::Status ModelStreamInfer(grpc::ServerContext* context,
                                StreamAnswers::Stream* stream) override {
    StreamAnswers answers(context, stream);
    auto refuse = [&](const ModelInferRequest& req, const Status& s) {
      inference::ModelStreamInferResponse r;
      r.set_error_message(s.message());
      r.mutable_infer_response()->set_id(req.id());
      r.mutable_infer_response()->set_model_name(req.model_name());
      answers.Queue(std::move(r));
    };
    for (;;) {
      answers.WaitForRoom();
      auto request = std::make_shared<ModelInferRequest>();
      if (!stream->Read(request.get())) break;
      const Clock::time_point arrival = Clock::now();
      StatusOr<ServedModel*> model = repo_->Find(request->model_name(), request->model_version());
      if (!model.ok()) {
        refuse(*request, model.status());
        continue;
      }
      StatusOr<InferRequest> decoded = Decode(*request, *regions_);
      StatusOr<OutputRequests> outputs =
          decoded.ok() ? CheckOutputRequests(**model, *request, *decoded, *regions_)
                       : StatusOr<OutputRequests>(decoded.status());
      if (!outputs.ok()) {
        (*model)->RecordRequest(arrival, false);
        refuse(*request, outputs.status());
        continue;
      }
      decoded->arrival = arrival;
      decoded->keep_alive = request;
      decoded->client_deadline = ClientDeadline(*context);
      decoded->cancelled = answers.gone();
      decoded->counted_by_front_end = true;
      ServedModel* m = *model;
      std::shared_ptr<StreamAnswers::Expected> expected = answers.Expect();
      InferDone done = [m, request, expected, arrival,
                        wanted = std::move(*outputs)](StatusOr<InferResult> result) {
        inference::ModelStreamInferResponse r;
        StatusOr<ModelInferResponse> encoded = result.ok()
                                                   ? Encode(*m, *request, *result, wanted)
                                                   : StatusOr<ModelInferResponse>(result.status());
        if (result.ok()) m->RecordRequest(arrival, encoded.ok());
        if (encoded.ok()) {
          *r.mutable_infer_response() = std::move(*encoded);
        } else {
          r.set_error_message(encoded.status().message());
          r.mutable_infer_response()->set_id(request->id());
        }
        expected->Answer(std::move(r));
      };
      expected.reset();  // `done` holds it now
      Status submitted = m->Submit(std::move(*decoded), std::move(done));
      if (!submitted.ok()) refuse(*request, submitted);
    }
    return grpc::Status::OK;
  }

  grpc::Status SystemSharedMemoryStatus(
      grpc::ServerContext*, const inference::SystemSharedMemoryStatusRequest* request,
      inference::SystemSharedMemoryStatusResponse* response) override {
    StatusOr<std::vector<SharedMemoryRegionInfo>> regions = regions_->List(request->name());
    if (!regions.ok()) return ToGrpc(regions.status());
    for (const auto& r : *regions) {
      auto& status = (*response->mutable_regions())[r.name];
      status.set_name(r.name);
      status.set_key(r.key);
      status.set_offset(r.offset);
      status.set_byte_size(r.byte_size);
    }
    return grpc::Status::OK;
  }

  grpc::Status SystemSharedMemoryRegister(grpc::ServerContext*,
                                          const inference::SystemSharedMemoryRegisterRequest* r,
                                          inference::SystemSharedMemoryRegisterResponse*) override {
    return ToGrpc(regions_->Register(r->name(), r->key(), r->offset(), r->byte_size()));
  }

  grpc::Status SystemSharedMemoryUnregister(
      grpc::ServerContext*, const inference::SystemSharedMemoryUnregisterRequest* request,
      inference::SystemSharedMemoryUnregisterResponse*) override {
    regions_->Unregister(request->name());
    return grpc::Status::OK;
  }

  // No CUDA shared memory: no region to list or drop, and registering one says so.
  grpc::Status CudaSharedMemoryStatus(grpc::ServerContext*,
                                      const inference::CudaSharedMemoryStatusRequest* request,
                                      inference::CudaSharedMemoryStatusResponse*) override {
    if (request->name().empty()) return grpc::Status::OK;
    return ToGrpc(NotFound("CUDA shared memory region '" + request->name() +
                           "' is not registered (parnet serves system shared memory only)"));
  }

  grpc::Status CudaSharedMemoryRegister(grpc::ServerContext*,
                                        const inference::CudaSharedMemoryRegisterRequest* request,
                                        inference::CudaSharedMemoryRegisterResponse*) override {
    return ToGrpc(Unimplemented("registering CUDA shared memory region '" + request->name() +
                                "': parnet serves system shared memory only; register the "
                                "tensor's host copy with SystemSharedMemoryRegister"));
  }

  grpc::Status CudaSharedMemoryUnregister(grpc::ServerContext*,
                                          const inference::CudaSharedMemoryUnregisterRequest*,
                                          inference::CudaSharedMemoryUnregisterResponse*) override {
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
  SharedMemoryRegions* regions_;
};

}  // namespace

std::unique_ptr<grpc::Service> MakeGrpcService(const ModelRepository* repository,
                                               const std::atomic<bool>* ready,
                                               SharedMemoryRegions* regions) {
  return std::make_unique<GrpcService>(repository, ready, regions);
}

}  // namespace parnet::serve
