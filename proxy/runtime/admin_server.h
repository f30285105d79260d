// The ops endpoints: Prometheus metrics (15090), readiness (15021) and the
// admin API (127.0.0.1:15000). Reads the runtime and the worker pool; the
// only thing it changes is the log level and, through `drain`, the life cycle.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "absl/status/status.h"
#include "base/io/http_server.h"
#include "proxy/runtime/runtime.h"
#include "proxy/runtime/takeover.h"
#include "proxy/worker_pool.h"

namespace boost::asio {
class io_context;
}

namespace meshgate::proxy {

class AccessLog;

// The gateway's life cycle as the ops endpoints see it.
struct Lifecycle {
  std::atomic<bool> ready{false};
  std::atomic<bool> draining{false};
  std::function<void(const std::string& why)> begin_drain;
  TakeoverCounters takeover;  // binary upgrades, on /stats/prometheus
};

// The three ops ports, each with its own handler.
enum class AdminPort { kMetrics, kReadiness, kAdmin };

class AdminServer {
 public:
  AdminServer(const Runtime& runtime, const WorkerPool& workers, Lifecycle& lifecycle, const AccessLog* access_log);
  // For each endpoint ("metrics", "readiness", "admin" and its configured
  // address): a listening socket handed over by the process this one
  // replaces (README "Upgrades"), or -1 to bind.
  using AdoptListener = std::function<int(const std::string& role, const std::string& address)>;
  // Binds (or adopts) every configured endpoint ("" = off); an error names which.
  absl::Status Start(boost::asio::io_context& io, const config::GatewayConfig& settings,
                     const AdoptListener& adopt = nullptr);
  // The listening sockets to hand over: role, address, fd (borrowed).
  std::vector<std::tuple<std::string, std::string, int>> Listeners() const;
  // Stops accepting (after a takeover); requests in flight finish.
  void CloseListeners();

  // One request as `port`'s HTTP server hands it over: what Start serves,
  // callable without a socket (tests/fuzz/fuzz_admin_http.cc).
  io::HttpResponse Handle(AdminPort port, const io::HttpRequest& request);

 private:
  io::HttpResponse ServeMetrics(const io::HttpRequest& request) const;
  io::HttpResponse ServeReadiness(const io::HttpRequest& request) const;
  io::HttpResponse ServeAdmin(const io::HttpRequest& request);
  io::HttpResponse Readiness() const;
  std::string ConfigDump() const;
  std::string StatsText() const;

  const Runtime& runtime_;
  const WorkerPool& workers_;
  Lifecycle& lifecycle_;
  const AccessLog* access_log_;
  std::vector<std::unique_ptr<io::HttpServer>> servers_;
  std::vector<std::string> roles_;  // servers_[i]'s endpoint
};

// Counters over every worker plus the runtime's, "name=value ..." (the exit
// summary and GET /stats).
std::string StatsSummary(const Runtime& runtime, const WorkerPool& workers);

}  // namespace meshgate::proxy
