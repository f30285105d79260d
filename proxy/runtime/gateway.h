// The data plane: one worker thread per core, each with its own io_context and
// its own SO_REUSEPORT listener, so accepts spread with no shared lock.
// This header is Asio-free; main and tests include it cheaply.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "config/settings/gateway_config.h"
#include "config/model/route_table.h"
#include "lb/cluster_state.h"
#include "base/io/http_server.h"

namespace meshgate::proxy {

// Where DNS-resolved clusters (ServiceEntry resolution DNS/DNS_ROUND_ROBIN)
// get their addresses. Resolution runs on the control thread, never a worker.
struct DnsSettings {
  std::vector<std::string> servers;  // "ip[:port]"; empty = /etc/resolv.conf
  std::chrono::milliseconds min_ttl{1000};
  std::chrono::milliseconds max_ttl{300000};
};

class Gateway {
 public:
  Gateway(config::GatewayConfig config, std::shared_ptr<const config::RouteTable> table);
  ~Gateway();
  Gateway(const Gateway&) = delete;
  Gateway& operator=(const Gateway&) = delete;

  // Binds every worker's listener; an error names the address and the cause.
  absl::Status Bind();
  // Re-reads configuration on SIGHUP, when a watched path changes, and when
  // the control component (config.control) publishes a new version.
  struct Reloader {
    std::vector<std::string> watch_paths;
    // Builds the new table off the data path from the mesh files plus
    // `control`, the control component's resources ("" when none); null when
    // the result is bad, in which case the current table keeps serving.
    // `error` gets the reasons when it returns null (for /config_dump).
    std::function<std::shared_ptr<const config::RouteTable>(const std::string& why, const std::string& control,
                                                            std::string& error)>
        load;
  };

  // Runs the workers until Stop() (or SIGINT/SIGTERM when handle_signals).
  void Run(bool handle_signals, const Reloader* reloader = nullptr, const DnsSettings& dns = DnsSettings());
  // Thread-safe. New connections use `table` from now on; open sessions keep
  // the table they started with, so a reload never touches them.
  void UpdateTable(std::shared_ptr<const config::RouteTable> table);
  // Every cluster's endpoints with health, weight, locality and connections
  // (for the admin API). Call on the control thread, or after Run() returns.
  std::vector<lb::ClusterView> Clusters() const;
  // Thread-safe; makes Run() return.
  void Stop();

  // "ip:port" actually bound (the port is resolved when the config says 0).
  std::string bound_address() const;
  // Counters summed over workers, "name=value ...".
  std::string StatsSummary() const;

 private:
  void SweepEjections();
  io::HttpResponse ServeMetrics(const io::HttpRequest& request);
  io::HttpResponse ServeReadiness(const io::HttpRequest& request);
  io::HttpResponse ServeAdmin(const io::HttpRequest& request);
  io::HttpResponse Readiness() const;
  // Installs a table built by a reload; false (and the error recorded) when null.
  bool InstallReload(std::shared_ptr<const config::RouteTable> table, const std::string& why,
                     const std::string& error, const std::function<void(std::shared_ptr<const config::RouteTable>)>& install);
  // Not ready at once; listeners close after drain.delay; sessions get
  // drain.time; then Run() returns. Control thread.
  void BeginDrain(const std::string& why);
  void WaitForSessions();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace meshgate::proxy
