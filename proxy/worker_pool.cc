#include "proxy/worker_pool.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include <algorithm>
#include <atomic>
#include <ctime>
#include <thread>
#include <unordered_set>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

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

bool IsResourceExhaustion(int err) { return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM; }

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

// TCP_DEFER_ACCEPT's wait, in seconds (Linux rounds it to SYN-ACK
// retransmits: 1 s is one). Hello timeouts under it still hold: a client
// silent for the whole wait is closed as hello_timeout at accept
// (Session::ChargeDeferredWait).
constexpr int kDeferAcceptSeconds = 1;

// Set once on each listening socket; Linux copies TCP_NODELAY and
// SO_OOBINLINE to every socket accept() returns from it (the child is a
// copy of the listener: sk_clone_lock), so no accepted socket needs a
// setsockopt of its own. TCP_NODELAY: we relay, the endpoints decide
// batching. SO_OOBINLINE: urgent data is part of the byte stream we must
// forward exactly. TCP_DEFER_ACCEPT: accept() returns a connection once its
// first bytes (the ClientHello) are there, so the session reads it at once.
void PrepareListener(int fd) {
  const int one = 1;
  const int defer = kDeferAcceptSeconds;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  ::setsockopt(fd, SOL_SOCKET, SO_OOBINLINE, &one, sizeof one);
  ::setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &defer, sizeof defer);
}

}  // namespace

// Member order matters: the reactor is destroyed after everything that
// registered with it, and sessions are gone (Shutdown) before the state they
// point at (stats, pipes, balancers).
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
    ctx.reactor = &reactor;
    ctx.defer_accept = std::chrono::seconds(kDeferAcceptSeconds);
    acked.store(ctx.routes->snapshot->version, std::memory_order_relaxed);
    acked_sequence.store(ctx.routes->snapshot->sequence, std::memory_order_relaxed);
  }
  ~Worker() {
    for (auto& l : listeners) l->Close();
  }

  // One listening socket of this worker: usually one; more after a takeover
  // from a process that had more workers (README "Upgrades").
  struct Listener final : Pollable {
    Listener(Worker& w, int fd) : worker(w), fd(fd), backoff([this] { worker.AcceptAll(*this); }) {}
    void OnEvents(unsigned, uint32_t) override { worker.AcceptAll(*this); }
    void Watch() {
      handle = worker.reactor.Register(this);
      if (const int err = worker.reactor.Add(fd, handle, 0); err != 0) {
        spdlog::error("worker {}: cannot watch listener fd {}: {}; this worker accepts nothing", worker.ctx.worker_index,
                      fd, std::strerror(err));
      }
    }
    // The socket may live on in another process (a takeover): leave epoll
    // explicitly, since our close() would not end the registration then.
    void Close() {
      if (fd < 0) return;
      worker.reactor.Cancel(backoff);
      worker.reactor.Unregister(handle);
      worker.reactor.Remove(fd);
      ::close(fd);
      fd = -1;
    }
    Worker& worker;
    int fd;
    Reactor::Handle handle;
    Reactor::FunctionTimer backoff;
  };

  // Edge-triggered: accepts until the queue is empty, a few dozen at a time
  // so a connection flood cannot starve open sessions; then goes on next turn.
  void AcceptAll(Listener& l) {
    for (int i = 0; i < kAcceptsPerTurn; ++i) {
      if (l.fd < 0) return;
      tcp::endpoint peer;
      socklen_t len = static_cast<socklen_t>(peer.capacity());
      // The peer's address comes with accept(): no getpeername per connection.
      const int fd = ::accept4(l.fd, peer.data(), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return;
        if (!OnAcceptError(l, errno)) return;
        continue;
      }
      peer.resize(len);
      OnAccept(fd, peer);
    }
    reactor.Defer([this, &l] { AcceptAll(l); });
  }

  void OnAccept(int fd, const tcp::endpoint& peer) {
    // Overload protection, before any byte is read (proxy/admission.h). A
    // trusted PROXY protocol source is the load balancer: its per-source
    // count waits for the client address in its header (Session).
    const SourceTable::Key source = SourceKey(peer.address());
    const bool proxied = ctx.routes->settings.proxy_protocol.Trusts(source);
    Admission::Decision d = admission.Admit(source, ctx.routes->settings.limits, Admission::Clock::now(), proxied);
    if (d.refused) return Refuse(fd, peer, *d.refused);
    (new Session(fd, peer, ctx, std::move(d.ticket)))->Start();
  }

  // Closed at once with a RST (SO_LINGER 0): nothing was read, the client
  // learns at once (ECONNRESET, not an EOF that looks like a server that
  // went away after the hello), and no FIN_WAIT/TIME_WAIT state is left per
  // refused connection during a flood. HAProxy's `tcp-request connection
  // reject` also closes before reading anything.
  void Refuse(int fd, const tcp::endpoint& peer, Refusal why) {
    stats.refused[static_cast<size_t>(why)].Inc();
    const linger reset{1, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
    ::close(fd);
    if (ctx.access_log != nullptr && ctx.access_log->Sample(ctx.worker_index)) {
      ctx.access_log->Submit(ctx.worker_index, RefusedLine(peer, why));
    }
    uint64_t suppressed = 0;
    if (limiter.Allow(suppressed)) {
      spdlog::info("{} refused at accept: {}{}", io::FormatEndpoint(peer), ToString(why),
                   suppressed == 0 ? std::string() : fmt::format(" ({} similar lines suppressed)", suppressed));
    }
  }

  // True: accept again now. Out of descriptors: back off instead of spinning
  // on the same error, and accept again when the backoff ends.
  bool OnAcceptError(Listener& l, int err) {
    stats.accept_errors.Inc();
    uint64_t suppressed = 0;
    // Its own limiter: a persistent error (descriptors exhausted) repeats
    // every backoff, and would otherwise log ten lines a second per worker.
    if (accept_log.Allow(suppressed)) {
      spdlog::warn("accept failed: {}{}", std::strerror(err),
                   suppressed == 0 ? std::string() : fmt::format(" ({} more since the last report)", suppressed));
    }
    if (!IsResourceExhaustion(err)) return true;
    reactor.Arm(l.backoff, Reactor::Clock::now() + std::chrono::milliseconds(100));
    return false;
  }

  // Stops accepting: the listeners close; a socket another process also
  // holds (a takeover) keeps its queue there.
  void CloseListeners() {
    for (auto& l : listeners) l->Close();
  }

  void Install(std::shared_ptr<WorkerRoutes> routes) {
    const uint64_t version = routes->snapshot->version;
    const uint64_t sequence = routes->snapshot->sequence;
    ctx.routes = std::move(routes);
    acked.store(version, std::memory_order_release);
    acked_sequence.store(sequence, std::memory_order_release);
  }

  void Run() {
    for (auto& l : listeners) l->Watch();
    sweep.Start();
    if (ctx.worker_index == 0) SampleMemory();
    thread = std::thread([this] {
      reactor.Run();
      Shutdown();
    });
  }

  // Open sessions close (uncounted); then the reactor runs what is deferred
  // (the sessions' deletes) once more.
  void Shutdown() {
    CloseListeners();
    const std::vector<Session*> open(live.begin(), live.end());
    for (Session* session : open) session->Abandon();
    reactor.RunOnce(Reactor::Clock::duration::zero());
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
    reactor.Arm(memory_timer, Reactor::Clock::now() + kMemorySampleInterval);
  }

  static constexpr int kAcceptsPerTurn = 64;
  Reactor reactor;
  ProxyStats stats;
  PipePool pipes;
  LogLimiter limiter;
  LogLimiter accept_log{0.2, 1};  // accept errors: one line per 5 s
  Admission& admission;            // shared by every worker
  LiveSessions live;               // this worker's open sessions
  WorkerContext ctx;
  std::atomic<uint64_t> acked{0};           // the snapshot's config version installed
  std::atomic<uint64_t> acked_sequence{0};  // the snapshot's sequence installed
  std::vector<std::unique_ptr<Listener>> listeners;
  Reactor::FunctionTimer memory_timer{[this] { SampleMemory(); }};  // worker 0 only
  SessionSweep sweep{reactor, ctx};  // idle timeouts and max connection durations
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
  const int fd = ::socket(target.protocol().family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return error_code(errno, boost::system::system_category());
  const int one = 1;
  if (::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
      ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0 ||
      ::bind(fd, target.data(), static_cast<socklen_t>(target.size())) != 0 || ::listen(fd, SOMAXCONN) != 0) {
    const error_code ec(errno, boost::system::system_category());
    ::close(fd);
    return ec;
  }
  PrepareListener(fd);
  w.listeners.push_back(std::make_unique<Worker::Listener>(w, fd));
  return {};
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
    listener_fds_.push_back(w->listeners.back()->fd);
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
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (::getsockname(fds[i], reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
      return absl::UnavailableError(fmt::format("cannot adopt listener fd {}: {}", fds[i], std::strerror(errno)));
    }
    if (ss.ss_family != AF_INET && ss.ss_family != AF_INET6) {
      return absl::UnavailableError(fmt::format("cannot adopt listener fd {}: not a TCP/IP socket", fds[i]));
    }
    std::memcpy(target.data(), &ss, len);
    target.resize(len);
    // The previous process set these too; setting them again costs nothing
    // and covers one that did not (an older version).
    const int flags = ::fcntl(fds[i], F_GETFL);
    if (flags >= 0) ::fcntl(fds[i], F_SETFL, flags | O_NONBLOCK);
    PrepareListener(fds[i]);
    w.listeners.push_back(std::make_unique<Worker::Listener>(w, fds[i]));
    listener_fds_.push_back(fds[i]);
  }
  for (size_t i = fds.size(); i < workers_.size(); ++i) {
    if (error_code ec = AddListener(*workers_[i], target)) {
      return absl::UnavailableError(
          fmt::format("cannot add a listener on {} to the group: {}", io::FormatEndpoint(target), ec.message()));
    }
    listener_fds_.push_back(workers_[i]->listeners.back()->fd);
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
    worker->reactor.Post([worker, snapshot] {
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
    worker->reactor.Post([worker, share] { worker->pipes.SetMaxOpen(share); });
  }
}

void WorkerPool::CloseListeners() {
  listeners_closed_ = true;
  for (auto& w : workers_) {
    Worker* worker = w.get();
    worker->reactor.Post([worker] { worker->CloseListeners(); });
  }
}

void WorkerPool::DrainSessions() {
  for (auto& w : workers_) {
    Worker* worker = w.get();
    worker->reactor.Post([worker] {
      const std::vector<Session*> open(worker->live.begin(), worker->live.end());
      for (Session* session : open) session->Drain();
    });
  }
}

void WorkerPool::Stop() {
  listeners_closed_ = true;
  for (auto& w : workers_) {
    Worker* worker = w.get();
    // Posted, so it runs after what was posted before it (a drain's closes,
    // which count and log each session as drained); then the worker thread
    // closes what is still open (Worker::Shutdown).
    worker->reactor.Post([worker] { worker->reactor.Stop(); });
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
