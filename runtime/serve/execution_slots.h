// Threads that run the served models' multi-threaded executions, shared by every model.
//
// Why: libgomp keeps one pool of OpenMP threads per thread that opens a parallel region, and once
// the pools together hold more threads than there are cores, its threads stop spinning at barriers
// and sleep on futexes instead (its "throttled" spin count). With one worker thread per model
// instance, a server holding a few models crossed that line, and a 2-thread instance ran the
// overhead model 4-5x slower than `parnet bench` with 2 threads. Instances therefore run on a
// fixed set of slots, cores / threads of them: the process holds one OpenMP pool per slot however
// many models it serves, and none on the main or the front ends' threads.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "runtime/core/status.h"

namespace parnet::serve {

class ExecutionSlots {
 public:
  // The process-wide slots (OpenMP's pools are process-wide state too). Never destroyed: its
  // threads end with the process, so no static destruction order can strand a caller.
  static ExecutionSlots& Shared();

  // The slot for a new instance with `threads` OpenMP threads: round robin over
  // max(1, cores / threads) slots, so that the instances of several models spread over the cores
  // while their pools together hold no more threads than there are cores. Thread-safe.
  size_t Place(int threads);

  // The slot for a new instance with `threads` OpenMP threads bound to host policy `policy`
  // (`cores`): round robin over max(1, cores / threads) slots of that policy, whose lasting
  // threads (named "<policy>/<k>") run only on `cores`, and so do the OpenMP threads they start.
  // Instances of every model that use the policy share these slots. Thread-safe.
  StatusOr<size_t> PlaceBound(const std::string& policy, const std::vector<int>& cores,
                              int threads);

  // Runs `fn` on slot `slot`'s thread, after the work queued there before it, and returns when it
  // has finished; rethrows what `fn` threw. Slots are created on first use. Thread-safe; blocks
  // the caller. `fn` must not call Run() itself.
  void Run(size_t slot, const std::function<void()>& fn);

 private:
  struct Slot {
    std::mutex mu;
    std::condition_variable cv;
    std::deque<std::function<void()>> work;  // guarded by mu
  };
  ExecutionSlots() = default;
  static void Loop(Slot* slot);
  // The slot's state, its thread started on first use. Throws std::system_error when no thread
  // can be started (the slot is then not recorded, and the next call tries again).
  Slot* GetSlot(size_t index);

  // Slots from PlaceBound() are numbered from here on (Place()'s are below).
  static constexpr size_t kBound = size_t{1} << 32;
  struct Policy {
    std::vector<size_t> slots;  // into bound_, offset by kBound
    size_t next = 0;            // PlaceBound()'s round robin
  };

  std::mutex mu_;
  std::vector<std::unique_ptr<Slot>> slots_;  // guarded by mu_; never shrinks
  std::vector<std::unique_ptr<Slot>> bound_;  // guarded by mu_; never shrinks
  std::map<std::string, Policy> policies_;    // guarded by mu_
  size_t next_ = 0;                           // guarded by mu_; Place()'s round robin
};

}  // namespace parnet::serve
