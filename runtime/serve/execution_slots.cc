#include "runtime/serve/execution_slots.h"

#include <omp.h>
#include <pthread.h>

#include <algorithm>
#include <future>

#include "runtime/core/cpu_affinity.h"

namespace parnet::serve {

ExecutionSlots& ExecutionSlots::Shared() {
  static ExecutionSlots* slots = new ExecutionSlots();
  return *slots;
}

size_t ExecutionSlots::Place(int threads) {
  // omp_get_num_procs(): the cores this process may use, the figure libgomp compares its pools
  // against.
  const size_t slots = static_cast<size_t>(std::max(1, omp_get_num_procs() / std::max(1, threads)));
  std::lock_guard<std::mutex> lock(mu_);
  return next_++ % slots;
}

void ExecutionSlots::Loop(Slot* slot) {
  for (;;) {
    std::function<void()> fn;
    {
      std::unique_lock<std::mutex> lock(slot->mu);
      slot->cv.wait(lock, [&] { return !slot->work.empty(); });
      fn = std::move(slot->work.front());
      slot->work.pop_front();
    }
    fn();
  }
}

StatusOr<size_t> ExecutionSlots::PlaceBound(const std::string& policy,
                                            const std::vector<int>& cores, int threads) {
  const size_t wanted =
      std::max<size_t>(1, cores.size() / static_cast<size_t>(std::max(1, threads)));
  std::lock_guard<std::mutex> lock(mu_);
  Policy& p = policies_[policy];
  if (p.slots.size() >= wanted) return p.slots[p.next++ % p.slots.size()];
  auto slot = std::make_unique<Slot>();
  // Bound before it runs any work, so the OpenMP pool it opens later inherits the cores.
  std::thread thread(Loop, slot.get());
  const std::string name = policy.substr(0, 12) + "/" + std::to_string(p.slots.size());
  pthread_setname_np(thread.native_handle(), name.c_str());
  const Status bound = BindThread(thread.native_handle(), cores);
  thread.detach();
  bound_.push_back(std::move(slot));  // kept even on error: its thread uses it
  if (!bound.ok()) return bound.WithContext("host policy '" + policy + "'");
  p.slots.push_back(kBound + bound_.size() - 1);
  ++p.next;
  return p.slots.back();
}

ExecutionSlots::Slot* ExecutionSlots::GetSlot(size_t index) {
  std::lock_guard<std::mutex> lock(mu_);
  if (index >= kBound) return bound_.at(index - kBound).get();
  while (slots_.size() <= index) {
    auto slot = std::make_unique<Slot>();
    const std::string name = "parnet-slot-" + std::to_string(slots_.size());
    std::thread thread(Loop, slot.get());  // throws before the slot is recorded
    pthread_setname_np(thread.native_handle(), name.c_str());
    thread.detach();
    slots_.push_back(std::move(slot));
  }
  return slots_[index].get();
}

void ExecutionSlots::Run(size_t index, const std::function<void()>& fn) {
  Slot* slot = GetSlot(index);
  // Shared with the slot's copy of the work: this caller may return (and would destroy a promise
  // of its own) while set_value() is still waking it.
  auto finished = std::make_shared<std::promise<void>>();
  std::future<void> done = finished->get_future();
  {
    std::lock_guard<std::mutex> lock(slot->mu);
    slot->work.push_back([&fn, finished] {
      try {
        fn();
        finished->set_value();
      } catch (...) {
        finished->set_exception(std::current_exception());
      }
    });
  }
  slot->cv.notify_one();
  done.get();
}

}  // namespace parnet::serve
