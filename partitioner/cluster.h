// Cluster descriptions (proto/cluster.proto) from protobuf text format, validated.
#pragma once

#include <optional>
#include <string>

#include "proto/cluster.pb.h"
#include "runtime/core/status.h"

namespace parnet::partition {

// Parses and validates; `origin` (a file name) prefixes every message.
StatusOr<Cluster> ParseCluster(const std::string& text, const std::string& origin);
StatusOr<Cluster> LoadCluster(const std::string& path);
// Every rule a cluster must satisfy: at least one device, unique non-empty names, a kind, cores
// for CPU devices, no negative speeds, links between two different known devices with a positive
// bandwidth and no negative latency, at most one link per pair.
Status ValidateCluster(const Cluster& cluster, const std::string& origin);

// Index of the device named `name`, or -1.
int DeviceIndex(const Cluster& cluster, const std::string& name);
// The link between devices a and b (by index): an explicit one, else the default link, else null.
const Link* FindLink(const Cluster& cluster, int a, int b);

// The alternative to running stages side by side on core sets: one device with all the cores
// of a cluster whose devices are all CPU core sets of one host (disjoint cores). Its gflops is
// the devices' sum and its memory_gbps their largest (shared memory), for the roofline; with a
// profile its stages are looked up at its thread count. nullopt when the cluster is not so.
std::optional<Cluster> MergeCoreSets(const Cluster& cluster);

// SHA-256 (hex) of a file's bytes and of a message's deterministic serialization.
StatusOr<std::string> Sha256OfFile(const std::string& path);
std::string Sha256OfMessage(const google::protobuf::Message& message);

}  // namespace parnet::partition
