// Triton's host policies: named sets of CPU cores that model instances are bound to. The server
// takes `--host-policy NAME,cpu-cores=LIST` (LIST as Linux writes CPU lists: "2", "0-3,8"), and a
// config.pbtxt binds an instance group with `instance_group { host_policy: "NAME" }`. Such an
// instance computes on a thread of its own, and that thread and its OpenMP threads run only on
// the policy's cores; the rest of the server keeps off the cores that policies name (when any
// core is left), so that the gRPC and HTTP threads do not preempt the bound instances.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "runtime/core/cpu_affinity.h"
#include "runtime/core/status.h"

namespace parnet::serve {

// Policy name -> its cores, ascending.
using HostPolicies = std::map<std::string, std::vector<int>>;

// Adds one `--host-policy` argument ("NAME,cpu-cores=LIST") to `policies`. Refuses other settings
// (Triton's numa-node), an empty or malformed list, and cores this process may not run on.
Status AddHostPolicy(const std::string& argument, HostPolicies* policies);

}  // namespace parnet::serve
