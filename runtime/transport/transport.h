// Transport: moves tensors between the devices of a Plan, whether they share a process (threads
// on core sets) or not (MPI ranks; later NCCL on GPU streams and gRPC workers).
//
// Endpoints are the plan's device indices. Messages carry a tag; between one sender and one
// receiver, messages with the same tag arrive in the order they were sent (MPI's non-overtaking
// rule), so consecutive requests reuse the same tags.
//
// Send and Recv only start an operation and return a Pending handle at once; Wait completes it.
//  - Send: the tensor's bytes must stay unchanged until Wait returns (the Tensor handle passed in
//    keeps them alive; the in-process transport shares them with the receiver without a copy).
//  - Recv: `into` must already have the dtype and shape the sender sends (both sides know them
//    from the plan); it stays owned by the caller, who must not read it before Wait returns. An
//    implementation may replace *into with a tensor sharing the sender's bytes.
//  - Wait: blocks until done or `deadline`; DEADLINE_EXCEEDED names the peer and the tag, so the
//    caller can name the stage. A peer that died is reported the same way or by the launcher.
// Thread-safety: every method may be called from several threads at once.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "runtime/core/status.h"
#include "runtime/core/tensor.h"

namespace parnet::transport {

using Deadline = std::chrono::steady_clock::time_point;

class Pending {
 public:
  virtual ~Pending() = default;
};

class Transport {
 public:
  virtual ~Transport() = default;
  virtual std::string name() const = 0;
  // The endpoint this process speaks for (in-process: -1, it speaks for all of them).
  virtual int self() const = 0;
  virtual int size() const = 0;

  virtual StatusOr<std::unique_ptr<Pending>> Send(int from, int to, int tag,
                                                  const Tensor& tensor) = 0;
  virtual StatusOr<std::unique_ptr<Pending>> Recv(int from, int to, int tag, Tensor* into) = 0;
  virtual Status Wait(Pending& pending, Deadline deadline) = 0;

  // Small control messages from endpoint 0 to one other (request shapes, stop). Blocking.
  virtual Status SendControl(int to, const std::vector<int64_t>& words) = 0;
  virtual StatusOr<std::vector<int64_t>> RecvControl(Deadline deadline) = 0;
  // Gathers one vector of numbers from every endpoint at endpoint 0 (traces). Collective.
  virtual StatusOr<std::vector<std::vector<double>>> GatherAtZero(
      const std::vector<double>& mine) = 0;
  // Ends the whole job after printing `why` (a dead or silent peer).
  [[noreturn]] virtual void Abort(const std::string& why) = 0;
};

// Devices in one process: a mailbox per (from, to, tag); sends share the tensor's bytes.
std::unique_ptr<Transport> MakeInProcessTransport(int devices);

}  // namespace parnet::transport
