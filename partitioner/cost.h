// The cost model: how long each stage takes on each device of a cluster, and each link's cost.
//
// With a profile (`parnet profile`, proto/profile.proto), a stage's time on a CPU device is the
// measured median at the device's thread count (its number of cores), at the profiled batch
// nearest below the plan's (else the smallest), scaled to the plan's batch: linearly at one
// thread; at T threads the batch-proportional work spreads over the threads while what T threads
// lost at the profiled batch stays fixed (cost.cc states the formula). A device on another host
// than the profile's (its `host` set and not "localhost") has the times scaled by the profile's
// measured peak over its own `gflops`.
// Without a profile (or for a device kind the profile did not measure) it is a roofline:
// max(FLOPs / gflops, bytes / memory_gbps), from the cluster file's numbers.
#pragma once

#include <string>

#include "partitioner/schedule.h"
#include "partitioner/stages.h"
#include "proto/cluster.pb.h"
#include "proto/profile.pb.h"
#include "runtime/core/status.h"

namespace parnet::partition {

// The profile's name for the whole model run as one Engine (what a one-device plan runs).
inline constexpr const char* kWholeModel = "(whole model)";

// The profile's time of the whole model as one Engine at `threads` threads, scaled to `batch` by
// the same rule as stages; NOT_FOUND when the profile has none.
StatusOr<double> WholeModelMs(const Profile& profile, int threads, int batch);

// `profile` may be null. `batch` is the batch the stage graph was built at.
StatusOr<CostModel> BuildCostModel(const StageGraph& graph, const Cluster& cluster,
                                   const Profile* profile, int batch);

// The roofline time of `flops` and `bytes` on one device (gflops > 0; memory_gbps 0: ignored).
double RooflineMs(double flops, double bytes, double gflops, double memory_gbps);

}  // namespace parnet::partition
