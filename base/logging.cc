#include "base/logging.h"

#include <string>

#include "spdlog/sinks/stdout_sinks.h"
#include "spdlog/spdlog.h"

namespace meshgate::base {

std::optional<spdlog::level::level_enum> ParseLogLevel(std::string_view name) {
  const std::string text(name);
  const auto level = spdlog::level::from_str(text);
  if (level == spdlog::level::off && text != "off") return std::nullopt;
  return level;
}

void SetupLogging(std::string_view program, spdlog::level::level_enum level) {
  const std::string name(program);
  auto logger = spdlog::get(name);
  if (!logger) logger = spdlog::stderr_logger_mt(name);
  spdlog::set_default_logger(logger);
  spdlog::set_pattern("[%Y-%m-%dT%H:%M:%S.%e] [%l] %v");
  spdlog::set_level(level);
}

}  // namespace meshgate::base
