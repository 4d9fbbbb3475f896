#include "runtime/serve/execution_slots.h"

#include <future>

namespace parnet::serve {

ExecutionSlots& ExecutionSlots::Shared() {
  static ExecutionSlots slots;
  return slots;
}

ExecutionSlots::~ExecutionSlots() {
  for (auto& slot : slots_) {
    {
      std::lock_guard<std::mutex> lock(slot->mu);
      slot->stop = true;
    }
    slot->cv.notify_all();
    slot->thread.join();
  }
}

void ExecutionSlots::Loop(Slot* slot) {
  for (;;) {
    std::function<void()> fn;
    {
      std::unique_lock<std::mutex> lock(slot->mu);
      slot->cv.wait(lock, [&] { return slot->stop || !slot->work.empty(); });
      if (slot->work.empty()) return;  // stopping, and nothing is left to run
      fn = std::move(slot->work.front());
      slot->work.pop_front();
    }
    fn();
  }
}

void ExecutionSlots::Run(size_t index, const std::function<void()>& fn) {
  Slot* slot;
  {
    std::lock_guard<std::mutex> lock(mu_);
    while (slots_.size() <= index) {
      slots_.push_back(std::make_unique<Slot>());
      slots_.back()->thread = std::thread(Loop, slots_.back().get());
    }
    slot = slots_[index].get();
  }
  std::promise<void> finished;
  std::future<void> done = finished.get_future();
  {
    std::lock_guard<std::mutex> lock(slot->mu);
    slot->work.push_back([&] {
      fn();
      finished.set_value();
    });
  }
  slot->cv.notify_one();
  done.wait();
}

}  // namespace parnet::serve
