#include "proxy/runtime/health_checker.h"

#include <random>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <spdlog/spdlog.h>

#include "absl/container/flat_hash_map.h"
#include "base/names.h"

namespace meshgate::proxy {

namespace asio = boost::asio;
using boost::system::error_code;
using Check = config::GatewayConfig::HealthCheck;

namespace {

// One address:port and the cluster endpoints it stands for.
struct Target : std::enable_shared_from_this<Target> {
  Target(asio::io_context& io, HealthCheckStats& stats) : timer(io), deadline(io), socket(io), stats(stats) {}

  std::string address;
  uint16_t port = 0;
  Check check;
  std::string clusters;  // names, for the log
  std::vector<std::pair<lb::ClusterState*, uint32_t>> endpoints;
  std::shared_ptr<lb::HealthTable> health;  // keeps `endpoints` alive

  uint32_t successes = 0;
  uint32_t failures = 0;
  bool failed = false;
  bool stopped = false;
  bool probing = false;
  asio::steady_timer timer;
  asio::steady_timer deadline;
  asio::ip::tcp::socket socket;
  HealthCheckStats& stats;
  std::mt19937_64 rng{std::random_device{}()};

  void Schedule(std::chrono::milliseconds after) {
    if (stopped) return;
    timer.expires_after(after);
    timer.async_wait([self = shared_from_this()](const error_code& ec) {
      if (!ec) self->Probe();
    });
  }

  std::chrono::milliseconds NextDelay() {
    if (check.jitter.count() <= 0) return check.interval;
    return check.interval + std::chrono::milliseconds(rng() % static_cast<uint64_t>(check.jitter.count()));
  }

  void Probe() {
    if (stopped) return;
    error_code ec;
    const auto ip = asio::ip::make_address(address, ec);
    if (ec) return;  // config validated it; nothing to probe
    ++stats.probes;
    probing = true;
    socket = asio::ip::tcp::socket(timer.get_executor());
    deadline.expires_after(check.timeout);
    deadline.async_wait([self = shared_from_this()](const error_code& e) {
      if (e || !self->probing) return;
      error_code ignored;
      self->socket.close(ignored);  // completes the connect with an error
    });
    socket.async_connect(asio::ip::tcp::endpoint(ip, port),
                         [self = shared_from_this()](const error_code& e) { self->Done(e); });
  }

  void Done(const error_code& ec) {
    probing = false;
    deadline.cancel();
    error_code ignored;
    socket.close(ignored);
    if (stopped) return;
    if (ec) {
      ++stats.failures;
      successes = 0;
      if (!failed && ++failures >= check.unhealthy_threshold) {
        Apply(true, ec.message());
      }
    } else {
      failures = 0;
      if (failed && ++successes >= check.healthy_threshold) Apply(false, "");
    }
    Schedule(NextDelay());
  }

  void Apply(bool now_failed, const std::string& why) {
    failed = now_failed;
    successes = failures = 0;
    ++stats.transitions;
    for (auto& [state, index] : endpoints) state->SetCheckFailed(index, failed);
    if (failed) {
      spdlog::warn("health check: {}:{} ({}) failed {} check(s) in a row ({}): no new connections",
                   address, port, clusters, check.unhealthy_threshold, why);
    } else {
      spdlog::info("health check: {}:{} ({}) passed {} check(s) in a row: back in rotation", address,
                   port, clusters, check.healthy_threshold);
    }
  }

  void Stop() {
    stopped = true;
    timer.cancel();
    deadline.cancel();
    error_code ignored;
    socket.close(ignored);
  }
};

}  // namespace

struct HealthChecker::Impl {
  asio::io_context& io;
  std::vector<Check> checks;
  HealthCheckStats stats;
  absl::flat_hash_map<std::string, std::shared_ptr<Target>> targets;  // by "address:port"

  const Check* CheckFor(const config::Cluster& cluster) const {
    for (const Check& check : checks) {
      if ((check.port == 0 || check.port == cluster.port) &&
          base::HostMatches(check.host, cluster.host)) {
        return &check;
      }
    }
    return nullptr;
  }
};

HealthChecker::HealthChecker(asio::io_context& io, std::vector<Check> checks)
    : impl_(new Impl{io, std::move(checks), {}, {}}) {}

HealthChecker::~HealthChecker() {
  for (auto& [key, target] : impl_->targets) target->Stop();
}

void HealthChecker::SetTable(std::shared_ptr<const config::RouteTable> table,
                             std::shared_ptr<lb::HealthTable> health) {
  absl::flat_hash_map<std::string, std::shared_ptr<Target>> next;
  for (const config::Cluster& cluster : table->clusters()) {
    const Check* check = impl_->CheckFor(cluster);
    if (check == nullptr) continue;
    lb::ClusterState& state = health->cluster(cluster.id);
    for (size_t i = 0; i < cluster.endpoints.size(); ++i) {
      const config::Endpoint& e = cluster.endpoints[i];
      const std::string key = e.address + ":" + std::to_string(e.port);
      auto& target = next[key];
      if (!target) {
        target = std::make_shared<Target>(impl_->io, impl_->stats);
        target->address = e.address;
        target->port = e.port;
        target->check = *check;
        target->health = health;
      }
      if (target->clusters.find(cluster.name) == std::string::npos) {
        target->clusters += (target->clusters.empty() ? "" : ", ") + cluster.name;
      }
      target->endpoints.emplace_back(&state, static_cast<uint32_t>(i));
    }
  }
  for (auto& [key, target] : next) {
    // A verdict outlives the table version it was reached on.
    if (auto old = impl_->targets.find(key); old != impl_->targets.end()) {
      target->failed = old->second->failed;
      target->successes = old->second->successes;
      target->failures = old->second->failures;
      for (auto& [state, index] : target->endpoints) state->SetCheckFailed(index, target->failed);
    }
    // A first probe soon, spread over the jitter, so a dead endpoint is found fast.
    target->Schedule(std::chrono::milliseconds(
        target->check.jitter.count() > 0 ? target->rng() % target->check.jitter.count() : 0));
  }
  for (auto& [key, target] : impl_->targets) target->Stop();
  impl_->targets = std::move(next);
}

HealthCheckStats HealthChecker::stats() const { return impl_->stats; }

}  // namespace meshgate::proxy
