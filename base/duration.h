// Go/Istio duration syntax ("1h30m", "1.5s", "250ms") to milliseconds: the one
// duration parser, shared by meshgate.yaml, serve.yaml, the Istio readers and
// the command lines.
#pragma once

#include <chrono>
#include <string_view>

#include "absl/status/statusor.h"

namespace meshgate::base {

// "250ms", "5s", "1m", "1h", "1h30m"; negative, unit-less and sub-millisecond
// values are errors.
absl::StatusOr<std::chrono::milliseconds> ParseDuration(std::string_view text);

}  // namespace meshgate::base
