#include "proxy/worker_pool.h"

#include <signal.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <ctime>
#include <thread>
#include <unordered_set>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include "base/address.h"
#include "base/io/endpoint.h"
#include "fmt/format.h"
#include "proxy/access_log.h"
#include "proxy/session.h"
#include "proxy/session_sweep.h"
#include "spdlog/spdlog.h"

namespace meshgate::proxy {
namespace asio = boost::asio;
using asio::ip::tcp;
using boost::system::error_code;

namespace {

using ReusePort = asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;

bool IsResourceExhaustion(const error_code& ec) {
  const int v = ec.value();
  return v == EMFILE || v == ENFILE || v == ENOBUFS || v == ENOMEM;
}

// maxPipes is for the whole gateway: each worker gets its share.
size_t PipeShare(int64_t max_pipes, size_t workers) {
  return max_pipes < 0 ? SIZE_MAX : static_cast<size_t>(max_pipes) / workers;
}

absl::StatusOr<tcp::endpoint> ParseListen(const std::string& listen) {
  auto parsed = base::ParseListenAddress(listen);
  if (!parsed.ok()) return parsed.status();
  error_code ec;
  const auto address = asio::ip::make_address(parsed->ip, ec);
  if (ec) return absl::InvalidArgumentError(fmt::format("listen address \"{}\": bad IP", listen));
  return tcp::endpoint(address, parsed->port);
}

// The per-source key: IPv4 as IPv4-mapped IPv6, so one address has one key.
SourceTable::Key SourceKey(const asio::ip::address& address) {
  if (address.is_v6()) return address.to_v6().to_bytes();
  return asio::ip::make_address_v6(asio::ip::v4_mapped, address.to_v4()).to_bytes();
}

// The access-log line of a connection refused at accept: the session line's
// fields, with nothing read and "termination":"refused_<reason>".
std::string RefusedLine(const tcp::endpoint& peer, Refusal why) {
  const auto now = std::chrono::system_clock::now();
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  const std::time_t seconds = static_cast<std::time_t>(ms / 1000);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  return fmt::format(
      "{{\"start_time\":\"{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z\",\"duration_ms\":0,"
      "\"downstream_remote_address\":{},\"sni\":null,\"alpn\":[],\"cluster\":null,\"upstream_host\":null,"
      "\"connect_attempts\":0,\"bytes_received\":0,\"bytes_sent\":0,\"termination\":\"refused_{}\"}}",
      utc.tm_year + 1900, utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec, ms % 1000,
      JsonString(io::FormatEndpoint(peer)), ToString(why));
}

// How often worker 0 samples the RSS against limits.memory: Envoy's overload
// manager example uses refresh_interval 0.25s. One read of /proc/self/statm.
constexpr auto kMemorySampleInterval = std::chrono::milliseconds(250);

}  // namespace

// Member order matters: the io_context is destroyed before the state its
// pending sessions point at (stats, pipes, balancers).
struct Worker {
  Worker(std::shared_ptr<WorkerRoutes> routes, size_t index, size_t max_pipes, Admission& admission)
      : pipes(64, max_pipes), admission(admission) {
    ctx.routes = std::move(routes);
    ctx.worker_index = index;
    ctx.live = &live;
    ctx.stats = &stats;
    ctx.pipes = &pipes;
    ctx.log_limiter = &limiter;
    ctx.admission = &admission;
    acked.store(ctx.routes->snapshot->version, std::memory_order_relaxed);
    acked_sequence.store(ctx.routes->snapshot->sequence, std::memory_order_relaxed);
  }

  // One listening socket of this worker: usually one; more after a takeover
  // from a process that had more workers (README "Upgrades").
  struct Listener {
    explicit Listener(asio::io_context& io) : acceptor(io), backoff(io) {}
    tcp::acceptor acceptor;
    asio::steady_timer backoff;
    tcp::endpoint peer;  // filled by each accept
  };

  void DoAccept(Listener& l) {
    // The peer's address comes with accept(): no getpeername per connection.
    l.acceptor.async_accept(io, l.peer, [this, &l](const error_code& ec, Socket socket) {
      OnAccept(l, ec, std::move(socket));
    });
  }

  void OnAccept(Listener& l, const error_code& ec, Socket socket) {
    if (ec == asio::error::operation_aborted || !l.acceptor.is_open()) return;
    if (ec) return OnAcceptError(l, ec);
    // Overload protection, before any byte is read (proxy/admission.h). A
    // trusted PROXY protocol source is the load balancer: its per-source
    // count waits for the client address in its header (Session).
    const SourceTable::Key source = SourceKey(l.peer.address());
    const bool proxied = ctx.routes->settings.proxy_protocol.Trusts(source);
    Admission::Decision d = admission.Admit(source, ctx.routes->settings.limits, Admission::Clock::now(), proxied);
    if (d.refused) {
      Refuse(socket, l.peer, *d.refused);
    } else {
      std::make_shared<Session>(std::move(socket), l.peer, ctx, std::move(d.ticket))->Start();
    }
    DoAccept(l);
  }

  // Closed at once with a RST (SO_LINGER 0): nothing was read, the client
  // learns at once (ECONNRESET, not an EOF that looks like a server that
  // went away after the hello), and no FIN_WAIT/TIME_WAIT state is left per
  // refused connection during a flood. HAProxy's `tcp-request connection
  // reject` also closes before reading anything.
  void Refuse(Socket& socket, const tcp::endpoint& peer, Refusal why) {
    stats.refused[static_cast<size_t>(why)].Inc();
    error_code ignored;
    socket.set_option(asio::socket_base::linger(true, 0), ignored);
    socket.close(ignored);
    if (ctx.access_log != nullptr && ctx.access_log->Sample(ctx.worker_index)) {
      ctx.access_log->Submit(ctx.worker_index, RefusedLine(peer, why));
    }
    uint64_t suppressed = 0;
    if (limiter.Allow(suppressed)) {
      spdlog::info("{} refused at accept: {}{}", io::FormatEndpoint(peer), ToString(why),
                   suppressed == 0 ? std::string() : fmt::format(" ({} similar lines suppressed)", suppressed));
    }
  }

  void OnAcceptError(Listener& l, const error_code& ec) {
    stats.accept_errors.Inc();
    uint64_t suppressed = 0;
    // Its own limiter: a persistent error (descriptors exhausted) repeats
    // every backoff, and would otherwise log ten lines a second per worker.
    if (accept_log.Allow(suppressed)) {
      spdlog::warn("accept failed: {}{}", ec.message(),
                   suppressed == 0 ? std::string() : fmt::format(" ({} more since the last report)", suppressed));
    }
    if (!IsResourceExhaustion(ec)) return DoAccept(l);
    // Out of descriptors: back off instead of spinning on the same error.
    l.backoff.expires_after(std::chrono::milliseconds(100));
    l.backoff.async_wait([this, &l](const error_code& e) {
      if (!e && l.acceptor.is_open()) DoAccept(l);
    });
  }

  // Stops accepting: the acceptors close; a socket another process also
  // holds (a takeover) keeps its queue there.
  void CloseListeners() {
    for (auto& l : listeners) {
      error_code ignored;
      l->acceptor.close(ignored);
      l->backoff.cancel();
    }
  }

  void Install(std::shared_ptr<WorkerRoutes> routes) {
    const uint64_t version = routes->snapshot->version;
    const uint64_t sequence = routes->snapshot->sequence;
    ctx.routes = std::move(routes);
    acked.store(version, std::memory_order_release);
    acked_sequence.store(sequence, std::memory_order_release);
  }

  void Run() {
    for (auto& l : listeners) DoAccept(*l);
    sweep.Start();
    if (ctx.worker_index == 0) SampleMemory();
    thread = std::thread([this] { io.run(); });
  }

  // Worker 0 samples the RSS for limits.memory (its snapshot's; the others
  // install the same one) and logs each crossing.
  void SampleMemory() {
    const uint64_t limit = ctx.routes->settings.limits.memory_bytes;
    const bool was_over = admission.memory().over();
    admission.RecordMemory(limit == 0 ? 0 : ResidentBytes(), limit);
    const MemoryState now = admission.memory();
    if (now.over() != was_over) {
      if (now.over()) {
        spdlog::warn("memory: RSS {} bytes over limits.memory {}: refusing new connections", now.rss_bytes, limit);
      } else {
        spdlog::info("memory: RSS back within limits.memory ({}): accepting again", limit == 0 ? "off" : std::to_string(limit));
      }
    }
    memory_timer.expires_after(kMemorySampleInterval);
    memory_timer.async_wait([this](const error_code& e) {
      if (!e) SampleMemory();
    });
  }

  ProxyStats stats;
  PipePool pipes;
  LogLimiter limiter;
  LogLimiter accept_log{0.2, 1};  // accept errors: one line per 5 s
  Admission& admission;            // shared by every worker
  std::unordered_set<Session*> live;  // this worker's open sessions
  WorkerContext ctx;
  std::atomic<uint64_t> acked{0};           // the snapshot's config version installed
  std::atomic<uint64_t> acked_sequence{0};  // the snapshot's sequence installed
  asio::io_context io{1};
  std::vector<std::unique_ptr<Listener>> listeners;
  asio::steady_timer memory_timer{io};  // worker 0 only
  SessionSweep sweep{io, ctx};  // idle timeouts and max connection durations
  std::thread thread;
};

WorkerPool::WorkerPool(int threads, int64_t max_pipes, std::shared_ptr<const Snapshot> first)
    : admission_(std::make_unique<Admission>()) {
  // splice(2) into a socket the peer has reset raises SIGPIPE; we want EPIPE.
  signal(SIGPIPE, SIG_IGN);
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const size_t share = PipeShare(max_pipes, threads);
  for (int i = 0; i < threads; ++i) {
    // Each worker builds its own balancers, so each gets its own WorkerRoutes.
    workers_.push_back(std::make_unique<Worker>(std::make_shared<WorkerRoutes>(first), static_cast<size_t>(i), share,
                                                *admission_));
  }
}

WorkerPool::~WorkerPool() {
  Stop();
  Join();
}

namespace {

// One more member of the SO_REUSEPORT group at `target` for worker `w`.
error_code AddListener(Worker& w, const tcp::endpoint& target) {
  auto l = std::make_unique<Worker::Listener>(w.io);
  error_code ec;
  l->acceptor.open(target.protocol(), ec);
  if (!ec) l->acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) l->acceptor.set_option(ReusePort(true), ec);
  if (!ec) l->acceptor.bind(target, ec);
  if (!ec) l->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return ec;
  w.listeners.push_back(std::move(l));
  return ec;
}

}  // namespace

absl::Status WorkerPool::Bind(const std::string& listen) {
  auto endpoint = ParseListen(listen);
  if (!endpoint.ok()) return endpoint.status();
  tcp::endpoint target = *endpoint;
  // SO_REUSEPORT would let us silently share a port with another running
  // gateway; a plain bind first tells "in use" apart from "ours". The probe
  // stays bound until the workers are, so port 0 cannot be taken meanwhile.
  // (A takeover, Adopt(), skips this on purpose: the sockets are handed over.)
  asio::io_context probe_io{1};
  tcp::acceptor probe(probe_io);
  error_code ec;
  probe.open(target.protocol(), ec);
  if (!ec) probe.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) probe.bind(target, ec);
  if (ec) return absl::UnavailableError(fmt::format("cannot listen on {}: {}", listen, ec.message()));
  if (target.port() == 0) target = probe.local_endpoint(ec);
  for (auto& w : workers_) {
    if ((ec = AddListener(*w, target))) {
      return absl::UnavailableError(fmt::format("cannot listen on {}: {}", io::FormatEndpoint(target), ec.message()));
    }
    listener_fds_.push_back(w->listeners.back()->acceptor.native_handle());
  }
  bound_ = io::FormatEndpoint(target);
  return absl::OkStatus();
}

// Every handed-over socket is kept open: closing a member of an SO_REUSEPORT
// group drops the connections queued on it (the kernel hashes each new
// connection to one member's queue), so with fewer workers than sockets a
// worker accepts from several, and with more, new members join the group.
absl::Status WorkerPool::Adopt(const std::vector<int>& fds) {
  if (fds.empty()) return absl::InvalidArgumentError("no listening socket to adopt");
  tcp::endpoint target;
  for (size_t i = 0; i < fds.size(); ++i) {
    Worker& w = *workers_[i % workers_.size()];
    auto l = std::make_unique<Worker::Listener>(w.io);
    error_code ec;
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    getsockname(fds[i], reinterpret_cast<sockaddr*>(&ss), &len);
    l->acceptor.assign(ss.ss_family == AF_INET6 ? tcp::v6() : tcp::v4(), fds[i], ec);
    if (!ec) target = l->acceptor.local_endpoint(ec);
    if (ec) return absl::UnavailableError(fmt::format("cannot adopt listener fd {}: {}", fds[i], ec.message()));
    listener_fds_.push_back(fds[i]);
    w.listeners.push_back(std::move(l));
  }
  for (size_t i = fds.size(); i < workers_.size(); ++i) {
    if (error_code ec = AddListener(*workers_[i], target)) {
      return absl::UnavailableError(
          fmt::format("cannot add a listener on {} to the group: {}", io::FormatEndpoint(target), ec.message()));
    }
    listener_fds_.push_back(workers_[i]->listeners.back()->acceptor.native_handle());
  }
  bound_ = io::FormatEndpoint(target);
  return absl::OkStatus();
}

void WorkerPool::SetAccessLog(AccessLog* log) {
  for (auto& w : workers_) w->ctx.access_log = log;
}

void WorkerPool::Start() {
  for (auto& w : workers_) w->Run();
}

void WorkerPool::Publish(std::shared_ptr<const Snapshot> snapshot) {
  for (auto& w : workers_) {
    Worker* worker = w.get();
    // Built on the worker, from its current routes: the balancers of every
    // cluster the update left alone carry over, and the control thread pays
    // nothing per cluster.
    asio::post(worker->io, [worker, snapshot] {
      worker->Install(std::make_shared<WorkerRoutes>(snapshot, worker->ctx.routes.get()));
    });
  }
}

uint64_t WorkerPool::Lowest(std::atomic<uint64_t> Worker::*acknowledged) const {
  uint64_t lowest = UINT64_MAX;
  for (const auto& w : workers_) lowest = std::min(lowest, ((*w).*acknowledged).load(std::memory_order_acquire));
  return workers_.empty() ? 0 : lowest;
}

uint64_t WorkerPool::acked_version() const { return Lowest(&Worker::acked); }
uint64_t WorkerPool::acked_sequence() const { return Lowest(&Worker::acked_sequence); }

void WorkerPool::SetMaxPipes(int64_t max_pipes) {
  const size_t share = PipeShare(max_pipes, workers_.size());
  for (auto& w : workers_) {
    Worker* worker = w.get();
    asio::post(worker->io, [worker, share] { worker->pipes.SetMaxOpen(share); });
  }
}

void WorkerPool::CloseListeners() {
  listeners_closed_ = true;
  for (auto& w : workers_) {
    Worker* worker = w.get();
    asio::post(worker->io, [worker] { worker->CloseListeners(); });
  }
}

void WorkerPool::DrainSessions() {
  for (auto& w : workers_) {
    Worker* worker = w.get();
    asio::post(worker->io, [worker] {
      const std::vector<Session*> open(worker->live.begin(), worker->live.end());
      for (Session* session : open) session->Drain();
    });
  }
}

void WorkerPool::Stop() {
  listeners_closed_ = true;
  for (auto& w : workers_) {
    Worker* worker = w.get();
    // Stop accepting, then stop the loop. Destroying the io_context destroys
    // the pending handlers, the only owners of open sessions, which closes them.
    asio::post(worker->io, [worker] {
      worker->CloseListeners();
      worker->io.stop();
    });
  }
}

void WorkerPool::Join() {
  for (auto& w : workers_) {
    if (w->thread.joinable()) w->thread.join();
  }
}

std::vector<int> WorkerPool::listener_fds() const {
  return listeners_closed_ ? std::vector<int>() : listener_fds_;
}

uint64_t WorkerPool::open_sessions() const {
  uint64_t open = 0;
  for (const auto& w : workers_) open += w->stats.downstream_cx_active.value();
  return open;
}

std::vector<const ProxyStats*> WorkerPool::stats() const {
  std::vector<const ProxyStats*> all;
  for (const auto& w : workers_) all.push_back(&w->stats);
  return all;
}

}  // namespace meshgate::proxy
