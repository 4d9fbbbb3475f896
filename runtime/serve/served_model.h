// A served model version: its engines (one per instance of the config's instance_group), the
// request queue in front of them and the dynamic batcher that drains it.
//
// Submit() checks a request against the config and queues it; a worker thread per instance
// gathers queued requests with the same item shape into one batch (up to max_batch_size, waiting
// at most max_queue_delay_microseconds for the largest preferred size), pads it to the next of the
// warmed-up batch sizes (BatchBuckets), runs it, and splits the outputs back per request. Without
// dynamic_batching each request runs alone. The queue is bounded: a request beyond
// max_queue_size is refused with RESOURCE_EXHAUSTED, and one that waited longer than its timeout
// is answered DEADLINE_EXCEEDED without running. Thread-safe.
//
// Where executions run: an instance with more than one OpenMP thread runs on its slot of
// ExecutionSlots (one OpenMP pool per slot for the whole process; a slot of its own, bound to the
// cores, for an instance that a host policy binds). A single-threaded instance runs on its worker
// thread (bound to the policy's cores, if any), or, unbound, on the submitting thread itself when
// Submit() is allowed to and the request would be dispatched alone at once anyway
// (Dispatch::kCallerMayRun).
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "proto/model_config.pb.h"
#include "runtime/exec/engine.h"
#include "runtime/serve/host_policy.h"
#include "runtime/serve/infer.h"
#include "runtime/serve/stats.h"

namespace parnet::serve {

struct ServeOptions {
  std::string backend = "cpu";
  int threads = 0;                    // OpenMP threads per instance; 0: the cores split among them
  uint32_t default_max_queue = 1024;  // when the config sets no max_queue_size
  HostPolicies host_policies;         // by name, for instance_group's host_policy
};

class ServedModel {
 public:
  // Loads `model_path` (ONNX), completes and checks `config` against it, and starts the workers.
  // The model is not ready until WarmUp() returned OK.
  static StatusOr<std::unique_ptr<ServedModel>> Load(const std::string& name, int64_t version,
                                                     const std::string& model_path,
                                                     inference::ModelConfig config,
                                                     const ServeOptions& options);
  // Stops the workers; queued requests are answered UNAVAILABLE.
  ~ServedModel();

  // Compiles every batch size the model will run with (when its item shape is static), on every
  // instance, then marks the model ready. Blocks for the compile time.
  Status WarmUp();

  enum class Dispatch {
    kQueued,        // run on a worker thread; Submit() never blocks on the model's execution
    kCallerMayRun,  // the caller waits for the result anyway: when an instance is idle, nothing
                    // is queued and the batcher would dispatch this request alone at once, run
                    // it on the calling thread before returning (saves two thread hand-offs)
  };
  // Checks `request` (names, datatypes, shapes, batch size) and queues it. OK: `done` will be
  // called exactly once, on a worker thread or (kCallerMayRun) on the caller's before Submit
  // returns. Not OK: `done` is never called.
  Status Submit(InferRequest request, InferDone done, Dispatch dispatch = Dispatch::kQueued);
  // Counts a request against this model, as a success when `ok`: one that failed before Submit
  // (a malformed wire message), or one the front end answers itself
  // (InferRequest::counted_by_front_end), ok when its answer was written.
  void RecordRequest(Clock::time_point arrival, bool ok);

  const std::string& name() const { return name_; }
  int64_t version() const { return version_; }
  const inference::ModelConfig& config() const { return config_; }
  bool ready() const { return ready_; }
  const ModelStats& stats() const { return stats_; }
  size_t queue_size() const;
  const std::vector<std::string>& labels() const { return labels_; }
  // OpenMP threads of each instance, in instance_group order.
  const std::vector<int>& instance_threads() const { return threads_; }

 private:
  struct Pending {
    InferRequest request;
    InferDone done;
    Clock::time_point deadline;  // the timeout's or the client's, the earlier; max(): none
    int64_t batch = 1;
    std::string item_signature;  // requests batch together only when these are equal
  };

  ServedModel(std::string name, int64_t version, inference::ModelConfig config,
              const ServeOptions& options);
  // Creates the engines of the config's instance groups and places them (host policies,
  // execution slots).
  Status CreateInstances(const Graph& graph, const ServeOptions& options);
  Status Check(const InferRequest& request, int64_t* batch) const;
  void WorkerLoop(size_t instance);
  // REQUIRES: mu_ held, queue_ not empty. Removes and returns the requests of the next batch.
  std::vector<Pending> TakeBatchLocked();
  int64_t CompatibleItemsLocked() const;
  // REQUIRES: mu_ held. Moves the queued requests whose deadline passed or whose client went
  // away to `dropped`, each with the answer it gets.
  void DropLocked(Clock::time_point now, std::vector<std::pair<Pending, Status>>* dropped);
  Status DroppedStatus(const Pending& pending, Clock::time_point now) const;
  Clock::time_point EarliestDeadlineLocked() const;
  // Whether `pending`, arriving at an empty queue, would be dispatched alone at once.
  bool DispatchesAlone(const Pending& pending) const;
  // Runs `batch` and answers every request in it. REQUIRES: busy_[instance] set by the caller,
  // who clears it afterwards.
  void Execute(size_t instance, std::vector<Pending> batch);
  // The results of `batch`, split per request; throws std::bad_alloc (Execute answers
  // RESOURCE_EXHAUSTED).
  StatusOr<std::vector<InferResult>> RunBatch(size_t instance, const std::vector<Pending>& batch);
  // Calls `fn` where the OpenMP threads of engines_[instance] belong (see the file comment): on
  // this thread for a single-threaded instance, else on its ExecutionSlots thread.
  void OnInstanceThreads(size_t instance, const std::function<void()>& fn);
  StatusOr<std::vector<Tensor>> RunInstance(size_t instance,
                                            const std::map<std::string, Tensor>& inputs);
  Status PrepareInstance(size_t instance, const std::map<std::string, Shape>& shapes);
  // True when the batch is one request that the engine can take as it is (no rows to join or
  // pad).
  bool RunsAsSent(const std::vector<Pending>& batch, int64_t padded) const;
  // Runs the batch's inputs joined and padded with zero rows to `padded`, written straight into
  // the engine's input buffers (Engine::RunWritten); adds the nanoseconds spent joining to
  // `*join_ns`.
  StatusOr<std::vector<Tensor>> RunJoined(size_t instance, const std::vector<Pending>& batch,
                                          int64_t padded, uint64_t* join_ns);
  void Finish(Pending& pending, StatusOr<InferResult> result);

  const std::string name_;
  const int64_t version_;
  const inference::ModelConfig config_;
  const ServeOptions options_;
  std::vector<int64_t> buckets_;
  std::map<std::string, DType> model_dtypes_;  // the ONNX model's own types, by tensor name
  std::vector<std::string> labels_;
  bool batching_ = false;     // dynamic_batching configured
  int64_t target_batch_ = 1;  // dispatch without waiting once this many items are queued
  Clock::duration max_delay_{};
  uint64_t default_timeout_us_ = 0;
  bool allow_timeout_override_ = true;
  size_t max_queue_ = 0;

  // Per instance: its engine, OpenMP threads, the cores a host policy binds it to (empty: none),
  // and its ExecutionSlots slot (when multi-threaded; its own, bound, when it has cores).
  std::vector<std::unique_ptr<Engine>> engines_;
  std::vector<int> threads_;
  std::vector<std::vector<int>> cores_;
  std::vector<size_t> slots_;
  bool caller_may_run_ = false;  // every instance single-threaded and unbound
  ModelStats stats_;
  std::atomic<bool> ready_{false};

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Pending> queue_;  // guarded by mu_
  std::vector<bool> busy_;     // guarded by mu_; per instance: an execution is running on it
  bool stop_ = false;          // guarded by mu_
  std::vector<std::thread> workers_;
};

}  // namespace parnet::serve
