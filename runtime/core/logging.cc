#include "runtime/core/logging.h"

#include <spdlog/sinks/stdout_color_sinks.h>

#include <atomic>

#include "runtime/core/log_internal.h"

namespace parnet {
namespace {
// Until SetLogLevel() is called, parnet logs warnings and errors only: a library should not
// chatter on its host program's stderr.
std::atomic<bool> level_set{false};
}  // namespace

std::shared_ptr<spdlog::logger> Logger(const std::string& layer) {
  const std::string name = "parnet." + layer;
  if (auto existing = spdlog::get(name)) return existing;
  try {
    auto logger = spdlog::stderr_color_mt(name);
    logger->set_level(level_set ? spdlog::get_level() : spdlog::level::warn);
    return logger;
  } catch (const spdlog::spdlog_ex&) {
    // Another thread registered the same name between get() and create.
    return spdlog::get(name);
  }
}

Status SetLogLevel(std::string_view level) {
  const auto parsed = spdlog::level::from_str(std::string(level));
  if (parsed == spdlog::level::off && level != "off") {
    return InvalidArgument("unknown log level '" + std::string(level) +
                           "'; use trace, debug, info, warn, error, critical or off");
  }
  spdlog::set_level(parsed);
  level_set = true;
  return Status::Ok();
}

}  // namespace parnet
