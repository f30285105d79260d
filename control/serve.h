// `meshgatectl serve --config FILE`: publishes each cluster's routes,
// ServiceEntries and CA certificates over HTTP(S) for gateways to follow.
#pragma once

#include <string>

namespace meshgate::control {

// Runs until SIGINT/SIGTERM; the exit code. listen_override: "" keeps the config's.
int RunServe(const std::string& config_path, const std::string& listen_override);

}  // namespace meshgate::control
