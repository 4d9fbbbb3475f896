// PlanRunner: runs a Plan (partitioner/plan.h) across devices: each device of the plan is a thread
// pinned to its cores (in one process, over the in-process transport) or an MPI rank (rank i runs
// device i). Each local stage is compiled by its own Engine for each new input shape, so batch
// size and resolution may change between requests.
//
// On each device, stages run in the plan's order as soon as their inputs are there; outputs go to
// the devices that need them the moment they exist (non-blocking sends), and receives are posted
// when a request starts, so transfers overlap compute. Requests are queued per device, so
// consecutive requests pipeline: device 0 can start request k+1 while others finish request k.
//
// The leader (the process with device 0) takes requests: Submit()/Collect(), or Run(). Under MPI
// the other ranks call Follow(), which returns when the leader calls Stop(). A device that waits
// longer than `timeout_s` for a value ends the job (MPI) or fails the request (in-process) with a
// message naming the device, the stage and the peer.
// Thread-safety: Submit/Collect/Run from one thread at a time.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "proto/plan.pb.h"
#include "runtime/core/status.h"
#include "runtime/core/tensor.h"
#include "runtime/transport/transport.h"

namespace parnet {

struct PlanRunnerOptions {
  std::string backend = "cpu";
  double timeout_s = 60;  // longest wait for one value from another device
  bool pin_threads = true;  // pin each device's thread (and its OpenMP team) to its cores
};

// When each stage of one request ran, in ms since the request was submitted.
struct StageTrace {
  int stage = 0;
  int device = 0;
  double start_ms = 0, finish_ms = 0;
  double wait_ms = 0;  // of which spent waiting for inputs from other devices
};

class PlanRunner {
 public:
  // Checks the plan against the model (file hash, validation) and against the job (one device
  // per rank under MPI; every device's cores available to this process).
  static StatusOr<std::unique_ptr<PlanRunner>> Create(
      const std::string& model_path, const Plan& plan,
      std::unique_ptr<transport::Transport> transport, const PlanRunnerOptions& options = {});
  ~PlanRunner();

  bool is_leader() const;
  bool distributed() const;  // one device per MPI rank
  const Plan& plan() const;
  // The input shapes the plan was made for (parsed from it).
  const std::map<std::string, Shape>& input_shapes() const;
  // Ends the whole job (MPI) or the process, printing `why`: for failures after which the other
  // ranks would wait forever.
  [[noreturn]] void Abort(const std::string& why);

  // Leader: queues a request; returns its id at once.
  StatusOr<int64_t> Submit(const std::map<std::string, Tensor>& inputs);
  // Leader: waits for request `id`; its outputs in model order and, if asked, its stage timings
  // on the leader's devices (all devices in-process; see GatherTimings under MPI). NOT_FOUND for
  // an id never submitted or already collected. After a failed request, in-process runners
  // refuse new ones (FAILED_PRECONDITION): its values may still sit in the devices' mailboxes.
  StatusOr<std::vector<Tensor>> Collect(int64_t id, std::vector<StageTrace>* timings = nullptr);
  StatusOr<std::vector<Tensor>> Run(const std::map<std::string, Tensor>& inputs,
                                    std::vector<StageTrace>* timings = nullptr);
  // Followers (MPI ranks other than 0): run requests until the leader stops.
  Status Follow();
  // Leader: tells the followers to stop. Then every rank may call GatherTimings.
  Status Stop();
  // Collective after Stop(): every request's stage timings from every rank, at the leader.
  StatusOr<std::vector<std::vector<StageTrace>>> GatherTimings();

 private:
  struct Impl;
  explicit PlanRunner(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace parnet
