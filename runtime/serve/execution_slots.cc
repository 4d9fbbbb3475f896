#include "runtime/serve/execution_slots.h"

#include <omp.h>

#include <algorithm>
#include <future>

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

ExecutionSlots::Slot* ExecutionSlots::GetSlot(size_t index) {
  std::lock_guard<std::mutex> lock(mu_);
  while (slots_.size() <= index) {
    auto slot = std::make_unique<Slot>();
    std::thread(Loop, slot.get()).detach();  // throws before the slot is recorded
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
