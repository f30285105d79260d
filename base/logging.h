// The one logging setup both binaries use: stderr, one timestamped line per
// event, and level names parsed one way everywhere (the config, the command
// line, POST /logging).
#pragma once

#include <optional>
#include <string_view>

#include "spdlog/common.h"

namespace meshgate::base {

// "trace", "debug", "info", "warn", "error", "critical" or "off"; nullopt for
// anything else (spdlog itself maps unknown names to "off").
std::optional<spdlog::level::level_enum> ParseLogLevel(std::string_view name);

// The names ParseLogLevel accepts, for messages.
inline constexpr std::string_view kLogLevelNames = "trace, debug, info, warn, error, critical, off";

// Installs the stderr logger named `program` as the default, at `level`.
void SetupLogging(std::string_view program, spdlog::level::level_enum level);

}  // namespace meshgate::base
