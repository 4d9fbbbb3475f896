// Logging set-up. Library code logs through spdlog with one logger per layer ("graph", "cpu",
// ...); this header keeps spdlog out of public interfaces.
#pragma once

#include <string_view>

#include "runtime/core/status.h"

namespace parnet {

// Sets the level of every parnet logger: trace, debug, info, warn, error, critical or off.
// Thread-safe; call once at start-up, before other threads log.
Status SetLogLevel(std::string_view level);

}  // namespace parnet
