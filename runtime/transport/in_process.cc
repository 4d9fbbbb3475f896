#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <iostream>
#include <map>
#include <mutex>
#include <tuple>

#include "runtime/transport/transport.h"

namespace parnet::transport {
namespace {

class InProcessPending : public Pending {
 public:
  bool is_recv = false;
  int from = 0, to = 0, tag = 0;
  Tensor* into = nullptr;
};

class InProcessTransport : public Transport {
 public:
  explicit InProcessTransport(int devices) : devices_(devices) {}
  std::string name() const override { return "in-process"; }
  int self() const override { return -1; }
  int size() const override { return devices_; }

  StatusOr<std::unique_ptr<Pending>> Send(int from, int to, int tag,
                                          const Tensor& tensor) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      boxes_[{from, to, tag}].push_back(tensor);  // shares the bytes: no copy
    }
    arrived_.notify_all();
    return std::unique_ptr<Pending>(new InProcessPending);
  }

  StatusOr<std::unique_ptr<Pending>> Recv(int from, int to, int tag, Tensor* into) override {
    auto pending = std::make_unique<InProcessPending>();
    pending->is_recv = true;
    pending->from = from, pending->to = to, pending->tag = tag, pending->into = into;
    return std::unique_ptr<Pending>(std::move(pending));
  }

  Status Wait(Pending& p, Deadline deadline) override {
    auto& pending = static_cast<InProcessPending&>(p);
    if (!pending.is_recv) return Status::Ok();
    std::unique_lock<std::mutex> lock(mu_);
    auto& box = boxes_[{pending.from, pending.to, pending.tag}];
    if (!arrived_.wait_until(lock, deadline, [&] { return !box.empty(); })) {
      return Status(StatusCode::kDeadlineExceeded,
                    "device " + std::to_string(pending.from) + " sent nothing with tag " +
                        std::to_string(pending.tag) + " to device " + std::to_string(pending.to));
    }
    Tensor got = box.front();
    box.pop_front();
    if (got.dtype() != pending.into->dtype() || got.shape() != pending.into->shape()) {
      return Internal("tag " + std::to_string(pending.tag) + ": received " + got.TypeString() +
                      ", expected " + pending.into->TypeString());
    }
    *pending.into = got;
    return Status::Ok();
  }

  Status SendControl(int, const std::vector<int64_t>&) override {
    return FailedPrecondition("the in-process transport needs no control messages");
  }
  StatusOr<std::vector<int64_t>> RecvControl(Deadline) override {
    return FailedPrecondition("the in-process transport needs no control messages");
  }
  StatusOr<std::vector<std::vector<double>>> GatherAtZero(
      const std::vector<double>& mine) override {
    return std::vector<std::vector<double>>{mine};
  }
  [[noreturn]] void Abort(const std::string& why) override {
    std::cerr << "parnet: " << why << "\n";
    std::exit(1);
  }

 private:
  const int devices_;
  std::mutex mu_;
  std::condition_variable arrived_;
  std::map<std::tuple<int, int, int>, std::deque<Tensor>> boxes_;
};

}  // namespace

std::unique_ptr<Transport> MakeInProcessTransport(int devices) {
  return std::make_unique<InProcessTransport>(devices);
}

}  // namespace parnet::transport
