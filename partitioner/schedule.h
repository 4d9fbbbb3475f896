// The schedule model: given where every stage runs, when each stage and each transfer starts and
// ends, and so the latency of one request. The search (search.h) minimizes this latency; the
// Plan records the schedule it predicts; docs/partitioner.md states the same rules.
//
//  - Stages have a fixed global order (ScheduleOrder: a topological order, critical path first).
//    Each device runs the stages placed on it in that order, one at a time, each as soon as the
//    device is free and all of its inputs are on the device.
//  - A request's inputs are on the first device (index 0) at time 0; the reply must get back to it.
//    The latency is the time the last output arrives there.
//  - A value that a stage needs from another device moves as a transfer over the link between the
//    two devices, at the earliest when its producer finishes. Each direction of a link carries one
//    transfer at a time, in the order of the consuming stages; a transfer takes
//    latency + bytes / bandwidth. A value moves to a device once, whoever needs it there.
//  - A recomputable stage may run on every device (Placement::kEverywhere, the authors' trick):
//    each device then reads that stage's outputs locally instead of receiving them.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "partitioner/stages.h"

namespace parnet::partition {

// Costs of one stage graph on one cluster at one batch size, in milliseconds.
struct CostModel {
  static constexpr double kNoLink = std::numeric_limits<double>::infinity();
  std::vector<std::vector<double>> stage_ms;  // [stage][device]
  // Per ordered device pair: fixed latency (ms) and ms per byte; kNoLink where no link exists.
  std::vector<std::vector<double>> link_latency_ms;
  std::vector<std::vector<double>> link_ms_per_byte;

  int num_devices() const { return static_cast<int>(link_latency_ms.size()); }
  double TransferMs(int from, int to, double bytes) const {
    return link_latency_ms[from][to] + bytes * link_ms_per_byte[from][to];
  }
};

struct Placement {
  static constexpr int kEverywhere = -1;
  std::vector<int> device;  // per stage: a device index, or kEverywhere for a recomputable stage
  // Optional, per stage: the devices a kEverywhere stage runs on, when not all of them (what
  // PruneReplicas leaves).
  std::vector<std::vector<int>> replicas;
};

struct StageRun {
  int stage = 0;
  int device = 0;
  double start_ms = 0, finish_ms = 0;
};

struct TransferRun {
  int stage = StageEdge::kRequest;  // the producing stage, kRequest for the inputs, or a stage
  bool to_reply = false;            // true: carries model outputs back to device 0
  int from = 0, to = 0;
  std::vector<std::string> values;
  double bytes = 0;
  double start_ms = 0, finish_ms = 0;
};

struct Schedule {
  std::vector<StageRun> runs;  // in execution order
  std::vector<TransferRun> transfers;
  double latency_ms = 0;  // infinity when a needed transfer has no link
};

// The global stage order: Kahn's algorithm taking, among ready stages, the one with the longest
// path to the reply (by each stage's cheapest device), ties by index.
std::vector<int> ScheduleOrder(const StageGraph& graph, const CostModel& costs);

// Incremental simulation: stages are added in `order`; times of added stages never change.
class Simulator {
 public:
  // `everywhere`: the devices a kEverywhere stage runs on (empty: all of them).
  Simulator(const StageGraph& graph, const CostModel& costs, std::vector<int> order,
            std::vector<int> everywhere = {});

  // Places the next stage of the order on `device` (or kEverywhere).
  void Add(int device);
  // Runs the next stage of the order on each of `devices` (a recomputable stage).
  void AddOn(const std::vector<int>& devices);
  // Ships the outputs back to device 0; call once every stage is added.
  void Finish();

  int added() const { return added_; }
  const std::vector<int>& order() const { return order_; }
  const Schedule& schedule() const { return schedule_; }
  double device_free(int d) const { return device_free_[d]; }
  // Earliest time the outputs of `stage` (added) exist on device d without a transfer, or
  // infinity when it did not run there.
  double LocalFinish(int stage, int d) const { return finish_[stage][d]; }
  // Devices that have run `stage` (one, or all for kEverywhere).
  const std::vector<int>& DevicesOf(int stage) const { return devices_of_[stage]; }
  const std::vector<bool>& StagesOn(int d) const { return stages_on_[d]; }  // one per stage

 private:
  double Arrival(int producer, const std::vector<std::string>& values, int to);
  void RunOn(int stage, int d);

  const StageGraph* graph_;  // not owned; copies of a Simulator share them
  const CostModel* costs_;
  std::vector<int> order_;
  std::vector<int> everywhere_;
  int added_ = 0;
  Schedule schedule_;
  std::vector<double> device_free_;
  std::vector<std::vector<double>> link_free_;  // [from][to]
  std::vector<std::vector<double>> finish_;     // [stage][device]
  std::vector<std::vector<int>> devices_of_;
  std::vector<std::vector<bool>> stages_on_;
  // Values present on each device and when they arrived.
  std::vector<std::vector<std::pair<std::string, double>>> arrived_;
};

// The whole schedule of a complete placement (kEverywhere: every device of the cluster).
Schedule Simulate(const StageGraph& graph, const CostModel& costs, const Placement& placement,
                  const std::vector<int>& everywhere = {});

// Drops the copies of recomputed stages whose outputs no stage on their device reads. This
// usually shortens the schedule but can lengthen it (a transfer may then queue later on its
// link), so FindBestPlacement keeps the pruned placement only when it is not slower.
Placement PruneReplicas(const StageGraph& graph, const Placement& placement,
                        const std::vector<int>& everywhere);

}  // namespace parnet::partition
