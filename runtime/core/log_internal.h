// For parnet's .cc files only: the per-layer spdlog loggers. Never include from a public header.
#pragma once

#include <spdlog/spdlog.h>

#include <memory>
#include <string>

namespace parnet {

// Returns the logger named `layer`, creating it (stderr, colour) on first use. Thread-safe.
std::shared_ptr<spdlog::logger> Logger(const std::string& layer);

}  // namespace parnet
