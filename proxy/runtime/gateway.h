// The gateway's life cycle: a worker pool (the data plane), the runtime that
// owns every source of change, and the admin server, on one control loop.
// Start, drain (SIGTERM or POST /drain), stop. Asio-free header.
#pragma once

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "config/model/route_table.h"
#include "config/settings/gateway_config.h"
#include "proxy/runtime/runtime.h"

namespace meshgate::proxy {

class Gateway {
 public:
  struct Options {
    config::GatewayConfig settings;
    std::shared_ptr<const config::RouteTable> table;  // loaded from `settings`
    std::string settings_path;                         // meshgate.yaml, "" when none
    SettingsLoader load_settings;                      // re-reads it; null: settings are fixed
    // --takeover PATH: take the listening sockets of the gateway serving
    // them at PATH instead of binding (README "Upgrades"); "": bind.
    std::string takeover_from;
  };
  explicit Gateway(Options options);
  ~Gateway();
  Gateway(const Gateway&) = delete;
  Gateway& operator=(const Gateway&) = delete;

  // Binds (or, with takeover_from, takes over) the listeners, the access
  // log and the ops endpoints; an error names the address and the cause.
  absl::Status Bind();
  // Runs until Stop() (or SIGINT, or a second SIGTERM when handle_signals;
  // the first SIGTERM drains).
  void Run(bool handle_signals);
  // Thread-safe; makes Run() return.
  void Stop();

  std::string bound_address() const;
  // Counters over every worker plus the runtime's, "name=value ...". On the
  // control loop (an admin handler) or after Run() returns.
  std::string StatsSummary() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace meshgate::proxy
