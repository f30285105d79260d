#include "proxy/runtime/health_checker.h"

#include <random>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <spdlog/spdlog.h>

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

struct HealthChecker::Impl {
  asio::io_context& io;
  lb::ActiveHealthChecks checks;
  std::vector<std::shared_ptr<Prober>> probers;  // one per target of the current table

  void StopAll() {
    for (auto& prober : probers) prober->Stop();
    probers.clear();
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
  impl_->StopAll();  // an old probe still in flight reports to nobody
  impl_->checks.SetTable(*table, std::move(health));
  for (const auto& target : impl_->checks.targets()) {
    auto prober = std::make_shared<Prober>(impl_->io, target, impl_->checks);
    // A first probe soon, spread over the jitter, so a dead endpoint is found fast.
    prober->Schedule(prober->Jitter());
    impl_->probers.push_back(std::move(prober));
  }
}

const lb::HealthCheckStats& HealthChecker::counters() const { return impl_->checks.stats(); }

}  // namespace meshgate::proxy
