#include <spdlog/sinks/stdout_color_sinks.h>

#include "runtime/core/log_internal.h"
#include "runtime/core/logging.h"

namespace parnet {

std::shared_ptr<spdlog::logger> Logger(const std::string& layer) {
  const std::string name = "parnet." + layer;
  if (auto existing = spdlog::get(name)) return existing;
  try {
    auto logger = spdlog::stderr_color_mt(name);
    logger->set_level(spdlog::get_level());
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
  return Status::Ok();
}

}  // namespace parnet
