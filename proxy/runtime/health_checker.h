// Active TCP health checks, run on the control loop (never on a worker): each
// configured endpoint is connected to every interval (+ jitter); after
// `unhealthy_threshold` failures in a row it stops taking new connections,
// after `healthy_threshold` successes it takes them again. Each transition is
// logged once. An address:port is probed once however many clusters (subsets,
// ports) list it, and its verdict carries over to new route table versions.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "config/settings/gateway_config.h"
#include "config/model/route_table.h"
#include "lb/cluster_state.h"

namespace boost::asio {
class io_context;
}

namespace meshgate::proxy {

struct HealthCheckStats {
  uint64_t probes = 0;
  uint64_t failures = 0;     // probes that failed or timed out
  uint64_t transitions = 0;  // healthy <-> unhealthy
};

class HealthChecker {
 public:
  HealthChecker(boost::asio::io_context& io, std::vector<config::GatewayConfig::HealthCheck> checks);
  ~HealthChecker();
  HealthChecker(const HealthChecker&) = delete;
  HealthChecker& operator=(const HealthChecker&) = delete;

  // Probes the endpoints of this table version from now on.
  void SetTable(std::shared_ptr<const config::RouteTable> table,
                std::shared_ptr<lb::HealthTable> health);
  HealthCheckStats stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace meshgate::proxy
