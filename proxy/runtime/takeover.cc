#include "proxy/runtime/takeover.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <charconv>
#include <chrono>
#include <cstring>
#include <sstream>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>

#include "base/address.h"
#include "fmt/format.h"
#include "spdlog/spdlog.h"

namespace meshgate::proxy {
namespace asio = boost::asio;
using boost::system::error_code;

namespace {

constexpr char kHello[] = "meshgate-takeover/1";
constexpr int kExchangeTimeoutMs = 5000;
// How long the old process waits for "taken": the successor loads its
// config and starts its workers meanwhile.
constexpr auto kTakenTimeout = std::chrono::seconds(60);
constexpr size_t kMaxListeners = 1024;

// "key=value" in a space-separated line, or "".
std::string Field(const std::string& line, const std::string& key) {
  std::istringstream in(line);
  std::string word;
  while (in >> word) {
    if (word.rfind(key + "=", 0) == 0) return word.substr(key.size() + 1);
  }
  return "";
}

}  // namespace

const char* TakeoverFailureName(TakeoverFailure failure) {
  switch (failure) {
    case TakeoverFailure::kNoSocket: return "no_socket";
    case TakeoverFailure::kStaleSocket: return "stale_socket";
    case TakeoverFailure::kForeignSocket: return "foreign_socket";
    case TakeoverFailure::kBrokenExchange: return "broken_exchange";
    case TakeoverFailure::kAddressChanged: return "address_changed";
    case TakeoverFailure::kNotConfirmed: return "not_confirmed";
    case TakeoverFailure::kPeerUid: return "peer_uid";
    case TakeoverFailure::kBusy: return "busy";
    case TakeoverFailure::kDraining: return "draining";
    case TakeoverFailure::kAbandoned: return "abandoned";
    case TakeoverFailure::kCount: break;
  }
  return "unknown";
}

void TakeoverCounters::Count(std::array<std::atomic<uint64_t>, kTakeoverRoles.size()>& by_role,
                             const std::string& role) {
  for (size_t i = 0; i < kTakeoverRoles.size(); ++i) {
    if (role == kTakeoverRoles[i]) ++by_role[i];
  }
}

bool SameListenAddress(const std::string& configured, const std::string& actual) {
  auto want = base::ParseListenAddress(configured);
  auto got = base::ParseListenAddress(actual);
  if (!want.ok() || !got.ok()) return false;
  error_code e1, e2;
  const auto a = asio::ip::make_address(want->ip, e1);
  const auto b = asio::ip::make_address(got->ip, e2);
  return !e1 && !e2 && a == b && (want->port == 0 || want->port == got->port);
}

// ---------------------------------------------------------------- new side

namespace {
TakeoverFailure FailureOf(io::ConnectFailure failure) {
  switch (failure) {
    case io::ConnectFailure::kMissing: return TakeoverFailure::kNoSocket;
    case io::ConnectFailure::kStale: return TakeoverFailure::kStaleSocket;
    case io::ConnectFailure::kForeignOwner: return TakeoverFailure::kForeignSocket;
    default: return TakeoverFailure::kBrokenExchange;  // not a socket, or connect failed otherwise
  }
}
}  // namespace

std::unique_ptr<TakeoverClient> TakeoverClient::Connect(const std::string& path, TakeoverCounters* counters) {
  TakeoverCounters unused;
  TakeoverCounters& tally = counters != nullptr ? *counters : unused;
  io::UnixConnection c = io::ConnectUnixSeqpacket(path);
  if (!c.fd.valid()) {
    tally.Fail(FailureOf(c.failure));
    spdlog::warn("takeover: not taking over: {}; starting with a normal bind", c.error);
    return nullptr;
  }
  auto client = std::unique_ptr<TakeoverClient>(new TakeoverClient());
  client->counters_ = counters;
  client->socket_ = std::move(c.fd);
  client->old_pid_ = c.peer_pid;
  auto hello = io::ReceiveMessage(client->socket_.get(), kExchangeTimeoutMs);
  const std::string count = hello.ok() ? Field(hello->text, "listeners") : "";
  size_t n = 0;
  const auto parsed = std::from_chars(count.data(), count.data() + count.size(), n);
  if (!hello.ok() || hello->text.rfind(kHello, 0) != 0 || parsed.ec != std::errc() ||
      parsed.ptr != count.data() + count.size() || n == 0 || n > kMaxListeners) {
    tally.Fail(TakeoverFailure::kBrokenExchange);
    spdlog::warn("takeover: pid {} at {} did not offer its listeners ({}); starting with a normal bind", c.peer_pid,
                 path, hello.ok() ? "unexpected \"" + hello->text.substr(0, 64) + "\"" : std::string(hello.status().message()));
    return nullptr;
  }
  for (size_t i = 0; i < n; ++i) {
    auto m = io::ReceiveMessage(client->socket_.get(), kExchangeTimeoutMs);
    HandedListener l;
    std::istringstream in(m.ok() ? m->text : "");
    std::string word;
    if (!m.ok() || !(in >> word >> l.role >> l.index >> l.address) || word != "listener" || !m->fd.valid()) {
      spdlog::warn("takeover: listener {} of {} from pid {} is broken ({}); starting with a normal bind", i + 1, n,
                   c.peer_pid, m.ok() ? "\"" + m->text.substr(0, 64) + "\"" : std::string(m.status().message()));
      tally.Fail(TakeoverFailure::kBrokenExchange);
      return nullptr;  // everything received so far closes with `client`
    }
    l.owned = std::move(m->fd);
    l.fd = l.owned.get();
    client->listeners_.push_back(std::move(l));
  }
  client->received_ = n;
  for (const HandedListener& l : client->listeners_) TakeoverCounters::Count(tally.received, l.role);
  spdlog::info("takeover: received {} listening socket(s) from pid {} at {}", n, c.peer_pid, path);
  return client;
}

std::vector<io::UniqueFd> TakeoverClient::Take(const std::string& role, const std::string& configured) {
  std::vector<io::UniqueFd> out;
  for (HandedListener& l : listeners_) {
    if (l.role != role || !l.owned.valid()) continue;
    // Checked on the socket itself, not on what the old process said.
    auto actual = io::ListeningTcpAddress(l.owned.get());
    if (!actual.ok() || !SameListenAddress(configured, *actual)) {
      spdlog::warn("takeover: the old {} listener ({}) does not match the configured {}: binding {} anew", role,
                   actual.ok() ? *actual : std::string(actual.status().message()), configured, configured);
      l.owned.Reset();
      if (counters_ != nullptr) counters_->Fail(TakeoverFailure::kAddressChanged);
      continue;
    }
    out.push_back(std::move(l.owned));
  }
  return out;
}

absl::Status TakeoverClient::Complete(int timeout_ms) {
  absl::Status status = Confirm(timeout_ms);
  if (!status.ok() && counters_ != nullptr) counters_->Fail(TakeoverFailure::kNotConfirmed);
  return status;
}

absl::Status TakeoverClient::Confirm(int timeout_ms) {
  listeners_.clear();  // whatever was not taken is closed
  std::string error;
  if (!io::SendMessage(socket_.get(), "taken", -1, error)) {
    return absl::UnavailableError(fmt::format("sending \"taken\" to pid {}: {}", old_pid_, error));
  }
  auto reply = io::ReceiveMessage(socket_.get(), timeout_ms);
  socket_.Reset();
  if (!reply.ok()) return absl::UnavailableError(fmt::format("pid {}: {}", old_pid_, std::string(reply.status().message())));
  if (reply->text != "released") return absl::UnavailableError(fmt::format("pid {} answered \"{}\"", old_pid_, reply->text.substr(0, 64)));
  return absl::OkStatus();
}

// ---------------------------------------------------------------- old side

struct TakeoverServer::Impl : std::enable_shared_from_this<TakeoverServer::Impl> {
  Impl(asio::io_context& io, io::UniqueFd fd, std::string path, Hooks hooks, TakeoverCounters* counters)
      : listener(io, fd.Release()),
        peer(io),
        deadline(io),
        path(std::move(path)),
        hooks(std::move(hooks)),
        counters(counters != nullptr ? counters : &own_counters) {}

  void WaitPeer();
  void OnPeer();
  bool Offer(int fd, pid_t pid);
  void WaitTaken();
  void OnTaken();
  void Abandon(const std::string& why);
  void Close();

  asio::posix::stream_descriptor listener;
  asio::posix::stream_descriptor peer;  // the successor, while one is connected
  asio::steady_timer deadline;
  pid_t peer_pid = 0;
  std::string path;
  struct stat created {};  // the socket file we made: removed only if still this one
  Hooks hooks;
  Stats stats;
  TakeoverCounters own_counters;  // when the caller passes none
  TakeoverCounters* counters;
  bool closed = false;
};

void TakeoverServer::Impl::WaitPeer() {
  listener.async_wait(asio::posix::descriptor_base::wait_read, [self = shared_from_this()](const error_code& ec) {
    if (!ec && !self->closed) self->OnPeer();
  });
}

void TakeoverServer::Impl::OnPeer() {
  io::UniqueFd fd(::accept4(listener.native_handle(), nullptr, nullptr, SOCK_CLOEXEC));
  if (!fd.valid()) return WaitPeer();
  const auto cred = io::PeerOf(fd.get());
  if (!cred || !io::TrustedUid(cred->uid)) {
    ++stats.refused_uid;
    counters->Fail(TakeoverFailure::kPeerUid);
    spdlog::warn("takeover: refused pid {}: uid {} is neither ours ({}) nor root", cred ? cred->pid : 0,
                 cred ? static_cast<long>(cred->uid) : -1L, geteuid());
    return WaitPeer();
  }
  if (peer.is_open()) {
    ++stats.refused_busy;
    counters->Fail(TakeoverFailure::kBusy);
    spdlog::warn("takeover: refused pid {}: pid {} is taking over already", cred->pid, peer_pid);
    return WaitPeer();
  }
  if (!Offer(fd.get(), cred->pid)) return WaitPeer();
  peer_pid = cred->pid;
  peer.assign(fd.Release());
  WaitTaken();
  WaitPeer();
}

// Sends the hello and every listener; blocking with a send timeout (the
// messages are small and few; the successor reads them at once).
bool TakeoverServer::Impl::Offer(int fd, pid_t pid) {
  const std::vector<HandedListener> offered = hooks.listeners();
  if (offered.empty()) {
    ++stats.refused_draining;
    counters->Fail(TakeoverFailure::kDraining);
    spdlog::warn("takeover: refused pid {}: draining, nothing to hand over", pid);
    return false;
  }
  timeval tv{kExchangeTimeoutMs / 1000, 0};
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  std::string error;
  bool ok = io::SendMessage(fd, fmt::format("{} pid={} listeners={}", kHello, getpid(), offered.size()), -1, error);
  for (size_t i = 0; ok && i < offered.size(); ++i) {
    const HandedListener& l = offered[i];
    ok = io::SendMessage(fd, fmt::format("listener {} {} {}", l.role, l.index, l.address), l.fd, error);
  }
  if (!ok) {
    ++stats.abandoned;
    counters->Fail(TakeoverFailure::kAbandoned);
    spdlog::warn("takeover: handing over to pid {} failed: {}; still serving", pid, error);
    return false;
  }
  for (const HandedListener& l : offered) TakeoverCounters::Count(counters->handed, l.role);
  spdlog::info("takeover: handed {} listening socket(s) to pid {}; accepting until it has taken them", offered.size(),
               pid);
  return true;
}

void TakeoverServer::Impl::WaitTaken() {
  deadline.expires_after(kTakenTimeout);
  deadline.async_wait([self = shared_from_this()](const error_code& ec) {
    if (!ec && self->peer.is_open()) self->Abandon("no \"taken\" within 60 s");
  });
  peer.async_wait(asio::posix::descriptor_base::wait_read, [self = shared_from_this()](const error_code& ec) {
    if (!ec && !self->closed) self->OnTaken();
  });
}

void TakeoverServer::Impl::OnTaken() {
  auto message = io::ReceiveMessage(peer.native_handle(), 0);
  if (!message.ok() || message->text != "taken") {
    return Abandon(message.ok() ? "unexpected \"" + message->text.substr(0, 64) + "\""
                                : std::string(message.status().message()));
  }
  deadline.cancel();
  ++stats.completed;
  ++counters->completed;
  hooks.on_taken(peer_pid);
  const int fd = peer.release();
  Close();  // before "released": the successor then makes its own socket at `path`
  std::string error;
  if (!io::SendMessage(fd, "released", -1, error)) spdlog::warn("takeover: telling pid {}: {}", peer_pid, error);
  ::close(fd);
}

void TakeoverServer::Impl::Abandon(const std::string& why) {
  ++stats.abandoned;
  counters->Fail(TakeoverFailure::kAbandoned);
  spdlog::warn("takeover: pid {} went away before taking over ({}); still serving", peer_pid, why);
  error_code ignored;
  peer.close(ignored);
  deadline.cancel();
}

void TakeoverServer::Impl::Close() {
  if (closed) return;
  closed = true;
  error_code ignored;
  listener.close(ignored);
  peer.close(ignored);
  deadline.cancel();
  // Only our own file: a successor may have made a new one at the same path.
  struct stat now {};
  if (lstat(path.c_str(), &now) == 0 && now.st_ino == created.st_ino && now.st_dev == created.st_dev) {
    unlink(path.c_str());
  }
}

absl::StatusOr<std::unique_ptr<TakeoverServer>> TakeoverServer::Start(asio::io_context& io, const std::string& path,
                                                                      Hooks hooks, TakeoverCounters* counters) {
  auto fd = io::ListenUnixSeqpacket(path);
  if (!fd.ok()) return fd.status();
  struct stat st {};
  if (fstat(fd->get(), &st) != 0 || lstat(path.c_str(), &st) != 0) {
    return absl::UnavailableError(fmt::format("{}: {}", path, std::strerror(errno)));
  }
  auto impl = std::make_shared<Impl>(io, *std::move(fd), path, std::move(hooks), counters);
  impl->created = st;
  impl->WaitPeer();
  spdlog::info("takeover: serving this process's listeners to a successor at {}", path);
  return std::unique_ptr<TakeoverServer>(new TakeoverServer(std::move(impl)));
}

TakeoverServer::TakeoverServer(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
TakeoverServer::~TakeoverServer() { impl_->Close(); }
TakeoverServer::Stats TakeoverServer::stats() const { return impl_->stats; }

}  // namespace meshgate::proxy
