// Active TCP health checks' I/O, run on the control loop (never on a worker):
// each checked address:port is connected to every interval (+ jitter), with a
// timeout, and the outcome is fed to lb::ActiveHealthChecks, which holds the
// verdicts (thresholds, which endpoints a check covers, carry-over across
// table versions). Each transition is logged once, here.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "config/settings/gateway_config.h"
#include "config/model/route_table.h"
#include "lb/active_health.h"
#include "lb/cluster_state.h"

namespace boost::asio {
class io_context;
}

namespace meshgate::proxy {

// meshgate.yaml's healthChecks as lb takes them.
std::vector<lb::HealthCheckSpec> ToHealthCheckSpecs(const std::vector<config::GatewayConfig::HealthCheck>& checks);

class HealthChecker {
 public:
  HealthChecker(boost::asio::io_context& io, std::vector<config::GatewayConfig::HealthCheck> checks);
  ~HealthChecker();
  HealthChecker(const HealthChecker&) = delete;
  HealthChecker& operator=(const HealthChecker&) = delete;

  // Other checks from now on (a reload); call SetTable next. Verdicts of
  // addresses still checked carry over.
  void SetChecks(const std::vector<config::GatewayConfig::HealthCheck>& checks);
  // Probes the endpoints of this table version from now on.
  void SetTable(std::shared_ptr<const config::RouteTable> table,
                std::shared_ptr<lb::HealthTable> health);
  // The live counters, for exporting by their list (base/stats.h). Control loop.
  const lb::HealthCheckStats& counters() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace meshgate::proxy
