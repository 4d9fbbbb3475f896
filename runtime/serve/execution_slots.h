// Threads that run the served models' multi-threaded executions, shared by every model.
//
// Why: libgomp keeps one pool of OpenMP threads per thread that opens a parallel region, and once
// the pools together hold more threads than there are cores, its threads stop spinning at barriers
// and sleep on futexes instead (its "throttled" spin count). With one worker thread per model
// instance, a server holding a few models crossed that line, and a 2-thread instance ran the
// overhead model 4-5x slower than `parnet bench` with 2 threads. Instance k of every model
// therefore runs on slot k's thread: the process holds one OpenMP pool per slot, however many
// models it serves, and never one on the main or the front ends' threads.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace parnet::serve {

class ExecutionSlots {
 public:
  // The process-wide slots (OpenMP's pools are process-wide state too).
  static ExecutionSlots& Shared();
  ~ExecutionSlots();

  // Runs `fn` on slot `slot`'s thread, after the work queued there before it, and returns when it
  // has finished. Slots are created on first use. Thread-safe; blocks the caller. `fn` must not
  // throw and must not call Run() itself.
  void Run(size_t slot, const std::function<void()>& fn);

 private:
  struct Slot {
    std::mutex mu;
    std::condition_variable cv;
    std::deque<std::function<void()>> work;  // guarded by mu
    bool stop = false;                       // guarded by mu
    std::thread thread;
  };
  static void Loop(Slot* slot);

  std::mutex mu_;
  std::vector<std::unique_ptr<Slot>> slots_;  // guarded by mu_; never shrinks
};

}  // namespace parnet::serve
