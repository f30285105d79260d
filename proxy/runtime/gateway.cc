#include "proxy/runtime/gateway.h"

#include <signal.h>

#include <atomic>
#include <chrono>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include "proxy/access_log.h"
#include "proxy/runtime/admin_server.h"
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
        drain_timer(io) {
    const config::GatewayConfig& s = runtime.settings();
    workers = std::make_unique<WorkerPool>(s.threads, s.max_pipes, runtime.snapshot());
    lifecycle.begin_drain = [this](const std::string& why) { BeginDrain(why); };
  }

  void WaitSignal();
  void OnSignal(const error_code& ec, int signo);
  void BeginDrain(const std::string& why);
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
};

Gateway::Gateway(Options options) : impl_(std::make_unique<Impl>(std::move(options))) {}

Gateway::~Gateway() {
  Stop();
  impl_->workers->Join();
}

absl::Status Gateway::Bind() {
  const config::GatewayConfig& s = impl_->runtime.settings();
  if (auto status = impl_->workers->Bind(s.listen); !status.ok()) return status;
  if (!s.access_log.path.empty()) {
    auto log = AccessLog::Open(s.access_log.path, s.access_log.sample_rate, impl_->workers->size());
    if (!log.ok()) return log.status();
    impl_->access_log = *std::move(log);
    impl_->workers->SetAccessLog(impl_->access_log.get());
  }
  impl_->admin = std::make_unique<AdminServer>(impl_->runtime, *impl_->workers, impl_->lifecycle,
                                               impl_->access_log.get());
  return impl_->admin->Start(impl_->io, s);
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
    drain_deadline = std::chrono::steady_clock::now() + time;
    WaitForSessions();
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
