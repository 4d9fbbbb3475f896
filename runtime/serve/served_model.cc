#include "runtime/serve/served_model.h"

#include <pthread.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>

#include "runtime/core/log_internal.h"
#include "runtime/graph/onnx_import.h"
#include "runtime/serve/datatype.h"
#include "runtime/serve/execution_slots.h"
#include "runtime/serve/model_config.h"

namespace parnet::serve {
namespace {

std::vector<std::string> ReadLabels(const std::string& path) {
  std::vector<std::string> labels;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) labels.push_back(line);
  return labels;
}

// OpenMP's default thread count, read without OpenMP's per-thread setting (the warm-up of each
// engine sets that on the thread it runs on, the main thread for single-threaded instances):
// OMP_NUM_THREADS when set, else the cores the calling thread may use (after the server kept
// off the cores of host policies, the others).
int DefaultThreads() {
  if (const char* env = std::getenv("OMP_NUM_THREADS")) {
    const long n = std::strtol(env, nullptr, 10);  // "4", or "4,2" for nested levels
    if (n > 0) return static_cast<int>(std::min<long>(n, 4096));
  }
  return std::max(1, static_cast<int>(AllowedCores().size()));
}

std::string ConfigShape(bool batched, const google::protobuf::RepeatedField<int64_t>& dims) {
  Shape shape(dims.begin(), dims.end());
  if (batched) shape.insert(shape.begin(), -1);
  return ShapeToString(shape);
}

}  // namespace

ServedModel::ServedModel(std::string name, int64_t version, inference::ModelConfig config,
                         const ServeOptions& options)
    : name_(std::move(name)), version_(version), config_(std::move(config)), options_(options) {}

StatusOr<std::unique_ptr<ServedModel>> ServedModel::Load(const std::string& name, int64_t version,
                                                         const std::string& model_path,
                                                         inference::ModelConfig config,
                                                         const ServeOptions& options) {
  auto where = [&](const Status& s) {
    return s.WithContext("model '" + name + "' version " + std::to_string(version));
  };
  StatusOr<Graph> graph = LoadOnnxModel(model_path);
  if (!graph.ok()) return where(graph.status());
  if (Status s = CompleteModelConfig(*graph, name, &config); !s.ok()) return where(s);

  std::unique_ptr<ServedModel> model(new ServedModel(name, version, config, options));
  for (const auto& n : graph->inputs) model->model_dtypes_[n] = graph->FindType(n)->dtype;
  for (const auto& n : graph->outputs) model->model_dtypes_[n] = graph->FindType(n)->dtype;
  model->buckets_ = BatchBuckets(config);
  const bool batched = config.max_batch_size() > 0;
  model->batching_ = batched && config.has_dynamic_batching();
  if (model->batching_) {
    const auto& db = config.dynamic_batching();
    model->max_delay_ = std::chrono::microseconds(db.max_queue_delay_microseconds());
    model->target_batch_ = config.max_batch_size();
    if (db.preferred_batch_size_size() > 0) {
      model->target_batch_ =
          *std::max_element(db.preferred_batch_size().begin(), db.preferred_batch_size().end());
    }
    if (db.has_default_queue_policy()) {
      const auto& policy = db.default_queue_policy();
      model->default_timeout_us_ = policy.default_timeout_microseconds();
      model->allow_timeout_override_ = policy.allow_timeout_override();
      model->max_queue_ = policy.max_queue_size();
    }
  }
  if (model->max_queue_ == 0) model->max_queue_ = options.default_max_queue;
  for (const auto& out : config.output()) {
    if (!out.label_filename().empty() && model->labels_.empty()) {
      const auto dir = std::filesystem::path(model_path).parent_path().parent_path();
      model->labels_ = ReadLabels((dir / out.label_filename()).string());
    }
  }

  if (Status s = model->CreateInstances(*graph, options); !s.ok()) return where(s);
  model->busy_.assign(model->engines_.size(), false);
  for (size_t i = 0; i < model->engines_.size(); ++i) {
    model->workers_.emplace_back([m = model.get(), i] { m->WorkerLoop(i); });
  }
  return model;
}

Status ServedModel::CreateInstances(const Graph& graph, const ServeOptions& options) {
  int unbound = 0;
  for (const auto& group : config_.instance_group()) {
    if (group.host_policy().empty()) unbound += group.count();
  }
  for (const auto& group : config_.instance_group()) {
    std::vector<int> cores;
    if (!group.host_policy().empty()) {
      auto policy = options.host_policies.find(group.host_policy());
      if (policy == options.host_policies.end()) {
        return InvalidArgument("instance_group host_policy '" + group.host_policy() +
                               "' is not defined; start parnet serve with --host-policy " +
                               group.host_policy() + ",cpu-cores=<cores>");
      }
      cores = policy->second;
    }
    EngineOptions engine_options;
    engine_options.backend = options.backend;
    // 0: a bound group's instances split its cores; the unbound ones split OpenMP's default.
    const int share = static_cast<int>(cores.size()) / group.count();
    engine_options.threads = options.threads > 0 ? options.threads
                             : !cores.empty()    ? std::max(1, share)
                                                 : std::max(1, DefaultThreads() / unbound);
    // Every warmed-up batch size stays compiled; the slack is for dynamic item shapes.
    engine_options.max_cached_shapes = buckets_.size() + 8;
    for (int k = 0; k < group.count(); ++k) {
      ASSIGN_OR_RETURN(std::unique_ptr<Engine> engine, Engine::Create(graph, engine_options));
      engines_.push_back(std::move(engine));
      threads_.push_back(engine_options.threads);
      cores_.push_back(cores);
      if (!cores.empty() && engine_options.threads > 1) {
        // Its OpenMP pool belongs to a lasting thread of the policy, bound before the warm-up
        // opens it. A single-threaded bound instance computes on its worker thread, bound in
        // WorkerLoop.
        ASSIGN_OR_RETURN(size_t slot, ExecutionSlots::Shared().PlaceBound(
                                          group.host_policy(), cores, engine_options.threads));
        slots_.push_back(slot);
      } else {
        slots_.push_back(engine_options.threads > 1
                             ? ExecutionSlots::Shared().Place(engine_options.threads)
                             : 0);
      }
    }
  }
  // The receiving thread may run a request only on an unbound single-threaded instance (see
  // the file comment), and Submit() picks any idle instance: all must qualify.
  caller_may_run_ = std::all_of(cores_.begin(), cores_.end(),
                                [](const std::vector<int>& c) { return c.empty(); }) &&
                    std::all_of(threads_.begin(), threads_.end(), [](int t) { return t == 1; });
  return Status::Ok();
}

ServedModel::~ServedModel() {
  std::deque<Pending> left;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    left.swap(queue_);
  }
  cv_.notify_all();
  for (auto& worker : workers_) worker.join();
  {
    // A front end's thread may still be running a request here (Dispatch::kCallerMayRun).
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return std::find(busy_.begin(), busy_.end(), true) == busy_.end(); });
  }
  for (auto& pending : left) {
    Finish(pending, Status(StatusCode::kUnavailable,
                           "the server is shutting down; send the request to another replica"));
  }
}

Status ServedModel::WarmUp() {
  bool static_items = true;
  for (const auto& input : config_.input()) {
    for (int64_t d : input.dims()) static_items = static_items && d > 0;
  }
  if (static_items) {
    const bool batched = config_.max_batch_size() > 0;
    for (int64_t bucket : buckets_) {
      std::map<std::string, Shape> shapes;
      for (const auto& input : config_.input()) {
        Shape shape(input.dims().begin(), input.dims().end());
        if (batched) shape.insert(shape.begin(), bucket);
        shapes[input.name()] = shape;
      }
      for (size_t i = 0; i < engines_.size(); ++i) {
        RETURN_IF_ERROR(PrepareInstance(i, shapes).WithContext(
            "warming up model '" + name_ + "' at batch " + std::to_string(bucket)));
      }
    }
  } else {
    Logger("serve")->info("model '{}': item shape is dynamic; each new shape compiles on first use",
                          name_);
  }
  ready_ = true;
  return Status::Ok();
}

size_t ServedModel::queue_size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return queue_.size();
}

Status ServedModel::Check(const InferRequest& request, int64_t* batch) const {
  const bool batched = config_.max_batch_size() > 0;
  std::string expected;
  for (const auto& in : config_.input()) {
    expected += (expected.empty() ? "'" : ", '") + in.name() + "' (" +
                ProtocolName(DTypeFromConfig(in.data_type())) + ConfigShape(batched, in.dims()) +
                ")";
  }
  for (const auto& [name, tensor] : request.inputs) {
    const bool known = std::any_of(config_.input().begin(), config_.input().end(),
                                   [&](const auto& in) { return in.name() == name; });
    if (!known) {
      return InvalidArgument("unexpected input '" + name + "' for model '" + name_ +
                             "'; it takes " + expected);
    }
  }
  *batch = -1;
  for (const auto& in : config_.input()) {
    auto it = request.inputs.find(in.name());
    if (it == request.inputs.end()) {
      if (in.optional()) continue;
      return InvalidArgument("input '" + in.name() + "' is missing; model '" + name_ + "' takes " +
                             expected);
    }
    const Tensor& t = it->second;
    const DType want = DTypeFromConfig(in.data_type());
    const std::string head = "input '" + in.name() + "': ";
    if (t.dtype() != want) {
      return InvalidArgument(head + "datatype " + ProtocolName(t.dtype()) +
                             " does not match the model's " + ProtocolName(want) + "; send " +
                             ProtocolName(want));
    }
    const std::string shapes = "shape " + ShapeToString(t.shape()) + " does not fit the model's " +
                               ConfigShape(batched, in.dims()) +
                               (batched ? " (batch first, -1: any size)" : " (-1: any size)");
    const size_t rank = static_cast<size_t>(in.dims_size()) + (batched ? 1 : 0);
    if (t.shape().size() != rank) {
      return InvalidArgument(head + shapes + ": the rank must be " + std::to_string(rank));
    }
    for (size_t d = 0; d < rank; ++d) {
      if (t.shape()[d] < 1) {
        return InvalidArgument(head + shapes + ": dimension " + std::to_string(d) + " is " +
                               std::to_string(t.shape()[d]) + "; every dimension must be >= 1");
      }
      const int64_t want_dim = (batched && d == 0) ? -1 : in.dims(static_cast<int>(d - batched));
      if (want_dim >= 0 && t.shape()[d] != want_dim) {
        return InvalidArgument(head + shapes + ": dimension " + std::to_string(d) + " must be " +
                               std::to_string(want_dim));
      }
    }
    if (batched) {
      if (t.shape()[0] > config_.max_batch_size()) {
        return InvalidArgument(head + "batch size " + std::to_string(t.shape()[0]) +
                               " exceeds max_batch_size " +
                               std::to_string(config_.max_batch_size()) + " of model '" + name_ +
                               "'; split the request");
      }
      if (*batch >= 0 && *batch != t.shape()[0]) {
        return InvalidArgument(head + "batch size " + std::to_string(t.shape()[0]) +
                               " differs from the other inputs' " + std::to_string(*batch) +
                               "; every input needs the same batch size");
      }
      *batch = t.shape()[0];
    }
    // The graph's own rules (spatial sizes its strides allow), on the model's element type.
    RETURN_IF_ERROR(
        engines_.front()->CheckInputShape(in.name(), model_dtypes_.at(in.name()), t.shape()));
  }
  if (*batch < 0) *batch = 1;
  return Status::Ok();
}

Status ServedModel::Submit(InferRequest request, InferDone done, Dispatch dispatch) {
  const Clock::time_point arrival = request.arrival;
  auto fail = [&](Status s) {
    RecordRequest(arrival, false);
    return s;
  };
  if (!ready_) {
    return fail(Status(StatusCode::kUnavailable, "model '" + name_ + "' is still warming up; " +
                                                     "retry when ModelReady says ready"));
  }
  Pending pending;
  if (Status s = Check(request, &pending.batch); !s.ok()) return fail(s);
  for (const auto& [name, t] : request.inputs) {
    Shape item(t.shape().begin() + (config_.max_batch_size() > 0 ? 1 : 0), t.shape().end());
    pending.item_signature += name + ShapeToString(item) + ";";
  }
  uint64_t timeout_us = default_timeout_us_;
  if (request.timeout_us > 0 && allow_timeout_override_) timeout_us = request.timeout_us;
  // Longer than a day is no timeout (and arrival + 2^63 microseconds would overflow).
  constexpr uint64_t kDayUs = uint64_t{24} * 3600 * 1000000;
  pending.deadline = std::min(timeout_us > 0 && timeout_us <= kDayUs
                                  ? arrival + std::chrono::microseconds(timeout_us)
                                  : Clock::time_point::max(),
                              request.client_deadline);
  pending.request = std::move(request);
  pending.done = std::move(done);
  if (pending.deadline <= Clock::now()) return fail(DroppedStatus(pending, Clock::now()));
  std::optional<size_t> here;  // the idle instance the calling thread runs the request on
  std::vector<std::pair<Pending, Status>> dropped;
  Status refused = Status::Ok();
  {
    std::lock_guard<std::mutex> lock(mu_);
    // A full queue first lets go of the requests that nobody waits for any more.
    if (!stop_ && queue_.size() >= max_queue_) DropLocked(Clock::now(), &dropped);
    if (stop_) {
      refused = Status(StatusCode::kUnavailable, "the server is shutting down");
    } else if (queue_.size() >= max_queue_) {
      refused = Status(StatusCode::kResourceExhausted,
                       "the queue of model '" + name_ + "' is full (" + std::to_string(max_queue_) +
                           " requests, max_queue_size); retry later, or raise "
                           "dynamic_batching.default_queue_policy.max_queue_size");
    } else {
      // Multi-threaded instances run on their ExecutionSlots thread; handing the request there
      // from here would be the same hop as through the queue.
      if (dispatch == Dispatch::kCallerMayRun && caller_may_run_ && queue_.empty() &&
          DispatchesAlone(pending)) {
        auto idle = std::find(busy_.begin(), busy_.end(), false);
        if (idle != busy_.end()) {
          *idle = true;
          here = static_cast<size_t>(idle - busy_.begin());
        }
      }
      if (!here) queue_.push_back(std::move(pending));
    }
  }
  for (auto& [p, status] : dropped) Finish(p, status);
  if (!refused.ok()) return fail(refused);
  if (!here) {
    cv_.notify_all();
    return Status::Ok();
  }
  std::vector<Pending> alone;
  alone.push_back(std::move(pending));
  Execute(*here, std::move(alone));
  bool wanted;  // requests queued meanwhile, or the destructor, wait for this instance
  {
    std::lock_guard<std::mutex> lock(mu_);
    busy_[*here] = false;
    wanted = !queue_.empty() || stop_;
  }
  if (wanted) cv_.notify_all();
  return Status::Ok();
}

bool ServedModel::DispatchesAlone(const Pending& pending) const {
  // What WorkerLoop would do with `pending` alone in the queue: dispatch it without waiting.
  return !batching_ || max_delay_ <= Clock::duration::zero() || pending.batch >= target_batch_;
}

void ServedModel::RecordRequest(Clock::time_point arrival, bool ok) {
  stats_.RecordRequest(ok, Nanos(Clock::now() - arrival));
}

void ServedModel::Finish(Pending& pending, StatusOr<InferResult> result) {
  // The engine read these inputs where the client's region lies; a region its owner shrank
  // meanwhile read as zeros (shared_memory.h), which must not pass for an answer.
  for (const auto& [name, slice] : pending.request.shared_inputs) {
    if (!result.ok()) break;
    if (Status s = slice.Ok("input '" + name + "'"); !s.ok()) result = std::move(s);
  }
  if (!result.ok() || !pending.request.counted_by_front_end) {
    RecordRequest(pending.request.arrival, result.ok());
  }
  pending.done(std::move(result));
}

Status ServedModel::DroppedStatus(const Pending& pending, Clock::time_point now) const {
  const std::string what = "request '" + pending.request.id + "' for model '" + name_ + "'";
  if (pending.request.client_deadline <= now) {
    return Status(StatusCode::kDeadlineExceeded,
                  what +
                      " was still queued when the client's deadline passed; it did not run. "
                      "Give the call a longer deadline or lower the load");
  }
  return Status(
      StatusCode::kDeadlineExceeded,
      what + " waited in the queue past its timeout; raise the timeout or lower the load");
}

void ServedModel::DropLocked(Clock::time_point now,
                             std::vector<std::pair<Pending, Status>>* dropped) {
  for (auto it = queue_.begin(); it != queue_.end();) {
    if (it->deadline <= now) {
      Status status = DroppedStatus(*it, now);
      dropped->emplace_back(std::move(*it), std::move(status));
      it = queue_.erase(it);
    } else if (it->request.cancelled && it->request.cancelled->load(std::memory_order_relaxed)) {
      dropped->emplace_back(
          std::move(*it),
          Status(StatusCode::kCancelled, "request '" + it->request.id + "' for model '" + name_ +
                                             "' was cancelled by its client before it ran"));
      it = queue_.erase(it);
    } else {
      ++it;
    }
  }
}

Clock::time_point ServedModel::EarliestDeadlineLocked() const {
  Clock::time_point earliest = Clock::time_point::max();
  for (const auto& p : queue_) earliest = std::min(earliest, p.deadline);
  return earliest;
}

int64_t ServedModel::CompatibleItemsLocked() const {
  int64_t items = 0;
  for (const auto& p : queue_) {
    if (p.item_signature == queue_.front().item_signature) items += p.batch;
  }
  return items;
}

std::vector<ServedModel::Pending> ServedModel::TakeBatchLocked() {
  std::vector<Pending> batch;
  if (!batching_) {
    batch.push_back(std::move(queue_.front()));
    queue_.pop_front();
    return batch;
  }
  const std::string signature = queue_.front().item_signature;
  int64_t items = 0;
  for (auto it = queue_.begin(); it != queue_.end();) {
    if (it->item_signature != signature) {
      ++it;
      continue;
    }
    // First come, first served: stop at the first request that does not fit.
    if (items + it->batch > config_.max_batch_size()) break;
    items += it->batch;
    batch.push_back(std::move(*it));
    it = queue_.erase(it);
  }
  return batch;
}

void ServedModel::WorkerLoop(size_t instance) {
  // "<model>#<instance>", as far as the kernel's 15 characters go: top -H and perf name it.
  const std::string suffix = "#" + std::to_string(instance);
  pthread_setname_np(pthread_self(), (name_.substr(0, 15 - suffix.size()) + suffix).c_str());
  if (!cores_[instance].empty() && threads_[instance] == 1) {
    if (Status s = BindThisThread(cores_[instance]); !s.ok()) {
      Logger("serve")->warn("model '{}' instance {}: {}", name_, instance, s.message());
    }
  }
  for (;;) {
    std::vector<Pending> batch;
    std::vector<std::pair<Pending, Status>> dropped;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || (!queue_.empty() && !busy_[instance]); });
      if (stop_) return;
      DropLocked(Clock::now(), &dropped);
      // Wait for a full batch, but never longer than the oldest request's queue delay. Wake at
      // the earliest deadline in the queue too: dropped requests are answered before waiting on.
      auto ready = [&] {
        return !batching_ || CompatibleItemsLocked() >= target_batch_ ||
               Clock::now() >= queue_.front().request.arrival + max_delay_;
      };
      while (dropped.empty() && !stop_ && !queue_.empty() && !ready()) {
        cv_.wait_until(
            lock, std::min(queue_.front().request.arrival + max_delay_, EarliestDeadlineLocked()));
        DropLocked(Clock::now(), &dropped);
      }
      // A caller may have taken the instance while this thread waited for the batch to fill.
      if (!stop_ && !queue_.empty() && !busy_[instance] && ready()) {
        batch = TakeBatchLocked();
        busy_[instance] = true;
      }
    }
    // Dropped requests are answered even when stopping; the destructor answers the rest.
    for (auto& [p, status] : dropped) Finish(p, status);
    if (batch.empty()) continue;
    Execute(instance, std::move(batch));
    std::lock_guard<std::mutex> lock(mu_);  // only this thread waits for busy_[instance] here
    busy_[instance] = false;
  }
}

}  // namespace parnet::serve
