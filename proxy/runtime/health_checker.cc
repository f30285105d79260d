#include "proxy/runtime/health_checker.h"

#include <random>
#include <string>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <spdlog/spdlog.h>

#include "absl/container/flat_hash_map.h"

namespace meshgate::proxy {

namespace asio = boost::asio;
using boost::system::error_code;

namespace {

// Connects to one target on its own timer and hands each outcome to the
// verdicts. Owned by its pending handlers and by the checker until stopped;
// touches `checks` only while not stopped (the checker may be gone after).
struct Prober : std::enable_shared_from_this<Prober> {
  Prober(asio::io_context& io, std::shared_ptr<lb::HealthCheckTarget> t, lb::ActiveHealthChecks& c)
      : target(std::move(t)), checks(c), timer(io), deadline(io), socket(io) {}

  std::shared_ptr<lb::HealthCheckTarget> target;
  lb::ActiveHealthChecks& checks;
  bool stopped = false;
  bool probing = false;
  asio::steady_timer timer;
  asio::steady_timer deadline;
  asio::ip::tcp::socket socket;
  std::mt19937_64 rng{std::random_device{}()};

  // [0, jitter): spreads the probes of many targets over time.
  std::chrono::milliseconds Jitter() {
    const auto jitter = target->spec().jitter.count();
    return std::chrono::milliseconds(jitter > 0 ? rng() % static_cast<uint64_t>(jitter) : 0);
  }

  void Schedule(std::chrono::milliseconds after) {
    if (stopped) return;
    timer.expires_after(after);
    timer.async_wait([self = shared_from_this()](const error_code& ec) {
      if (!ec) self->DoProbe();
    });
  }

  void DoProbe() {
    if (stopped) return;
    error_code ec;
    const auto ip = asio::ip::make_address(target->address(), ec);
    if (ec) return;  // config validated it; nothing to probe
    checks.OnProbeStarted();
    probing = true;
    socket = asio::ip::tcp::socket(timer.get_executor());
    deadline.expires_after(target->spec().timeout);
    deadline.async_wait([self = shared_from_this()](const error_code& e) {
      if (e || !self->probing) return;
      error_code ignored;
      self->socket.close(ignored);  // completes the connect with an error
    });
    socket.async_connect(asio::ip::tcp::endpoint(ip, target->port()),
                         [self = shared_from_this()](const error_code& e) { self->OnProbe(e); });
  }

  void OnProbe(const error_code& ec) {
    probing = false;
    deadline.cancel();
    error_code ignored;
    socket.close(ignored);
    if (stopped) return;
    Log(checks.OnProbeResult(*target, !ec), ec);
    Schedule(target->spec().interval + Jitter());
  }

  void Log(lb::CheckTransition transition, const error_code& ec) const {
    const lb::HealthCheckTarget& t = *target;
    if (transition == lb::CheckTransition::kFailed) {
      spdlog::warn("health check: {}:{} ({}) failed {} check(s) in a row ({}): no new connections",
                   t.address(), t.port(), t.clusters(), t.spec().unhealthy_threshold, ec.message());
    } else if (transition == lb::CheckTransition::kPassed) {
      spdlog::info("health check: {}:{} ({}) passed {} check(s) in a row: back in rotation", t.address(),
                   t.port(), t.clusters(), t.spec().healthy_threshold);
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

std::vector<lb::HealthCheckSpec> ToHealthCheckSpecs(const std::vector<config::GatewayConfig::HealthCheck>& checks) {
  std::vector<lb::HealthCheckSpec> specs;
  specs.reserve(checks.size());
  for (const config::GatewayConfig::HealthCheck& c : checks) {
    lb::HealthCheckSpec& s = specs.emplace_back();
    s.host = c.host;
    s.port = c.port;
    s.interval = c.interval;
    s.timeout = c.timeout;
    s.jitter = c.jitter;
    s.healthy_threshold = c.healthy_threshold;
    s.unhealthy_threshold = c.unhealthy_threshold;
  }
  return specs;
}

// Same timing: a running prober may go on probing a target of the new table.
bool SameTiming(const lb::HealthCheckSpec& a, const lb::HealthCheckSpec& b) {
  return a.interval == b.interval && a.timeout == b.timeout && a.jitter == b.jitter;
}

std::string KeyOf(const lb::HealthCheckTarget& t) { return t.address() + ":" + std::to_string(t.port()); }

struct HealthChecker::Impl {
  asio::io_context& io;
  lb::ActiveHealthChecks checks;
  // One per target of the current table, by "address:port".
  absl::flat_hash_map<std::string, std::shared_ptr<Prober>> probers;

  void StopAll() {
    for (auto& [key, prober] : probers) prober->Stop();
    probers.clear();
  }
  // Probers follow the new targets: an address:port probed before with the
  // same timing keeps its prober, its schedule and any probe in flight (its
  // result goes to the new target, which carries the verdict and streaks);
  // a new one starts, one no longer listed stops.
  void Follow(const std::vector<std::shared_ptr<lb::HealthCheckTarget>>& targets) {
    absl::flat_hash_map<std::string, std::shared_ptr<Prober>> next;
    next.reserve(targets.size());
    for (const auto& target : targets) {
      std::string key = KeyOf(*target);
      const auto old = probers.find(key);
      if (old != probers.end() && SameTiming(old->second->target->spec(), target->spec())) {
        old->second->target = target;
        next.emplace(std::move(key), std::move(old->second));
        probers.erase(old);
        continue;
      }
      auto prober = std::make_shared<Prober>(io, target, checks);
      // A first probe soon, spread over the jitter, so a dead endpoint is found fast.
      prober->Schedule(prober->Jitter());
      next.emplace(std::move(key), std::move(prober));
    }
    StopAll();  // what is left: an old probe still in flight reports to nobody
    probers = std::move(next);
  }
};

HealthChecker::HealthChecker(asio::io_context& io, std::vector<config::GatewayConfig::HealthCheck> checks)
    : impl_(new Impl{io, lb::ActiveHealthChecks(ToHealthCheckSpecs(checks)), {}}) {}

HealthChecker::~HealthChecker() { impl_->StopAll(); }

void HealthChecker::SetChecks(const std::vector<config::GatewayConfig::HealthCheck>& checks) {
  impl_->checks.SetSpecs(ToHealthCheckSpecs(checks));
}

void HealthChecker::SetTable(std::shared_ptr<const config::RouteTable> table,
                             std::shared_ptr<lb::HealthTable> health) {
  impl_->checks.SetTable(*table, std::move(health));
  impl_->Follow(impl_->checks.targets());
}

const lb::HealthCheckStats& HealthChecker::counters() const { return impl_->checks.stats(); }

}  // namespace meshgate::proxy
