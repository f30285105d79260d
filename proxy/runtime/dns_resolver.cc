// c-ares on an io_context: c-ares owns its sockets and says which to watch
// (ARES_OPT_SOCK_STATE_CB); Asio waits on them without owning them and a
// steady_timer drives c-ares's query timeouts.
#include "proxy/runtime/dns_resolver.h"

#include "base/address.h"

#include <ares.h>
#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cstring>
#include <deque>
#include <iterator>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <utility>

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include "fmt/format.h"
#include "spdlog/spdlog.h"

namespace meshgate::proxy {

namespace asio = boost::asio;
using asio::ip::address;
using std::chrono::milliseconds;

std::string FormatStats(const DnsStats& stats) {
  std::string out;
  const DnsStats* sets[] = {&stats};
  base::AppendSummary(out, "dns_", sets, 1, /*skip_zero=*/true);
  return out;
}

namespace {

constexpr int kClassIn = 1;
constexpr std::array<int, 2> kQueryType = {1 /* A */, 28 /* AAAA */};
constexpr std::array<const char*, 2> kFamilyName = {"A", "AAAA"};
// A UDP answer holds ~30 A records; TCP fallback can hold more.
constexpr int kMaxRecords = 512;
// Bounds a burst (startup, or many TTLs running out together) so that answers
// cannot overflow the socket's receive buffer or trip a server's rate limit.
constexpr int kMaxQueriesInFlight = 128;

enum class Failure : uint8_t { kTimeout, kNxdomain, kNodata, kServer, kOther };

const char* ToString(Failure f) {
  switch (f) {
    case Failure::kTimeout: return "timeout";
    case Failure::kNxdomain: return "NXDOMAIN";
    case Failure::kNodata: return "no address records";
    case Failure::kServer: return "server failure";
    case Failure::kOther: return "error";
  }
  return "error";
}

base::Counter& FailureCounter(DnsStats& s, Failure f) {
  switch (f) {
    case Failure::kTimeout: return s.failure_timeout;
    case Failure::kNxdomain: return s.failure_nxdomain;
    case Failure::kNodata: return s.failure_nodata;
    case Failure::kServer: return s.failure_server;
    case Failure::kOther: return s.failure_other;
  }
  return s.failure_other;
}

// What one family's query said. kFailed keeps that family's last good answer.
struct FamilyAnswer {
  enum Kind : uint8_t { kRecords, kNoData, kFailed } kind = kFailed;
  std::vector<address> addresses;
  uint32_t ttl_seconds = 0;
  Failure failure = Failure::kOther;
  int status = ARES_SUCCESS;  // c-ares's own, for the log
};

FamilyAnswer Failed(Failure f, int status) {
  FamilyAnswer a;
  a.failure = f;
  a.status = status;
  return a;
}
FamilyAnswer NoData() {
  FamilyAnswer a;
  a.kind = FamilyAnswer::kNoData;
  return a;
}

FamilyAnswer ParseAnswer(size_t family, int status, const unsigned char* abuf, int alen) {
  switch (status) {
    case ARES_SUCCESS: break;
    case ARES_ENODATA: return NoData();
    case ARES_ETIMEOUT: return Failed(Failure::kTimeout, status);
    case ARES_ENOTFOUND: return Failed(Failure::kNxdomain, status);
    // c-ares 1.18 tries the next server on SERVFAIL or REFUSED and, when
    // none is left, reports ECONNREFUSED as for an unreachable server.
    case ARES_ESERVFAIL:
    case ARES_EREFUSED:
    case ARES_ECONNREFUSED: return Failed(Failure::kServer, status);
    default: return Failed(Failure::kOther, status);
  }
  FamilyAnswer out;
  out.kind = FamilyAnswer::kRecords;
  out.ttl_seconds = UINT32_MAX;
  int n = kMaxRecords;
  int rc;
  if (family == 0) {
    std::vector<ares_addrttl> rr(kMaxRecords);
    rc = ares_parse_a_reply(abuf, alen, nullptr, rr.data(), &n);
    for (int i = 0; rc == ARES_SUCCESS && i < n; ++i) {
      out.addresses.push_back(asio::ip::address_v4(ntohl(rr[i].ipaddr.s_addr)));
      out.ttl_seconds = std::min<uint32_t>(out.ttl_seconds, std::max(rr[i].ttl, 0));
    }
  } else {
    std::vector<ares_addr6ttl> rr(kMaxRecords);
    rc = ares_parse_aaaa_reply(abuf, alen, nullptr, rr.data(), &n);
    for (int i = 0; rc == ARES_SUCCESS && i < n; ++i) {
      asio::ip::address_v6::bytes_type bytes;
      std::copy_n(rr[i].ip6addr._S6_un._S6_u8, bytes.size(), bytes.begin());
      out.addresses.push_back(asio::ip::address_v6(bytes));
      out.ttl_seconds = std::min<uint32_t>(out.ttl_seconds, std::max(rr[i].ttl, 0));
    }
  }
  if (rc == ARES_ENODATA || (rc == ARES_SUCCESS && out.addresses.empty())) return NoData();
  if (rc != ARES_SUCCESS) return Failed(Failure::kOther, rc);
  return out;
}

// "ip", "ip:port", "[ipv6]:port" or a bare IPv6 address (base/address.h).
absl::StatusOr<asio::ip::udp::endpoint> ParseServer(const std::string& s) {
  auto parsed = base::ParseIpWithOptionalPort(s, 53);
  if (!parsed.ok()) {
    // The parser's reason, in the resolver's words.
    const std::string why(parsed.status().message());
    const std::string what = why.find("not an IP address") != std::string::npos ? why
                             : why.find("']'") != std::string::npos          ? "expected [ipv6]:port"
                                                                              : "port must be 1-65535";
    return absl::InvalidArgumentError(fmt::format("dns server '{}': {}", s, what));
  }
  return asio::ip::udp::endpoint(asio::ip::make_address(parsed->ip), parsed->port);
}

absl::Status Validate(const DnsOptions& o) {
  if (o.min_ttl <= milliseconds::zero()) return absl::InvalidArgumentError("dns min_ttl must be positive");
  if (o.max_ttl < o.min_ttl) return absl::InvalidArgumentError("dns max_ttl must not be below min_ttl");
  if (o.max_retry_interval < o.min_ttl)
    return absl::InvalidArgumentError("dns max_retry_interval must not be below min_ttl");
  if (o.query_timeout <= milliseconds::zero()) return absl::InvalidArgumentError("dns query_timeout must be positive");
  if (o.attempts < 1) return absl::InvalidArgumentError("dns attempts must be at least 1");
  return absl::OkStatus();
}

std::string Normalize(std::string host) {
  std::transform(host.begin(), host.end(), host.begin(), [](unsigned char c) { return std::tolower(c); });
  if (host.size() > 1 && host.back() == '.') host.pop_back();
  return host;
}

}  // namespace

class DnsResolver::Impl : public std::enable_shared_from_this<Impl> {
 public:
  Impl(asio::io_context& io, DnsOptions options) : io_(io), options_(std::move(options)), ares_timer_(io) {}
  ~Impl() { Shutdown(); }

  absl::Status Init();
  void Shutdown();
  uint64_t Track(const std::string& host, OnChange on_change);
  void Untrack(uint64_t watch_id);
  const DnsStats& stats() const { return stats_; }

 private:
  // A socket c-ares opened. Asio watches the fd but never closes it.
  struct AresSocket {
    AresSocket(asio::io_context& io, uint64_t generation) : descriptor(io), generation(generation) {}
    asio::posix::stream_descriptor descriptor;
    uint64_t generation;  // the fd number may be reused by a later socket
    bool want_read = false, want_write = false;
    bool reading = false, writing = false;  // an async_wait is pending
  };
  struct Watcher {
    std::shared_ptr<const OnChange> on_change;  // shared so Stop() inside it is safe
    uint64_t delivered_version = 0;
  };
  struct Host {
    Host(asio::io_context& io, uint64_t id, std::string name) : id(id), name(std::move(name)), refresh(io) {}
    const uint64_t id;  // tells a re-tracked host from the one a late answer was for
    const std::string name;
    asio::steady_timer refresh;
    std::unordered_map<uint64_t, Watcher> watchers;
    std::array<std::vector<address>, 2> last_good;  // per family
    std::array<FamilyAnswer, 2> round;              // this resolution's answers
    int in_flight = 0;
    std::vector<std::string> current;  // what watchers are told
    uint64_t version = 0;              // bumped when `current` changes
    bool notify_posted = false;
    uint32_t consecutive_failures = 0;
    bool failing = false;  // logged once per transition
  };
  struct PendingQuery {
    Impl* impl;
    std::string host;
    uint64_t host_id;
    size_t family;
  };

  // c-ares glue, in the order events flow.
  static void OnSockState(void* data, ares_socket_t fd, int readable, int writable);
  void Arm(int fd, AresSocket& socket);
  void OnSocketReady(int fd, uint64_t generation, bool read, const boost::system::error_code& ec);
  void RearmAresTimer();
  void OnAresTimer(const boost::system::error_code& ec);

  // Resolution of one host, in the order it happens.
  void Resolve(Host& host);
  void SendQueries(Host& host);
  void ResolveWaiting();
  static void OnAresAnswer(void* arg, int status, int timeouts, unsigned char* abuf, int alen);
  void OnAnswer(const PendingQuery& query, int status, const unsigned char* abuf, int alen);
  void Finish(Host& host);
  void Publish(Host& host);
  void RecordFailure(Host& host, Failure failure);
  void RecordSuccess(Host& host);
  void ScheduleRefresh(Host& host, milliseconds delay);
  void ScheduleNotify(Host& host);
  void Notify(const std::string& name, uint64_t host_id);

  Host* FindHost(const std::string& name, uint64_t id) {
    auto it = hosts_.find(name);
    return it != hosts_.end() && it->second->id == id ? it->second.get() : nullptr;
  }
  std::vector<size_t> Families() const {
    switch (options_.family) {
      case DnsFamily::kV4Only: return {0};
      case DnsFamily::kV6Only: return {1};
      case DnsFamily::kAll: break;
    }
    return {0, 1};
  }

  asio::io_context& io_;
  const DnsOptions options_;
  ares_channel channel_ = nullptr;
  bool shut_down_ = false;
  asio::steady_timer ares_timer_;
  std::unordered_map<int, std::unique_ptr<AresSocket>> sockets_;
  std::unordered_map<std::string, std::unique_ptr<Host>> hosts_;
  std::unordered_map<uint64_t, Host*> watch_hosts_;
  int queries_in_flight_ = 0;
  std::deque<std::pair<std::string, uint64_t>> waiting_;  // hosts (name, id) over the in-flight bound
  uint64_t next_id_ = 0;
  DnsStats stats_;
};

// ---- lifetime ----

absl::Status DnsResolver::Impl::Init() {
  if (absl::Status s = Validate(options_); !s.ok()) return s;
  std::vector<ares_addr_port_node> servers(options_.servers.size());
  for (size_t i = 0; i < servers.size(); ++i) {
    absl::StatusOr<asio::ip::udp::endpoint> ep = ParseServer(options_.servers[i]);
    if (!ep.ok()) return ep.status();
    ares_addr_port_node& node = servers[i];
    node.next = i + 1 < servers.size() ? &servers[i + 1] : nullptr;
    if (ep->address().is_v4()) {
      node.family = AF_INET;
      const auto bytes = ep->address().to_v4().to_bytes();
      std::memcpy(&node.addr.addr4, bytes.data(), bytes.size());
    } else {
      node.family = AF_INET6;
      const auto bytes = ep->address().to_v6().to_bytes();
      std::memcpy(node.addr.addr6._S6_un._S6_u8, bytes.data(), bytes.size());
    }
    node.udp_port = node.tcp_port = ep->port();
  }

  static std::once_flag library_once;
  static int library_status = ARES_SUCCESS;
  std::call_once(library_once, [] { library_status = ares_library_init(ARES_LIB_INIT_ALL); });
  if (library_status != ARES_SUCCESS)
    return absl::InternalError(fmt::format("c-ares init: {}", ares_strerror(library_status)));

  ares_options opts{};
  opts.sock_state_cb = &Impl::OnSockState;
  opts.sock_state_cb_data = this;
  opts.timeout = static_cast<int>(options_.query_timeout.count());
  opts.tries = options_.attempts;
  const int mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES;
  if (int rc = ares_init_options(&channel_, &opts, mask); rc != ARES_SUCCESS) {
    channel_ = nullptr;
    return absl::InternalError(fmt::format("c-ares channel: {}", ares_strerror(rc)));
  }
  if (!servers.empty()) {
    if (int rc = ares_set_servers_ports(channel_, servers.data()); rc != ARES_SUCCESS)
      return absl::InternalError(fmt::format("c-ares servers: {}", ares_strerror(rc)));
  }
  return absl::OkStatus();
}

// Makes the Impl inert: a handler that still holds it sees shut_down_ and
// finds no host, socket or watcher.
void DnsResolver::Impl::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  hosts_.clear();  // cancels refresh timers
  watch_hosts_.clear();
  waiting_.clear();
  // Answers arrive as ARES_EDESTRUCTION; each socket is reported closed, which
  // releases its descriptor before c-ares closes the fd.
  if (channel_) ares_destroy(channel_);
  channel_ = nullptr;
  for (auto& [fd, socket] : sockets_) socket->descriptor.release();
  sockets_.clear();
  ares_timer_.cancel();
}

// ---- c-ares sockets and timeouts ----

void DnsResolver::Impl::OnSockState(void* data, ares_socket_t fd, int readable, int writable) {
  Impl& self = *static_cast<Impl*>(data);
  auto it = self.sockets_.find(fd);
  if (!readable && !writable) {  // c-ares is about to close fd
    if (it == self.sockets_.end()) return;
    it->second->descriptor.release();  // cancels waits; their handlers find no socket
    self.sockets_.erase(it);
    return;
  }
  if (it == self.sockets_.end()) {
    auto socket = std::make_unique<AresSocket>(self.io_, ++self.next_id_);
    boost::system::error_code ec;
    socket->descriptor.assign(fd, ec);
    if (ec) {  // unwatchable: the query times out through ares_timer_
      spdlog::warn("dns: cannot watch c-ares socket {}: {}", fd, ec.message());
      return;
    }
    it = self.sockets_.emplace(fd, std::move(socket)).first;
  }
  it->second->want_read = readable;
  it->second->want_write = writable;
  self.Arm(fd, *it->second);
}

void DnsResolver::Impl::Arm(int fd, AresSocket& socket) {
  auto wait = [&](bool read) {
    socket.descriptor.async_wait(
        read ? asio::posix::descriptor_base::wait_read : asio::posix::descriptor_base::wait_write,
        [weak = weak_from_this(), fd, generation = socket.generation, read](const boost::system::error_code& ec) {
          if (auto self = weak.lock()) self->OnSocketReady(fd, generation, read, ec);
        });
  };
  if (socket.want_read && !socket.reading) {
    socket.reading = true;
    wait(true);
  }
  if (socket.want_write && !socket.writing) {
    socket.writing = true;
    wait(false);
  }
}

void DnsResolver::Impl::OnSocketReady(int fd, uint64_t generation, bool read, const boost::system::error_code& ec) {
  auto it = sockets_.find(fd);
  if (shut_down_ || it == sockets_.end() || it->second->generation != generation) return;
  AresSocket& socket = *it->second;
  (read ? socket.reading : socket.writing) = false;
  if (ec == asio::error::operation_aborted) return;
  if (read ? socket.want_read : socket.want_write)
    ares_process_fd(channel_, read ? fd : ARES_SOCKET_BAD, read ? ARES_SOCKET_BAD : fd);
  // Processing may have closed the socket, or closed it and reused the fd.
  it = sockets_.find(fd);
  if (!ec && it != sockets_.end() && it->second->generation == generation) Arm(fd, *it->second);
  RearmAresTimer();
}

void DnsResolver::Impl::RearmAresTimer() {
  timeval tv;
  if (shut_down_ || !ares_timeout(channel_, nullptr, &tv)) {
    ares_timer_.cancel();
    return;
  }
  ares_timer_.expires_after(std::chrono::seconds(tv.tv_sec) + std::chrono::microseconds(tv.tv_usec));
  ares_timer_.async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
    if (auto self = weak.lock()) self->OnAresTimer(ec);
  });
}

void DnsResolver::Impl::OnAresTimer(const boost::system::error_code& ec) {
  if (ec || shut_down_) return;
  ares_process_fd(channel_, ARES_SOCKET_BAD, ARES_SOCKET_BAD);  // expires timed-out tries
  RearmAresTimer();
}

// ---- tracking ----

uint64_t DnsResolver::Impl::Track(const std::string& name, OnChange on_change) {
  const uint64_t watch_id = ++next_id_;
  if (shut_down_) return watch_id;
  const std::string key = Normalize(name);
  auto [it, created] = hosts_.try_emplace(key);
  if (created) it->second = std::make_unique<Host>(io_, ++next_id_, key);
  Host& host = *it->second;
  host.watchers.emplace(watch_id, Watcher{std::make_shared<const OnChange>(std::move(on_change))});
  watch_hosts_.emplace(watch_id, &host);

  if (created) {
    boost::system::error_code ec;
    const address literal = asio::ip::make_address(key, ec);
    if (!ec) {
      host.current = {literal.to_string()};
      host.version = 1;
    } else {
      Resolve(host);
    }
  }
  if (host.version > 0) ScheduleNotify(host);
  return watch_id;
}

void DnsResolver::Impl::Untrack(uint64_t watch_id) {
  auto it = watch_hosts_.find(watch_id);
  if (it == watch_hosts_.end()) return;
  Host* host = it->second;
  watch_hosts_.erase(it);
  host->watchers.erase(watch_id);
  // Queries in flight for it are left to finish; their answers find no host.
  if (host->watchers.empty()) hosts_.erase(host->name);
}

// ---- resolving ----

void DnsResolver::Impl::Resolve(Host& host) {
  if (queries_in_flight_ + static_cast<int>(Families().size()) > kMaxQueriesInFlight) {
    waiting_.emplace_back(host.name, host.id);
    return;
  }
  SendQueries(host);
}

void DnsResolver::Impl::ResolveWaiting() {
  while (!waiting_.empty() && queries_in_flight_ + static_cast<int>(Families().size()) <= kMaxQueriesInFlight) {
    auto [name, id] = std::move(waiting_.front());
    waiting_.pop_front();
    if (Host* host = FindHost(name, id)) SendQueries(*host);  // else untracked meanwhile
  }
}

void DnsResolver::Impl::SendQueries(Host& host) {
  const std::vector<size_t> families = Families();
  host.in_flight = static_cast<int>(families.size());  // before any answer can arrive
  const std::string name = host.name;
  const uint64_t id = host.id;
  for (size_t family : families) {
    stats_.queries.Inc();
    ++queries_in_flight_;
    // The callback may run right here (a local error); `host` may not survive it.
    ares_query(channel_, name.c_str(), kClassIn, kQueryType[family], &Impl::OnAresAnswer,
               new PendingQuery{this, name, id, family});
  }
  RearmAresTimer();
}

void DnsResolver::Impl::OnAresAnswer(void* arg, int status, int, unsigned char* abuf, int alen) {
  std::unique_ptr<PendingQuery> query(static_cast<PendingQuery*>(arg));
  if (status == ARES_EDESTRUCTION) return;  // Impl is shutting down
  Impl& self = *query->impl;
  --self.queries_in_flight_;
  self.OnAnswer(*query, status, abuf, alen);
  self.ResolveWaiting();  // c-ares allows new queries from a callback
}

void DnsResolver::Impl::OnAnswer(const PendingQuery& query, int status, const unsigned char* abuf, int alen) {
  Host* host = FindHost(query.host, query.host_id);
  if (shut_down_ || host == nullptr) return;
  host->round[query.family] = ParseAnswer(query.family, status, abuf, alen);
  if (--host->in_flight == 0) Finish(*host);
}

// A family that failed keeps its last good addresses; one that answered
// (even "none of this family") replaces them. With no address in any family
// the whole answer is kept, as NXDOMAIN or an empty answer is more likely a
// broken zone than a service that is really gone.
void DnsResolver::Impl::Finish(Host& host) {
  std::optional<Failure> failure;
  bool any_records = false;
  uint32_t ttl = UINT32_MAX;
  for (size_t f : Families()) {
    const FamilyAnswer& a = host.round[f];
    if (a.kind == FamilyAnswer::kFailed && !failure) failure = a.failure;
    if (a.kind == FamilyAnswer::kRecords) {
      any_records = true;
      ttl = std::min(ttl, a.ttl_seconds);
    }
  }
  if (!any_records && !failure) failure = Failure::kNodata;
  if (any_records) {
    for (size_t f : Families()) {
      FamilyAnswer& a = host.round[f];
      if (a.kind != FamilyAnswer::kFailed) host.last_good[f] = std::move(a.addresses);
    }
    Publish(host);
  }
  if (failure) {
    RecordFailure(host, *failure);
    const uint32_t shift = std::min<uint32_t>(host.consecutive_failures - 1, 20);
    ScheduleRefresh(host, std::min(options_.min_ttl * (int64_t{1} << shift), options_.max_retry_interval));
  } else {
    RecordSuccess(host);
    ScheduleRefresh(host, std::clamp<milliseconds>(std::chrono::seconds(ttl), options_.min_ttl, options_.max_ttl));
  }
}

void DnsResolver::Impl::Publish(Host& host) {
  std::vector<address> all = host.last_good[0];
  all.insert(all.end(), host.last_good[1].begin(), host.last_good[1].end());
  std::sort(all.begin(), all.end());
  all.erase(std::unique(all.begin(), all.end()), all.end());
  std::vector<std::string> next;
  next.reserve(all.size());
  for (const address& a : all) next.push_back(a.to_string());
  if (next.empty() || next == host.current) return;
  spdlog::info("dns {}: [{}] (was [{}])", host.name, fmt::join(next, ", "), fmt::join(host.current, ", "));
  host.current = std::move(next);
  ++host.version;
  stats_.changes.Inc();
  ScheduleNotify(host);
}

void DnsResolver::Impl::RecordFailure(Host& host, Failure failure) {
  stats_.failures.Inc();
  FailureCounter(stats_, failure).Inc();
  ++host.consecutive_failures;
  if (host.failing) return;
  host.failing = true;
  std::string families;
  for (size_t f : Families())
    if (host.round[f].kind == FamilyAnswer::kFailed)
      families += fmt::format("{}{} {}", families.empty() ? "" : ", ", kFamilyName[f],
                              host.round[f].failure == Failure::kOther ? ares_strerror(host.round[f].status)
                                                                      : ToString(host.round[f].failure));
  if (families.empty()) families = ToString(failure);  // no family failed: nothing to serve
  spdlog::warn("dns {}: resolution failed ({}); serving [{}], retrying", host.name, families,
               fmt::join(host.current, ", "));
}

void DnsResolver::Impl::RecordSuccess(Host& host) {
  stats_.answers.Inc();
  host.consecutive_failures = 0;
  if (!host.failing) return;
  host.failing = false;
  spdlog::info("dns {}: resolving again", host.name);
}

void DnsResolver::Impl::ScheduleRefresh(Host& host, milliseconds delay) {
  host.refresh.expires_after(delay);
  host.refresh.async_wait([weak = weak_from_this(), name = host.name, id = host.id](const boost::system::error_code& ec) {
    auto self = weak.lock();
    if (ec || !self || self->shut_down_) return;
    if (Host* h = self->FindHost(name, id)) self->Resolve(*h);
  });
}

// ---- telling watchers ----

// Posted, so on_change never runs inside c-ares or inside Track(), and
// several changes before it runs coalesce into one call.
void DnsResolver::Impl::ScheduleNotify(Host& host) {
  if (host.notify_posted) return;
  host.notify_posted = true;
  asio::post(io_, [weak = weak_from_this(), name = host.name, id = host.id] {
    if (auto self = weak.lock()) self->Notify(name, id);
  });
}

// Any on_change may stop watches or destroy the resolver, so everything is
// looked up again after each call.
void DnsResolver::Impl::Notify(const std::string& name, uint64_t host_id) {
  Host* host = FindHost(name, host_id);
  if (shut_down_ || host == nullptr) return;
  host->notify_posted = false;
  const std::vector<std::string> addresses = host->current;
  const uint64_t version = host->version;
  std::vector<uint64_t> ids;
  for (const auto& [id, watcher] : host->watchers) ids.push_back(id);
  std::sort(ids.begin(), ids.end());  // oldest watch first
  for (uint64_t id : ids) {
    host = FindHost(name, host_id);
    if (shut_down_ || host == nullptr) return;
    auto it = host->watchers.find(id);
    if (it == host->watchers.end() || it->second.delivered_version >= version) continue;
    it->second.delivered_version = version;
    std::shared_ptr<const OnChange> on_change = it->second.on_change;
    if (*on_change) (*on_change)(addresses);
  }
}

// ---- public API ----

absl::StatusOr<std::unique_ptr<DnsResolver>> DnsResolver::Create(asio::io_context& io, DnsOptions options) {
  auto impl = std::make_shared<Impl>(io, std::move(options));
  if (absl::Status s = impl->Init(); !s.ok()) return s;
  return std::unique_ptr<DnsResolver>(new DnsResolver(std::move(impl)));
}

DnsResolver::DnsResolver(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

DnsResolver::~DnsResolver() { impl_->Shutdown(); }

DnsResolver::Watch DnsResolver::Track(const std::string& host, OnChange on_change) {
  return Watch(impl_, impl_->Track(host, std::move(on_change)));
}

const DnsStats& DnsResolver::stats() const { return impl_->stats(); }

DnsResolver::Watch::Watch(Watch&& other) noexcept
    : resolver_(std::move(other.resolver_)), id_(std::exchange(other.id_, 0)) {}

DnsResolver::Watch& DnsResolver::Watch::operator=(Watch&& other) noexcept {
  if (this != &other) {
    Stop();
    resolver_ = std::move(other.resolver_);
    id_ = std::exchange(other.id_, 0);
  }
  return *this;
}

void DnsResolver::Watch::Stop() {
  if (auto resolver = resolver_.lock()) resolver->Untrack(id_);
  resolver_.reset();
  id_ = 0;
}

}  // namespace meshgate::proxy
