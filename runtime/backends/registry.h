// The one place that knows which backends were compiled in.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "runtime/backends/backend.h"

namespace parnet {

// "cpu" (oneDNN) always; others where they were built. NOT_FOUND names the available ones.
StatusOr<std::unique_ptr<Backend>> CreateBackend(const std::string& name);
std::vector<std::string> AvailableBackends();

}  // namespace parnet
