#include "proxy/runtime/gateway.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include "proxy/access_log.h"
#include "base/io/fd_passing.h"
#include "proxy/runtime/admin_server.h"
#include "proxy/runtime/takeover.h"
#include "proxy/worker_pool.h"
#include "spdlog/spdlog.h"

namespace meshgate::proxy {
namespace asio = boost::asio;
using boost::system::error_code;

// Member order is destruction order, reversed: the workers go first (their
// sessions point at the access log), then the admin server and the runtime,
// whose timers and sockets belong to `io`, which goes last.
struct Gateway::Impl {
  explicit Impl(Options options)
      : runtime(io, std::move(options.settings), std::move(options.table), std::move(options.settings_path),
                std::move(options.load_settings)),
        signals(io),
        drain_timer(io),
        takeover_from(std::move(options.takeover_from)) {
    const config::GatewayConfig& s = runtime.settings();
    workers = std::make_unique<WorkerPool>(s.threads, s.max_pipes, runtime.snapshot());
    lifecycle.begin_drain = [this](const std::string& why) { BeginDrain(why); };
  }

  void WaitSignal();
  void OnSignal(const error_code& ec, int signo);
  void BeginDrain(const std::string& why);
  absl::Status BindListeners();
  void FinishTakeover();
  void ServeTakeover();
  std::vector<HandedListener> Handover() const;
  void OnTaken(pid_t successor);
  void DrainSessionsFor(std::chrono::milliseconds time);
  void WaitForSessions();
  void Stop();

  asio::io_context io{1};  // the control loop: the runtime, the admin server, the drain
  Lifecycle lifecycle;
  Runtime runtime;
  std::unique_ptr<AccessLog> access_log;
  std::unique_ptr<AdminServer> admin;
  std::unique_ptr<WorkerPool> workers;
  asio::signal_set signals;
  asio::steady_timer drain_timer;
  std::chrono::steady_clock::time_point drain_deadline;
  std::atomic<bool> stopping{false};
  std::string takeover_from;                 // --takeover PATH
  std::unique_ptr<TakeoverClient> takeover;  // until the old process has released
  std::unique_ptr<TakeoverServer> successor_socket;
};

Gateway::Gateway(Options options) : impl_(std::make_unique<Impl>(std::move(options))) {}

Gateway::~Gateway() {
  Stop();
  impl_->workers->Join();
}

absl::Status Gateway::Bind() {
  const config::GatewayConfig& s = impl_->runtime.settings();
  if (auto status = impl_->BindListeners(); !status.ok()) return status;
  if (!s.access_log.path.empty()) {
    auto log = AccessLog::Open(s.access_log.path, s.access_log.sample_rate, impl_->workers->size());
    if (!log.ok()) return log.status();
    impl_->access_log = *std::move(log);
    impl_->workers->SetAccessLog(impl_->access_log.get());
  }
  impl_->admin = std::make_unique<AdminServer>(impl_->runtime, *impl_->workers, impl_->lifecycle,
                                               impl_->access_log.get());
  TakeoverClient* takeover = impl_->takeover.get();
  return impl_->admin->Start(impl_->io, s, [takeover](const std::string& role, const std::string& address) {
    if (takeover == nullptr) return -1;
    std::vector<io::UniqueFd> fds = takeover->Take(role, address);
    return fds.empty() ? -1 : fds.front().Release();  // one per role; any other closes
  });
}

// The data listeners: taken over from the old process when it hands them
// over and they match `listen`, else bound (and a port in use fails).
absl::Status Gateway::Impl::BindListeners() {
  const config::GatewayConfig& s = runtime.settings();
  if (!takeover_from.empty()) takeover = TakeoverClient::Connect(takeover_from, &lifecycle.takeover);
  std::vector<io::UniqueFd> data;
  if (takeover) data = takeover->Take("data", s.listen);
  if (data.empty()) return workers->Bind(s.listen);
  std::vector<int> fds;
  for (auto& fd : data) fds.push_back(fd.Release());
  spdlog::info("takeover: adopting {} data listener(s) on {} worker(s){}", fds.size(), workers->size(),
               fds.size() < workers->size() ? fmt::format(", {} new member(s) join the SO_REUSEPORT group",
                                                          workers->size() - fds.size())
                                            : "");
  return workers->Adopt(fds);
}

void Gateway::Run(bool handle_signals) {
  if (handle_signals) {
    impl_->signals.add(SIGINT);
    impl_->signals.add(SIGTERM);
    impl_->WaitSignal();
  }
  WorkerPool& workers = *impl_->workers;
  AccessLog* access_log = impl_->access_log.get();
  impl_->runtime.Start([&workers](std::shared_ptr<const Snapshot> snapshot) { workers.Publish(std::move(snapshot)); },
                       [&workers, access_log](const config::GatewayConfig& s) {
                         workers.SetMaxPipes(s.max_pipes);
                         if (access_log != nullptr) access_log->SetSampleRate(s.access_log.sample_rate);
                       });
  auto guard = asio::make_work_guard(impl_->io);
  workers.Start();
  impl_->lifecycle.ready = true;
  const config::GatewayConfig& s = impl_->runtime.settings();
  spdlog::info("listening on {} with {} worker thread(s), relay={}", workers.bound_address(), workers.size(),
               s.relay == config::RelayMode::kSplice ? "splice" : "copy");
  impl_->FinishTakeover();
  if (!impl_->stopping) impl_->io.run();
  workers.Join();
}

void Gateway::Stop() { impl_->Stop(); }

std::string Gateway::bound_address() const { return impl_->workers->bound_address(); }

std::string Gateway::StatsSummary() const { return proxy::StatsSummary(impl_->runtime, *impl_->workers); }

// The first SIGTERM drains; a second one (or SIGINT) stops at once.
void Gateway::Impl::WaitSignal() {
  signals.async_wait([this](const error_code& ec, int signo) { OnSignal(ec, signo); });
}

void Gateway::Impl::OnSignal(const error_code& ec, int signo) {
  if (ec) return;
  if (signo == SIGTERM && !lifecycle.draining) {
    BeginDrain("SIGTERM");
    return WaitSignal();
  }
  spdlog::info("received {}, shutting down now", signo == SIGINT ? "SIGINT" : "SIGTERM");
  Stop();
}

// Accepting on the taken sockets already: tell the old process, which stops
// accepting and drains; then serve our own sockets to the next successor and
// tell systemd the main PID is now ours (sd_notify(3): MAINPID=, READY=1;
// the unit needs NotifyAccess=all, docker/systemd/meshgate.service).
void Gateway::Impl::FinishTakeover() {
  if (takeover) {
    const pid_t old = takeover->old_pid();
    if (auto status = takeover->Complete(10000); status.ok()) {
      spdlog::info("takeover: complete: pid {} stopped accepting and drains its open sessions", old);
    } else {
      spdlog::warn("takeover: pid {} did not confirm ({}); it may still accept for a while",
                   old, std::string(status.message()));
    }
    takeover.reset();
  }
  ServeTakeover();
  std::string error;
  if (!io::SdNotify(fmt::format("MAINPID={}\nREADY=1", getpid()), &error) && !error.empty()) {
    spdlog::warn("{}", error);
  }
}

// upgrade.socket, else the --takeover path: where the next one takes over.
void Gateway::Impl::ServeTakeover() {
  const std::string& configured = runtime.settings().upgrade.socket;
  const std::string path = configured.empty() ? takeover_from : configured;
  if (path.empty()) return;
  TakeoverServer::Hooks hooks;
  hooks.listeners = [this] { return Handover(); };
  hooks.on_taken = [this](pid_t successor) { OnTaken(successor); };
  auto server = TakeoverServer::Start(io, path, std::move(hooks), &lifecycle.takeover);
  if (!server.ok()) {
    spdlog::error("takeover: cannot serve upgrades at {}: {}", path, std::string(server.status().message()));
    return;
  }
  successor_socket = *std::move(server);
}

std::vector<HandedListener> Gateway::Impl::Handover() const {
  std::vector<HandedListener> out;
  if (lifecycle.draining) return out;
  const std::vector<int> data = workers->listener_fds();
  for (size_t i = 0; i < data.size(); ++i) {
    out.push_back({.role = "data", .index = static_cast<int>(i), .address = workers->bound_address(), .fd = data[i]});
  }
  if (out.empty()) return out;
  for (const auto& [role, address, fd] : admin->Listeners()) {
    out.push_back({.role = role, .index = 0, .address = address, .fd = fd});
  }
  return out;
}

// The successor accepts on our sockets: stop accepting (the kernel queues
// live on in its references), give the ops ports up, and drain at once (no
// drain.delay: no load balancer has to deregister anything).
void Gateway::Impl::OnTaken(pid_t successor) {
  lifecycle.ready = false;
  lifecycle.draining = true;
  workers->CloseListeners();
  admin->CloseListeners();
  const auto time = runtime.settings().drain.time;
  spdlog::info("takeover: pid {} took over: stopped accepting; up to {} ms for open sessions", successor,
               time.count());
  DrainSessionsFor(time);
}

void Gateway::Impl::DrainSessionsFor(std::chrono::milliseconds time) {
  drain_deadline = std::chrono::steady_clock::now() + time;
  WaitForSessions();
}

// Not ready at once; listeners close after drain.delay; sessions get
// drain.time; then Run() returns.
void Gateway::Impl::BeginDrain(const std::string& why) {
  if (lifecycle.draining.exchange(true)) return;
  const auto delay = runtime.settings().drain.delay;
  const auto time = runtime.settings().drain.time;
  spdlog::info("draining ({}): not ready; accepting for {} ms more, then up to {} ms for open sessions", why,
               delay.count(), time.count());
  drain_timer.expires_after(delay);
  drain_timer.async_wait([this, time](const error_code& ec) {
    if (ec) return;
    workers->CloseListeners();
    spdlog::info("drain: listeners closed");
    DrainSessionsFor(time);
  });
}

void Gateway::Impl::WaitForSessions() {
  const uint64_t open = workers->open_sessions();
  if (open == 0) {
    spdlog::info("drain: every session finished");
    return Stop();
  }
  if (std::chrono::steady_clock::now() >= drain_deadline) {
    spdlog::info("drain: time is up, closing {} session(s) as drained", open);
    workers->DrainSessions();
    return Stop();  // queued behind the closes on every worker
  }
  drain_timer.expires_after(std::chrono::milliseconds(50));
  drain_timer.async_wait([this](const error_code& ec) {
    if (!ec) WaitForSessions();
  });
}

void Gateway::Impl::Stop() {
  if (stopping.exchange(true)) return;
  workers->Stop();
  io.stop();
}

}  // namespace meshgate::proxy
