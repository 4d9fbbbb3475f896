// CPU affinity of the calling thread, and CPU lists as Linux writes them ("0-3,8"): what the
// plan runner (a device's cores), `parnet bench` (its report) and the server's host policies
// share.
#pragma once

#include <pthread.h>

#include <string>
#include <vector>

#include "runtime/core/status.h"

namespace parnet {

// A CPU list as Linux writes it ("0-3,8"), as ascending core numbers without repeats.
StatusOr<std::vector<int>> ParseCpuList(const std::string& list);
// The other way round: {0, 1, 2, 3, 8} -> "0-3,8".
std::string CpuListToString(const std::vector<int>& cores);

// The cores the calling thread may run on (its affinity mask; at start, the process's),
// ascending.
std::vector<int> AllowedCores();

// Binds `thread` to `cores` (threads it starts afterwards, and OpenMP teams it opens, inherit
// them).
Status BindThread(pthread_t thread, const std::vector<int>& cores);
Status BindThisThread(const std::vector<int>& cores);

}  // namespace parnet
