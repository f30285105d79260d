#include "proxy/runtime/gateway.h"

#include <functional>

#include <signal.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <thread>
#include <unordered_set>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include "base/logging.h"
#include "fmt/format.h"
#include "lb/balancer.h"
#include "base/io/config_watcher.h"
#include "proxy/runtime/control_source.h"
#include "proxy/runtime/dns_resolver.h"
#include "proxy/runtime/dns_routes.h"
#include "proxy/runtime/health_checker.h"
#include "base/io/http_server.h"
#include "proxy/runtime/metrics.h"
#include "proxy/runtime/admin_json.h"
#include "base/io/endpoint.h"
#include "proxy/session.h"
#include "spdlog/spdlog.h"

namespace meshgate::proxy {
namespace asio = boost::asio;
using asio::ip::tcp;
using boost::system::error_code;

namespace {

using ReusePort = asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;

absl::StatusOr<tcp::endpoint> ParseListen(const std::string& listen) {
  auto parsed = base::ParseListenAddress(listen);
  if (!parsed.ok()) return parsed.status();
  error_code ec;
  const auto address = asio::ip::make_address(parsed->ip, ec);
  if (ec) return absl::InvalidArgumentError(fmt::format("listen address \"{}\": bad IP", listen));
  return tcp::endpoint(address, parsed->port);
}

DataPathSettings DataPathSettingsOf(const config::GatewayConfig& c) {
  DataPathSettings s;
  s.hello_timeout = c.hello_timeout;
  s.connect_timeout = c.connect_timeout;
  s.idle_timeout = c.idle_timeout;
  s.max_hello_bytes = c.max_hello_bytes;
  s.max_connect_attempts = c.max_connect_attempts;
  s.relay = c.relay == config::RelayMode::kSplice ? RelayMode::kSplice : RelayMode::kCopy;
  return s;
}

bool IsResourceExhaustion(const error_code& ec) {
  const int v = ec.value();
  return v == EMFILE || v == ENFILE || v == ENOBUFS || v == ENOMEM;
}

}  // namespace

// Member order matters: the io_context is destroyed before the state its
// pending sessions point at (stats, pipes, balancer).
struct Worker {
  Worker(std::shared_ptr<WorkerRoutes> routes, size_t index, size_t max_pipes)
      : pipes(64, max_pipes) {
    ctx.routes = std::move(routes);
    ctx.worker_index = index;
    ctx.live = &live;
    ctx.stats = &stats;
    ctx.pipes = &pipes;
    ctx.log_limiter = &limiter;
  }

  // One timer per worker enforces every session's idle timeout, instead of
  // a pending timer per idle session: closes happen within idle + tick.
  void ArmIdleSweep() {
    const auto tick = std::clamp<std::chrono::milliseconds>(ctx.routes->settings.idle_timeout / 8,
                                                            std::chrono::milliseconds(10), std::chrono::seconds(1));
    idle_sweep.expires_after(tick);
    idle_sweep.async_wait([this](const error_code& ec) {
      if (ec) return;
      sweep_snapshot.assign(live.begin(), live.end());  // Close() may change `live`
      const auto now = std::chrono::steady_clock::now();
      for (Session* session : sweep_snapshot) session->CheckIdle(now);
      ArmIdleSweep();
    });
  }

  void DoAccept() {
    // The peer's address comes with accept(): no getpeername per connection.
    acceptor.async_accept(io, accept_peer,
                          [this](const error_code& ec, Socket socket) { OnAccept(ec, std::move(socket)); });
  }

  void OnAccept(const error_code& ec, Socket socket) {
    if (ec == asio::error::operation_aborted || !acceptor.is_open()) return;
    if (ec) {
      stats.accept_errors.Inc();
      uint64_t suppressed = 0;
      if (limiter.Allow(suppressed)) spdlog::warn("accept failed: {}", ec.message());
      if (IsResourceExhaustion(ec)) {  // don't spin while out of fds: back off
        backoff.expires_after(std::chrono::milliseconds(100));
        backoff.async_wait([this](const error_code& e) {
          if (!e) DoAccept();
        });
        return;
      }
      return DoAccept();
    }
    std::make_shared<Session>(std::move(socket), accept_peer, ctx)->Start();
    DoAccept();
  }

  ProxyStats stats;
  PipePool pipes;
  LogLimiter limiter;
  std::unordered_set<Session*> live;  // this worker's open sessions
  std::vector<Session*> sweep_snapshot;
  WorkerContext ctx;
  asio::io_context io{1};
  tcp::acceptor acceptor{io};
  asio::steady_timer backoff{io};
  asio::steady_timer idle_sweep{io};
  tcp::endpoint accept_peer;  // filled by each accept
  std::thread thread;
};

struct Gateway::Impl {
  config::GatewayConfig config;
  std::shared_ptr<const config::RouteTable> table;
  std::shared_ptr<lb::HealthTable> health;  // the workers' current version
  std::vector<int64_t> next_sweep_ns;       // outlier re-check, by cluster id
  std::unique_ptr<HealthChecker> checker;   // while Run() runs, when configured
  std::unique_ptr<ControlSource> control;   // while Run() runs, when configured
  std::string control_resources;            // the last version that loaded
  std::string health_check_stats;           // set when Run() returns
  std::atomic<uint64_t> config_version{1};
  std::atomic<uint64_t> reloads_ok{0};
  std::atomic<uint64_t> reloads_failed{0};
  std::string dns_stats;  // set when Run() returns
  ClusterStatsRegistry cluster_stats;       // control thread
  std::vector<std::shared_ptr<ClusterStats>> current_stats;  // by cluster id of `table`
  std::string last_reload_error;            // "" after a good reload
  double last_reload_time = 0;              // Unix seconds, 0: none yet
  std::unique_ptr<AccessLog> access_log;    // outlives the workers' sessions
  std::vector<std::unique_ptr<Worker>> workers;
  tcp::endpoint bound;
  asio::io_context main_io{1};
  std::vector<std::unique_ptr<io::HttpServer>> http;  // metrics, readiness, admin
  std::atomic<bool> stopping{false};
  std::atomic<bool> ready{false};
  std::atomic<bool> draining{false};
  std::unique_ptr<asio::steady_timer> drain_timer;
  std::chrono::steady_clock::time_point drain_deadline;

  std::shared_ptr<WorkerRoutes> RoutesFor(std::shared_ptr<const config::RouteTable> t,
                                          std::shared_ptr<lb::HealthTable> h,
                                          const std::vector<std::shared_ptr<ClusterStats>>& stats) const {
    auto snapshot = std::make_shared<Snapshot>();
    snapshot->version = config_version.load();
    snapshot->table = std::move(t);
    snapshot->health = std::move(h);
    snapshot->cluster_stats = stats;
    snapshot->settings = DataPathSettingsOf(config);
    snapshot->balancer = lb::BalancerOptions{config.locality};
    return std::make_shared<WorkerRoutes>(std::move(snapshot));
  }
};

Gateway::Gateway(config::GatewayConfig config, std::shared_ptr<const config::RouteTable> table)
    : impl_(std::make_unique<Impl>()) {
  // splice(2) into a socket the peer has reset raises SIGPIPE; we want EPIPE.
  signal(SIGPIPE, SIG_IGN);
  impl_->config = std::move(config);
  impl_->table = std::move(table);
  impl_->health = std::make_shared<lb::HealthTable>(*impl_->table);
  impl_->current_stats = impl_->cluster_stats.ForTable(*impl_->table);
  int threads = impl_->config.threads;
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  for (int i = 0; i < threads; ++i) {
    impl_->workers.push_back(std::make_unique<Worker>(
        impl_->RoutesFor(impl_->table, impl_->health, impl_->current_stats),
        static_cast<size_t>(i),
        // maxPipes is for the whole gateway: each worker gets its share.
        impl_->config.max_pipes < 0 ? SIZE_MAX : static_cast<size_t>(impl_->config.max_pipes / threads)));
  }
}

Gateway::~Gateway() {
  Stop();
  for (auto& w : impl_->workers) {
    if (w->thread.joinable()) w->thread.join();
  }
}

absl::Status Gateway::Bind() {
  auto endpoint = ParseListen(impl_->config.listen);
  if (!endpoint.ok()) return endpoint.status();
  tcp::endpoint target = *endpoint;
  // SO_REUSEPORT would let us silently share a port with another running
  // gateway; a plain bind first tells "in use" apart from "ours". The probe
  // stays bound until the workers are, so port 0 cannot be taken meanwhile.
  tcp::acceptor probe(impl_->main_io);
  {
    error_code ec;
    probe.open(target.protocol(), ec);
    if (!ec) probe.set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) probe.bind(target, ec);
    if (ec) return absl::UnavailableError(fmt::format("cannot listen on {}: {}", impl_->config.listen, ec.message()));
    if (target.port() == 0) target = probe.local_endpoint(ec);
  }
  for (auto& w : impl_->workers) {
    error_code ec;
    w->acceptor.open(target.protocol(), ec);
    if (!ec) w->acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) w->acceptor.set_option(ReusePort(true), ec);
    if (!ec) w->acceptor.bind(target, ec);
    if (!ec) w->acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      return absl::UnavailableError(
          fmt::format("cannot listen on {}: {}", io::FormatEndpoint(target), ec.message()));
    }
  }
  impl_->bound = target;
  if (!impl_->config.access_log.path.empty()) {
    auto log = AccessLog::Open(impl_->config.access_log.path, impl_->config.access_log.sample_rate,
                               impl_->workers.size());
    if (!log.ok()) return log.status();
    impl_->access_log = *std::move(log);
    for (auto& w : impl_->workers) w->ctx.access_log = impl_->access_log.get();
  }
  const std::tuple<const std::string&, const char*, io::HttpHandler> servers[] = {
      {impl_->config.metrics, "metrics", [this](const io::HttpRequest& r) { return ServeMetrics(r); }},
      {impl_->config.readiness, "readiness", [this](const io::HttpRequest& r) { return ServeReadiness(r); }},
      {impl_->config.admin, "admin", [this](const io::HttpRequest& r) { return ServeAdmin(r); }},
  };
  for (const auto& [address, what, handler] : servers) {
    if (address.empty()) continue;
    auto server = io::HttpServer::Start(impl_->main_io, address, handler);
    if (!server.ok()) {
      return absl::UnavailableError(
          fmt::format("cannot serve {} on {}: {}", what, address, std::string(server.status().message())));
    }
    spdlog::info("{} serving on {}", what, (*server)->bound_address());
    if (std::string_view(what) == "admin" && !(*server)->loopback()) {
      spdlog::warn("ADMIN API ON A NON-LOOPBACK ADDRESS ({}): anyone who can reach it can drain this "
                   "gateway and change its log level",
                   (*server)->bound_address());
    }
    impl_->http.push_back(*std::move(server));
  }
  return absl::OkStatus();
}

io::HttpResponse Gateway::ServeMetrics(const io::HttpRequest& request) {
  if (request.path != "/stats/prometheus" && request.path != "/metrics") return {404, "text/plain", "not found\n"};
  if (request.method != "GET") return {405, "text/plain", "use GET\n"};
  MetricsSnapshot snapshot;
  snapshot.listener = io::FormatEndpoint(impl_->bound);
  for (const auto& w : impl_->workers) snapshot.workers.push_back(&w->stats);
  snapshot.clusters = impl_->cluster_stats.All();
  snapshot.endpoints = Clusters();
  snapshot.istio_cluster_id = impl_->config.cluster_id;
  snapshot.config_version = impl_->config_version.load();
  snapshot.reloads_ok = impl_->reloads_ok.load();
  snapshot.reloads_failed = impl_->reloads_failed.load();
  snapshot.last_reload_seconds = impl_->last_reload_time;
  if (impl_->access_log) {
    snapshot.access_log_written = impl_->access_log->written();
    snapshot.access_log_dropped = impl_->access_log->dropped();
  }
  snapshot.draining = impl_->draining.load();
  if (impl_->control) snapshot.control = &impl_->control->status();
  return {200, "text/plain; version=0.0.4; charset=utf-8", RenderMetrics(snapshot)};
}

io::HttpResponse Gateway::ServeReadiness(const io::HttpRequest& request) {
  if (request.path != "/healthz/ready") return {404, "text/plain", "not found\n"};
  return Readiness();
}

io::HttpResponse Gateway::Readiness() const {
  if (impl_->draining) return {503, "text/plain", "draining\n"};
  if (!impl_->ready) return {503, "text/plain", "starting\n"};
  if (impl_->control && impl_->config.control.required && !impl_->control->status().synced_once) {
    const ControlStatus& c = impl_->control->status();
    return {503, "text/plain",
            fmt::format("waiting for the first sync from control component {} (cluster {}){}{}\n", c.url, c.cluster,
                        c.last_error.empty() ? "" : ": ", c.last_error)};
  }
  return {200, "text/plain", "ready\n"};
}

io::HttpResponse Gateway::ServeAdmin(const io::HttpRequest& request) {
  const bool get = request.method == "GET";
  const bool post = request.method == "POST";
  if (request.path == "/config_dump" && get) {
    return {200, "application/json", ConfigDumpJson(*impl_->table, impl_->config_version.load(),
                                                    impl_->last_reload_error, impl_->last_reload_time)};
  }
  if (request.path == "/clusters" && get) return {200, "application/json", ClustersJson(Clusters())};
  if (request.path == "/stats" && get) {
    std::string text = StatsSummary();
    std::replace(text.begin(), text.end(), ' ', '\n');
    return {200, "text/plain", text + "\n"};
  }
  if (request.path == "/ready" && get) return Readiness();
  if (request.path == "/control" && get) {
    if (!impl_->control) return {404, "text/plain", "no control component configured\n"};
    return {200, "application/json", ControlStatusJson(impl_->control->status())};
  }
  if (request.path == "/drain" && post) {
    BeginDrain("POST /drain");
    return {200, "text/plain", "draining\n"};
  }
  if (request.path == "/logging" && post) {
    const std::string level = io::QueryValue(request.query, "level");
    const auto parsed = base::ParseLogLevel(level);
    if (!parsed) {
      return {400, "text/plain", "unknown level \"" + level + "\" (trace, debug, info, warn, error, off)\n"};
    }
    spdlog::set_level(*parsed);
    spdlog::info("admin: log level set to {}", level);
    return {200, "text/plain", "log level " + level + "\n"};
  }
  for (const char* known : {"/config_dump", "/clusters", "/stats", "/ready", "/control", "/drain", "/logging"}) {
    if (request.path == known) return {405, "text/plain", "method not allowed\n"};
  }
  return {404, "text/plain",
          "not found; try GET /config_dump, /clusters, /stats, /ready, /control; POST /drain, /logging?level=\n"};
}

void Gateway::BeginDrain(const std::string& why) {
  if (impl_->draining.exchange(true)) return;
  const auto delay = impl_->config.drain.delay;
  const auto time = impl_->config.drain.time;
  spdlog::info("draining ({}): not ready; accepting for {} ms more, then up to {} ms for open sessions",
               why, delay.count(), time.count());
  impl_->drain_timer = std::make_unique<asio::steady_timer>(impl_->main_io);
  impl_->drain_timer->expires_after(delay);
  impl_->drain_timer->async_wait([this, time](const error_code& ec) {
    if (ec) return;
    for (auto& w : impl_->workers) {
      Worker* worker = w.get();
      asio::post(worker->io, [worker] {
        error_code ignored;
        worker->acceptor.close(ignored);
      });
    }
    spdlog::info("drain: listeners closed");
    impl_->drain_deadline = std::chrono::steady_clock::now() + time;
    WaitForSessions();
  });
}

void Gateway::WaitForSessions() {
  uint64_t open = 0;
  for (const auto& w : impl_->workers) open += w->stats.downstream_cx_active.value();
  if (open == 0) {
    spdlog::info("drain: every session finished");
    return Stop();
  }
  if (std::chrono::steady_clock::now() >= impl_->drain_deadline) {
    spdlog::info("drain: time is up, closing {} session(s) as drained", open);
    for (auto& w : impl_->workers) {
      Worker* worker = w.get();
      asio::post(worker->io, [worker] {
        const std::vector<Session*> open_sessions(worker->live.begin(), worker->live.end());
        for (Session* session : open_sessions) session->Drain();
      });
    }
    return Stop();  // queued behind the closes on every worker
  }
  impl_->drain_timer->expires_after(std::chrono::milliseconds(50));
  impl_->drain_timer->async_wait([this](const error_code& ec) {
    if (!ec) WaitForSessions();
  });
}

bool Gateway::InstallReload(std::shared_ptr<const config::RouteTable> table, const std::string& why,
                            const std::string& error,
                            const std::function<void(std::shared_ptr<const config::RouteTable>)>& install) {
  impl_->last_reload_time = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  impl_->last_reload_error = table ? "" : error;
  if (!table) {
    impl_->reloads_failed.fetch_add(1, std::memory_order_relaxed);
    spdlog::error("config reload ({}) failed: still serving version {}", why, impl_->config_version.load());
    return false;
  }
  impl_->reloads_ok.fetch_add(1, std::memory_order_relaxed);
  const uint64_t version = impl_->config_version.fetch_add(1) + 1;
  install(std::move(table));
  spdlog::info("config reloaded ({}): version {}", why, version);
  return true;
}

void Gateway::Run(bool handle_signals, const Reloader* reloader, const DnsSettings& dns_settings) {
  asio::signal_set signals(impl_->main_io);
  // The first SIGTERM drains; a second one (or SIGINT) stops at once. Lives
  // as long as Run(): the handler re-arms itself with it.
  std::function<void(const error_code&, int)> on_signal;
  if (handle_signals) {
    signals.add(SIGINT);
    signals.add(SIGTERM);
    on_signal = [&, this](const error_code& ec, int signo) {
      if (ec) return;
      if (signo == SIGTERM && !impl_->draining) {
        BeginDrain("SIGTERM");
        signals.async_wait(on_signal);
        return;
      }
      spdlog::info("received {}, shutting down now", signo == SIGINT ? "SIGINT" : "SIGTERM");
      Stop();
    };
    signals.async_wait(on_signal);
  }
  if (!impl_->config.health_checks.empty()) {
    impl_->checker = std::make_unique<HealthChecker>(impl_->main_io, impl_->config.health_checks);
    impl_->checker->SetTable(impl_->table, impl_->health);
  }
  // Every table, at startup and on reload, goes through DNS resolution before
  // the workers see it.
  std::unique_ptr<DnsResolver> resolver;
  std::unique_ptr<DnsRoutes> dns;
  {
    DnsOptions options;
    options.servers = dns_settings.servers;
    options.min_ttl = dns_settings.min_ttl;
    options.max_ttl = dns_settings.max_ttl;
    auto created = DnsResolver::Create(impl_->main_io, options);
    if (created.ok()) {
      resolver = *std::move(created);
      dns = std::make_unique<DnsRoutes>(impl_->main_io, *resolver,
                                        [this](std::shared_ptr<const config::RouteTable> t) { UpdateTable(std::move(t)); });
      dns->SetBase(impl_->table);
    } else {
      spdlog::error("DNS resolver unavailable, DNS clusters get no endpoints: {}",
                    std::string(created.status().message()));
    }
  }
  auto install = [this, &dns](std::shared_ptr<const config::RouteTable> table) {
    if (dns) {
      dns->SetBase(std::move(table));
    } else {
      UpdateTable(std::move(table));
    }
  };
  std::unique_ptr<io::ConfigWatcher> watcher;
  if (reloader != nullptr) {
    watcher = std::make_unique<io::ConfigWatcher>(
        impl_->main_io, reloader->watch_paths, std::chrono::milliseconds(100),
        [this, reloader, &install](const std::string& why) {
          std::string error;
          auto table = reloader->load(why, impl_->control_resources, error);
          InstallReload(std::move(table), why, error, install);
        });
    if (!impl_->config.control.url.empty()) {
      const auto& control = impl_->config.control;
      impl_->control = std::make_unique<ControlSource>(
          impl_->main_io, control, control.cluster.empty() ? impl_->config.cluster_id : control.cluster,
          [this, reloader, &install](const std::string& resources, const std::string& why) {
            std::string error;
            auto table = reloader->load(why, resources, error);
            if (!InstallReload(std::move(table), why, error, install)) return error.empty() ? std::string("rejected") : error;
            impl_->control_resources = resources;
            return std::string();
          });
      impl_->control->Start();
    }
  }
  // Outlier detection's re-check: the finest interval Istio accepts is 1 ms,
  // but a 100 ms tick is plenty for ejections measured in seconds.
  asio::steady_timer sweep(impl_->main_io);
  std::function<void()> arm_sweep = [&] {
    sweep.expires_after(std::chrono::milliseconds(100));
    sweep.async_wait([&](const error_code& ec) {
      if (ec) return;
      SweepEjections();
      arm_sweep();
    });
  };
  arm_sweep();
  auto guard = asio::make_work_guard(impl_->main_io);
  for (auto& w : impl_->workers) {
    Worker* worker = w.get();
    worker->DoAccept();
    worker->ArmIdleSweep();
    worker->thread = std::thread([worker] { worker->io.run(); });
  }
  impl_->ready = true;
  spdlog::info("listening on {} with {} worker thread(s), relay={}", io::FormatEndpoint(impl_->bound),
               impl_->workers.size(), impl_->config.relay == config::RelayMode::kSplice ? "splice" : "copy");
  if (!impl_->stopping) impl_->main_io.run();
  for (auto& w : impl_->workers) {
    if (w->thread.joinable()) w->thread.join();
  }
  impl_->control.reset();  // its callbacks point into this frame
  if (resolver) impl_->dns_stats = FormatStats(resolver->stats());
  if (impl_->checker) {
    const HealthCheckStats hc = impl_->checker->stats();
    impl_->health_check_stats = fmt::format("health_check_probes={} health_check_failures={} health_check_transitions={}",
                                            hc.probes, hc.failures, hc.transitions);
    impl_->checker.reset();
  }
}

void Gateway::Stop() {
  if (impl_->stopping.exchange(true)) return;
  for (auto& w : impl_->workers) {
    Worker* worker = w.get();
    // Stop accepting, then stop the loop. Destroying the io_context destroys
    // the pending handlers, the only owners of open sessions, which closes them.
    asio::post(worker->io, [worker] {
      error_code ignored;
      worker->acceptor.close(ignored);
      worker->io.stop();
    });
  }
  impl_->main_io.stop();
}

void Gateway::UpdateTable(std::shared_ptr<const config::RouteTable> table) {
  // Ejections survive reloads and DNS updates; active-check verdicts are
  // carried by the checker itself.
  auto health = impl_->health ? std::make_shared<lb::HealthTable>(*table, *impl_->table, *impl_->health)
                              : std::make_shared<lb::HealthTable>(*table);
  impl_->table = table;
  impl_->health = health;
  impl_->current_stats = impl_->cluster_stats.ForTable(*table);
  impl_->next_sweep_ns.clear();
  if (impl_->checker) impl_->checker->SetTable(table, health);
  for (auto& w : impl_->workers) {
    Worker* worker = w.get();
    // Each worker builds its own balancers, so each gets its own WorkerRoutes.
    asio::post(worker->io, [worker, routes = impl_->RoutesFor(table, health, impl_->current_stats)] {
      worker->ctx.routes = routes;
    });
  }
}

void Gateway::SweepEjections() {
  const int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                          std::chrono::steady_clock::now().time_since_epoch()).count();
  const config::RouteTable& table = *impl_->table;
  impl_->next_sweep_ns.resize(table.clusters().size(), 0);
  for (const config::Cluster& cluster : table.clusters()) {
    const auto& od = cluster.policy.outlier_detection;
    if (!od) continue;
    // Ejections end on the cluster's outlierDetection.interval, as in Envoy.
    int64_t& next = impl_->next_sweep_ns[cluster.id];
    if (now < next) continue;
    next = now + std::chrono::duration_cast<std::chrono::nanoseconds>(od->interval).count();
    lb::ClusterState& state = impl_->health->cluster(cluster.id);
    state.Sweep(now, [&](size_t i) {
      spdlog::info("cluster {}: endpoint {}:{} back in rotation after ejection #{}", cluster.name,
                   cluster.endpoints[i].address, cluster.endpoints[i].port,
                   state.endpoint(i).ejections.load(std::memory_order_relaxed));
    });
  }
}

std::vector<lb::ClusterView> Gateway::Clusters() const {
  return lb::Describe(*impl_->table, *impl_->health);
}

std::string Gateway::bound_address() const { return io::FormatEndpoint(impl_->bound); }

std::string Gateway::StatsSummary() const {
  std::vector<const ProxyStats*> all;
  for (const auto& w : impl_->workers) all.push_back(&w->stats);
  return fmt::format("{} config_version={} config_reloads_ok={} config_reloads_failed={}{}{}{}{}",
                     FormatStats(all.data(), all.size()), impl_->config_version.load(),
                     impl_->reloads_ok.load(), impl_->reloads_failed.load(),
                     impl_->dns_stats.empty() ? "" : " ", impl_->dns_stats,
                     impl_->health_check_stats.empty() ? "" : " ", impl_->health_check_stats);
}

}  // namespace meshgate::proxy
