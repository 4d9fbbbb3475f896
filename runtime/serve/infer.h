// One inference request and its result as the protocol front ends (gRPC, HTTP) hand them to a
// served model, independent of the wire format.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "runtime/core/status.h"
#include "runtime/core/tensor.h"
#include "runtime/serve/shared_memory.h"

namespace parnet::serve {

using Clock = std::chrono::steady_clock;

inline uint64_t Nanos(Clock::duration d) {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(d).count());
}

struct InferRequest {
  std::string id;
  // By input name, with the datatype and shape the client sent. Tensors may borrow bytes from
  // `keep_alive` (the decoded wire message), which then lives until the request is answered.
  std::map<std::string, Tensor> inputs;
  std::shared_ptr<const void> keep_alive;
  // Inputs read from registered shared memory (Triton's system shared-memory extension), by
  // name: the tensors borrow the regions' bytes, which stay mapped while the request lives.
  std::map<std::string, SharedMemorySlice> shared_inputs;
  // Microseconds the request may wait in the queue (the "timeout" parameter); 0: the model's
  // default.
  uint64_t timeout_us = 0;
  // When the client stops waiting (a gRPC deadline); max(): never. A request still queued then
  // is answered DEADLINE_EXCEEDED without running, whatever its timeout.
  Clock::time_point client_deadline = Clock::time_point::max();
  // Set by the front end when the client went away (cancelled the call, closed the
  // connection). Read when the worker forms a batch and when the queue is full; a request
  // cancelled by then is answered CANCELLED without running. Null: the front end cannot tell.
  std::shared_ptr<const std::atomic<bool>> cancelled;
  Clock::time_point arrival = Clock::now();
  // Set by a front end that still has work to do once the model answered (encoding, writing
  // outputs into shared memory, classification), any of which may fail: a successful run is then
  // left uncounted, and the front end counts the request (ServedModel::RecordRequest) once its
  // answer is written, as Triton counts what the client received.
  bool counted_by_front_end = false;
};

struct InferResult {
  // Every output of the model, in model order, with the config's datatype.
  std::vector<std::pair<std::string, Tensor>> outputs;
};

// Called exactly once per accepted request, on a worker thread, or inside ServedModel::Submit on
// the caller's thread (Dispatch::kCallerMayRun); must not block for long, nor take a lock that
// the caller holds across Submit.
using InferDone = std::function<void(StatusOr<InferResult>)>;

}  // namespace parnet::serve
