#include "proxy/session.h"

#include <cstring>
#include <ctime>
#include <limits>

#include "base/io/endpoint.h"
#include "base/names.h"
#include "proxy/tcp_keepalive.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>


#include "fmt/format.h"
#include "fmt/ranges.h"
#include "spdlog/spdlog.h"

namespace meshgate::proxy {
namespace asio = boost::asio;
using boost::system::error_code;

namespace {

std::string Suppressed(uint64_t n) {
  return n == 0 ? std::string() : fmt::format(" ({} similar lines suppressed)", n);
}

// The client's address bytes, hashed without formatting them.
uint64_t HashAddress(const asio::ip::address& address) {
  if (address.is_v4()) {
    const auto bytes = address.to_v4().to_bytes();
    return lb::Hash64(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
  }
  const auto bytes = address.to_v6().to_bytes();
  return lb::Hash64(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
}

// Istio's mTLS ALPNs: an AUTO_PASSTHROUGH filter chain matches only these
// (pilot/pkg/networking/core/gateway.go builtAutoPassthroughFilterChains sets
// applicationProtocols: allIstioMtlsALPNs, defined in
// pilot/pkg/networking/core/listener.go as istio-peer-exchange, istio,
// istio-http/1.0, istio-http/1.1, istio-h2). Envoy's filter chain match
// takes a hello when any ALPN it offers is in the list.
bool OffersIstioAlpn(const std::vector<std::string>& offered) {
  static constexpr std::string_view kIstioAlpns[] = {"istio-peer-exchange", "istio", "istio-http/1.0",
                                                     "istio-http/1.1", "istio-h2"};
  for (const std::string& alpn : offered) {
    for (std::string_view istio : kIstioAlpns) {
      if (alpn == istio) return true;
    }
  }
  return false;
}

std::array<uint8_t, 16> MappedBytes(const asio::ip::address& address) {
  if (address.is_v6()) return address.to_v6().to_bytes();
  return asio::ip::make_address_v6(asio::ip::v4_mapped, address.to_v4()).to_bytes();
}

}  // namespace

Session::Session(int fd, const asio::ip::tcp::endpoint& peer, const WorkerContext& ctx, AdmissionTicket admission)
    : ctx_(ctx),
      routes_(ctx.routes),
      down_(fd),
      peer_endpoint_(peer),
      client_endpoint_(peer),
      parser_(sni::ParserOptions{ctx.routes->settings.max_hello_bytes}),
      start_(Clock::now()),
      admission_(std::move(admission)) {
  ctx_.stats->downstream_cx_total.Inc();
  ctx_.stats->downstream_cx_active.Inc();
  start_wall_ = std::chrono::system_clock::now();
}

Session::~Session() {
  // The upstream lease and gauges give themselves back as members.
  CloseSockets();
  ctx_.stats->downstream_cx_active.Dec();
}

// The descriptors leave epoll with their close(); the handle stops any event
// of this turn's batch from reaching the session after it.
void Session::CloseSockets() {
  ctx_.reactor->Cancel(*this);
  ctx_.reactor->Unregister(handle_);
  if (down_ >= 0) ::close(down_);
  if (up_ >= 0) ::close(up_);
  down_ = up_ = -1;
  if (ctx_.live != nullptr) ctx_.live->erase(this);
}

void Session::Abandon() {
  if (closed_) return;
  closed_ = true;
  CloseSockets();
  ctx_.reactor->Defer([this] { delete this; });
}

void Session::Start() {
  if (ctx_.live != nullptr) ctx_.live->insert(this);
  // A trusted load balancer must send a PROXY header first (proxy-protocol.txt
  // §2.3: a receiver must not guess whether one is there); from anyone else a
  // header is refused.
  phase_ = routes_->settings.proxy_protocol.Trusts(MappedBytes(peer_endpoint_.address())) ? Phase::kProxyHeader
                                                                                              : Phase::kSniff;
  // One deadline for the whole hello, not per read: a client dribbling one
  // byte a second still runs out of time.
  ctx_.reactor->Arm(*this, start_ + routes_->settings.hello_timeout);
  handle_ = ctx_.reactor->Register(this);
  if (const int err = ctx_.reactor->Add(down_, handle_, kDownTag); err != 0) {
    return Reject(Termination::kDownstreamError, fmt::format("cannot watch the connection: {}", std::strerror(err)));
  }
  // Accepted sockets inherit TCP_NODELAY and SO_OOBINLINE from the listener
  // (worker_pool.cc): nothing to set here. With TCP_DEFER_ACCEPT the hello
  // is usually there already: read it now, not after a turn of the loop.
  ReadHello();
}

void Session::OnTimer() {
  if (closed_) return;
  if (stage_ == Stage::kConnecting) {
    ::close(up_);  // out of epoll with it
    up_ = -1;
    return OnConnectFailed(0);
  }
  ctx_.stats->hello_timeout.Inc();
  Reject(Termination::kHelloTimeout,
         fmt::format("no complete {} within {}ms ({} bytes read)",
                     phase_ == Phase::kProxyHeader ? "PROXY protocol header" : "ClientHello",
                     routes_->settings.hello_timeout.count(), hello_len_));
}

void Session::OnEvents(unsigned tag, uint32_t events) {
  if (closed_) return;
  if (stage_ != Stage::kRelaying) early_events_[tag] |= events;
  switch (stage_) {
    case Stage::kHello:
      if (tag == kDownTag) ReadHello();
      return;
    case Stage::kConnecting:
    case Stage::kWritingHello:
      // The client's bytes (or its FIN) wait in the socket for the relay.
      if (tag == kUpTag) OnUpstreamEvents(events);
      return;
    case Stage::kRelaying: {
      Flow& reads_here = tag == kDownTag ? *down_to_up_ : *up_to_down_;
      Flow& writes_here = tag == kDownTag ? *up_to_down_ : *down_to_up_;
      reads_here.OnSrcEvents(events);
      if (!closed_) writes_here.OnDstEvents(events);
      return;
    }
  }
}

// TCP_DEFER_ACCEPT holds a connection in the kernel until its first data,
// or until the wait runs out (Linux then retransmits the SYN-ACK once and
// accepts at the client's next ACK: tcp_check_req, reqsk_timer_handler). So
// a connection that reaches accept with nothing to read has been silent for
// the whole wait since its SYN: its hello deadline is that much shorter, and
// a hello timeout at or under the wait closes it at once. One with data was
// accepted within the wait of its SYN. Either way the deadline counts from
// the SYN within the wait, not from accept().
void Session::ChargeDeferredWait() {
  if (charged_defer_ || hello_len_ > 0 || ctx_.defer_accept.count() == 0) return;
  charged_defer_ = true;
  ctx_.reactor->Arm(*this, deadline() - ctx_.defer_accept);
}

// Room for the next read: up to the hello cap, or false (refused as too
// large) when the cap is reached and the parser still wants more.
size_t Session::HelloRoom() {
  // The header phase may need room for a whole v2 header (the parser
  // refuses a longer one from its first 16 bytes).
  const size_t cap = phase_ == Phase::kProxyHeader
                         ? std::max(routes_->settings.max_hello_bytes, routes_->settings.proxy_protocol.max_v2_bytes)
                         : routes_->settings.max_hello_bytes;
  if (hello_len_ < cap) return cap - hello_len_;
  ctx_.stats->hello_rejected[static_cast<size_t>(sni::RejectReason::kTooLarge)].Inc();
  Reject(Termination::kHelloTooLarge, "too_large");
  return 0;
}

// Reads until the hello (and any PROXY header) is complete or the socket is
// drained. A short read means drained (the next arrival is a new edge),
// unless an event announced urgent data (recv stops short at its mark) or the
// FIN (the EOF behind the last bytes): then read on (Flow::OnSrcEvents).
void Session::ReadHello() {
  while (!closed_ && stage_ == Stage::kHello) {
    const std::span<uint8_t> scratch = ScratchBuffer();
    const size_t room = std::min(HelloRoom(), scratch.size());
    if (room == 0) return;
    const ssize_t n = ::recv(down_, scratch.data(), room, MSG_DONTWAIT);
    if (n > 0) {
      // Read through the worker's scratch buffer, kept at its exact size: a
      // session holds a few hundred bytes until its hello is forwarded, not a
      // buffer sized for the largest hello.
      hello_buf_.insert(hello_buf_.end(), scratch.data(), scratch.data() + n);
      hello_len_ += static_cast<size_t>(n);
      const bool read_to_end = early_events_[kDownTag] & kReadToEndEvents;
      const bool drained = static_cast<size_t>(n) < room && !read_to_end;
      if (drained) {
        // What comes next is announced by a new edge: the relay needs no
        // recv of its own before it (StartRelay).
        hello_drained_ = true;
        early_events_[kDownTag] = 0;
      }
      if (!OnHelloBytes(static_cast<size_t>(n))) return;
      hello_drained_ = false;
      if (drained) return;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return ChargeDeferredWait();
    return OnReadHelloError(n == 0 ? 0 : errno);
  }
}

bool Session::OnHelloBytes(size_t n) {
  switch (phase_) {
    case Phase::kProxyHeader:
      return OnProxyHeaderBytes();
    case Phase::kSniff:
      return OnSniffBytes();
    case Phase::kHello:
      return FeedHello(std::span<const uint8_t>(hello_buf_.data() + hello_len_ - n, n));
  }
  return false;
}

void Session::OnReadHelloError(int err) {
  const std::string why = err == 0 ? std::string() : fmt::format(" ({})", std::strerror(err));
  if (phase_ == Phase::kProxyHeader && hello_len_ > 0) {
    return Refuse(Refusal::kProxyTruncated,
                  fmt::format("client closed after {} bytes, inside its PROXY protocol header{}", hello_len_, why));
  }
  Reject(Termination::kHelloClosed,
         fmt::format("client closed after {} bytes, before a complete ClientHello{}", hello_len_, why));
}

// A trusted source: the header, then what follows it is the ClientHello's start.
bool Session::OnProxyHeaderBytes() {
  const auto bytes = std::span<const uint8_t>(hello_buf_.data(), hello_len_);
  const sni::ProxyParseResult r =
      sni::ParseProxyHeader(bytes, {routes_->settings.proxy_protocol.max_v2_bytes});
  switch (r.status) {
    case sni::ProxyParseStatus::kNeedMoreData:
      return true;
    case sni::ProxyParseStatus::kError:
      Refuse(RefusalOf(r.error),
             fmt::format("PROXY protocol header from a trusted source: {}", sni::ToString(r.error)));
      return false;
    case sni::ProxyParseStatus::kDone:
      break;
  }
  if (!ApplyProxyHeader(r.header)) return false;
  const size_t rest = hello_len_ - r.header.header_bytes;
  hello_buf_.erase(hello_buf_.begin(), hello_buf_.begin() + static_cast<ptrdiff_t>(r.header.header_bytes));
  hello_len_ = rest;
  phase_ = Phase::kHello;
  if (rest == 0) return true;
  return FeedHello(std::span<const uint8_t>(hello_buf_.data(), rest));
}

// The carried source replaces the peer (LOCAL, UNKNOWN, UNSPEC and AF_UNIX
// keep it: §2.1, §2.2), then the per-source limit the accept deferred.
bool Session::ApplyProxyHeader(const sni::ProxyHeader& header) {
  const auto to_address = [](const std::array<uint8_t, 16>& bytes) -> asio::ip::address {
    const auto v6 = asio::ip::make_address_v6(bytes);
    if (v6.is_v4_mapped()) return asio::ip::make_address_v4(asio::ip::v4_mapped, v6);
    return v6;
  };
  if (header.carries_ip_source()) {
    client_endpoint_ = asio::ip::tcp::endpoint(to_address(header.src_ip), header.src_port);
    proxied_dst_ = asio::ip::tcp::endpoint(to_address(header.dst_ip), header.dst_port);
  }
  const uint32_t cap = routes_->settings.limits.per_source;
  if (cap == 0 || ctx_.admission == nullptr) return true;
  if (ctx_.admission->AdmitSource(admission_, MappedBytes(client_endpoint_.address()), cap)) return true;
  Refuse(Refusal::kPerSource, fmt::format("{} connections open from this client (limits.perSourceConnections, "
                                          "after its PROXY protocol header)", cap));
  return false;
}

// An untrusted source: its first bytes may be a PROXY signature, refused by
// name; anything else goes to the ClientHello parser whole.
bool Session::OnSniffBytes() {
  const auto bytes = std::span<const uint8_t>(hello_buf_.data(), hello_len_);
  switch (sni::MatchProxySignature(bytes)) {
    case sni::SignatureMatch::kYes:
      Refuse(Refusal::kProxyUntrusted, fmt::format("PROXY protocol header from {}, not in proxyProtocol.accept",
                                                   io::FormatEndpoint(peer_endpoint_)));
      return false;
    case sni::SignatureMatch::kPartial:
      return true;
    case sni::SignatureMatch::kNo:
      break;
  }
  phase_ = Phase::kHello;
  return FeedHello(bytes);
}

// Refused before the ClientHello: counted by reason with the accept-time
// refusals, closed with a RST as they are, and nothing is dialled.
void Session::Refuse(Refusal why, std::string_view detail) {
  ctx_.stats->refused[static_cast<size_t>(why)].Inc();
  refused_ = why;
  const linger reset{1, 0};
  ::setsockopt(down_, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
  Reject(Termination::kRefused, fmt::format("{}: {}", ToString(why), detail));
}

bool Session::FeedHello(std::span<const uint8_t> chunk) {
  switch (parser_.Feed(chunk)) {
    case sni::ParseStatus::kNeedMoreData:
      return true;
    case sni::ParseStatus::kRejected:
      ctx_.stats->hello_rejected[static_cast<size_t>(parser_.reason())].Inc();
      Reject(parser_.reason() == sni::RejectReason::kTooLarge ? Termination::kHelloTooLarge
             : IsNotTls(parser_.reason())                      ? Termination::kNotTls
                                                               : Termination::kHelloMalformed,
             std::string(sni::ToString(parser_.reason())));
      return false;
    case sni::ParseStatus::kClientHello:
      parser_.ReleaseBuffer();  // the session keeps hello(), not its bytes (hello_buf_ has them)
      ctx_.stats->ObserveHelloBytes(parser_.hello().bytes_consumed);
      OnHello();
      return false;
  }
  return false;
}

void Session::OnHello() {
  const sni::ClientHello& hello = parser_.hello();
  if (hello.has_server_name) ctx_.stats->hello_ok.Inc();
  if (routes_->settings.require_istio_alpn && !OffersIstioAlpn(hello.alpn)) {
    return Reject(Termination::kAlpnNotIstio,
                  fmt::format("sni=\"{}\" alpn={} (requireIstioAlpn)", hello.server_name,
                              hello.alpn.empty() ? "none" : fmt::format("\"{}\"", fmt::join(hello.alpn, ","))));
  }
  const config::RouteResult route = routes_->table->Route(hello.server_name, routes_->settings.route);
  if (route.miss != config::RouteMiss::kNone) {
    ctx_.stats->route_miss[static_cast<size_t>(route.miss)].Inc();
    return Reject(Termination::kNoRoute,
                  fmt::format("{} sni=\"{}\" host=\"{}\"", config::ToString(route.miss),
                              hello.server_name, route.host));
  }
  cluster_ = route.cluster;  // before the policy: a refusal is counted against it
  if (!Authorized()) return;
  if (cluster_->endpoints.empty()) {
    return Reject(Termination::kNoEndpoints, fmt::format("cluster {} has no endpoints", cluster_->name));
  }
  cluster_state_ = &routes_->health->cluster(cluster_->id);
  cluster_stats_ = routes_->cluster_stats[cluster_->id].get();
  const auto& pool = cluster_->policy.connection_pool;
  const uint32_t cap = pool && pool->max_connections ? *pool->max_connections
                                                     : std::numeric_limits<uint32_t>::max();
  lease_ = lb::UpstreamLease::TryAcquire(*cluster_state_, cap);
  if (!lease_) {
    ctx_.stats->upstream_cx_overflow.Inc();
    cluster_stats_->counters.cx_overflow.Inc();
    return Reject(Termination::kUpstreamOverflow,
                  fmt::format("cluster {}: {} connections open (connectionPool.tcp.maxConnections)",
                              cluster_->name, cap));
  }
  const auto& lb_policy = cluster_->policy.load_balancer;
  if (lb_policy && lb_policy->consistent_hash) {
    client_hash_ = HashAddress(client_endpoint_.address());  // useSourceIp: the PROXY header's client
  }
  DoConnect();
}

// AuthorizationPolicy, after the hello and before any dial (Istio's network
// RBAC filter sits in the matched filter chain, ahead of tcp_proxy).
bool Session::Authorized() {
  const config::AuthorizationPolicies& policies = routes_->table->authorization();
  if (policies.empty()) return true;
  config::AuthorizationInput input;
  // Istio (security.istio.io Source): ipBlocks is "populated from the source
  // address of the IP packet", remoteIpBlocks "from X-Forwarded-For header
  // or proxy protocol"; Envoy's RBAC direct_remote_ip / remote_ip likewise.
  input.peer = MappedBytes(peer_endpoint_.address());
  input.remote = MappedBytes(client_endpoint_.address());
  input.port = routes_->settings.gateway_port;  // no getsockname per connection
  input.sni = parser_.hello().server_name;
  const config::AuthorizationDecision decision = policies.Evaluate(input);
  for (std::string_view audited : decision.audited) {
    uint64_t suppressed = 0;
    if (ctx_.log_limiter->Allow(suppressed)) {
      spdlog::info("{} sni=\"{}\": AUDIT policy {} matched{}", Peer(), input.sni, audited, Suppressed(suppressed));
    }
  }
  if (decision.allowed) return true;
  denied_by_ = decision.denied_by;
  const auto& counters = routes_->snapshot->policy_denied;
  size_t index = counters.empty() ? 0 : counters.size() - 1;  // "none"
  for (size_t i = 0; i < policies.policies().size(); ++i) {
    if (policies.policies()[i].name == decision.denied_by) index = i;
  }
  if (index < counters.size()) counters[index]->Inc();
  Reject(Termination::kRbacDenied,
         fmt::format("sni=\"{}\" policy {}", input.sni,
                     decision.denied_by == "none" ? "none (no ALLOW policy matched)" : decision.denied_by));
  return false;
}

std::chrono::milliseconds Session::ConnectTimeout() const {
  const auto& pool = cluster_->policy.connection_pool;
  return pool && pool->connect_timeout ? *pool->connect_timeout : routes_->settings.connect_timeout;
}

// connectionPool.tcp.tcpKeepalive goes on the socket before the connect, as
// Envoy sets a cluster's upstream_connection_options.tcp_keepalive (Istio
// docs: networking.istio.io DestinationRule ConnectionPoolSettings.TCPSettings
// .tcpKeepalive, "If set then set SO_KEEPALIVE on the socket to enable TCP
// Keepalives"). Without one the socket is left to the OS. A socket that fails
// A socket that cannot be opened fails like a refused connect.
//
// The upstream socket is opened non-blocking (no ioctl), gets TCP_NODELAY and
// SO_OOBINLINE (a connecting socket inherits nothing), and is watched from
// before its connect completes: the reactor reports the completion, so there
// is no poll(), and SO_ERROR is read only when epoll reports an error.
int Session::OpenUpstream(const asio::ip::tcp::endpoint& target) {
  up_ = ::socket(target.protocol().family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (up_ < 0) return errno;
  const int one = 1;
  ::setsockopt(up_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  ::setsockopt(up_, SOL_SOCKET, SO_OOBINLINE, &one, sizeof one);
  const auto& pool = cluster_->policy.connection_pool;
  if (pool && pool->keepalive) {
    if (const int err = ApplyTcpKeepalive(up_, *pool->keepalive); err != 0) {
      uint64_t suppressed = 0;
      if (ctx_.log_limiter->Allow(suppressed)) {
        spdlog::warn("cluster {}: tcpKeepalive not applied: {}{}", cluster_->name, std::strerror(err),
                     Suppressed(suppressed));
      }
    }
  }
  if (::connect(up_, target.data(), static_cast<socklen_t>(target.size())) != 0 && errno != EINPROGRESS) {
    return errno;
  }
  return ctx_.reactor->Add(up_, handle_, kUpTag);
}

void Session::DoConnect() {
  const int idx = static_cast<int>(tried_.size()) < routes_->settings.max_connect_attempts
                      ? routes_->BalancerFor(*cluster_).Pick(*cluster_state_, {client_hash_, tried_})
                      : lb::kNoEndpoint;
  if (idx == lb::kNoEndpoint && tried_.empty()) {
    cluster_stats_->counters.cx_none_healthy.Inc();
    return Reject(Termination::kNoEndpoints, fmt::format("cluster {} has no ready endpoint", cluster_->name));
  }
  if (idx == lb::kNoEndpoint) {
    return Reject(Termination::kUpstreamConnectFailed,
                  fmt::format("cluster {}: all {} connect attempts failed", cluster_->name, tried_.size()));
  }
  if (!tried_.empty()) {
    ctx_.stats->upstream_connect_retry.Inc();
    cluster_stats_->counters.connect_retries.Inc();
  }
  tried_.push_back(static_cast<uint32_t>(idx));
  endpoint_ = idx;
  lease_.Pick(static_cast<uint32_t>(idx));
  const config::Endpoint& ep = cluster_->endpoints[idx];
  error_code ec;
  const auto address = asio::ip::make_address(ep.address, ec);
  if (ec) {  // config validates addresses; defensive only
    ctx_.stats->upstream_connect_fail.Inc();
    lease_.ReleaseEndpoint();
    return DoConnect();
  }
  stage_ = Stage::kConnecting;
  connect_started_ = Clock::now();
  if (const int err = OpenUpstream(asio::ip::tcp::endpoint(address, ep.port)); err != 0) {
    return OnConnectFailed(err);
  }
  ctx_.reactor->Arm(*this, connect_started_ + ConnectTimeout());
}

// While connecting: writable is connected; an error or hang-up is a failed
// connect, whose cause is in SO_ERROR. While writing the hello: writable again.
void Session::OnUpstreamEvents(uint32_t events) {
  if (stage_ == Stage::kWritingHello) {
    if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) WriteHello();
    return;
  }
  if (events & (EPOLLERR | EPOLLHUP)) {
    int err = 0;
    socklen_t len = sizeof err;
    if (::getsockopt(up_, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
    ::close(up_);
    up_ = -1;
    return OnConnectFailed(err != 0 ? err : ECONNRESET);
  }
  if (events & EPOLLOUT) OnConnected();
}

void Session::OnConnected() {
  ctx_.reactor->Cancel(*this);
  lease_.OnConnected();
  // From here the idle timeout applies, also while the hello is written to
  // an upstream that may not read it. No timer of its own from here: the
  // worker's idle sweep checks it, so an idle session holds no deadline.
  last_activity_ = Clock::now();
  SetConnectionLimits(last_activity_);
  ctx_.stats->upstream_cx_total.Inc();
  cluster_stats_->counters.cx_total.Inc();
  connected_.emplace(ctx_.stats->upstream_cx_active, cluster_stats_->counters.cx_active);
  // Opened at the upstream connect, with no response flag yet.
  istio_ = routes_->IstioStats(*cluster_, endpoint_);
  if (istio_ != nullptr) istio_->opened[static_cast<size_t>(ResponseFlag::kNone)].Inc();
  cluster_stats_->connect_seconds.Observe(std::chrono::duration<double>(last_activity_ - connect_started_).count());
  if (SendsProxyHeader()) {
    // upstreamProxyProtocol: a v2 header (proxy-protocol.txt §2.2) before the
    // hello, from the client to the address it dialled: the destination of
    // its own PROXY header, else this gateway's socket.
    asio::ip::tcp::endpoint dst;
    if (proxied_dst_) {
      dst = *proxied_dst_;
    } else {
      socklen_t len = static_cast<socklen_t>(dst.capacity());
      if (::getsockname(down_, dst.data(), &len) == 0) dst.resize(len);
    }
    upstream_header_ = sni::EncodeProxyV2(MappedBytes(client_endpoint_.address()), client_endpoint_.port(),
                                          MappedBytes(dst.address()), dst.port());
  }
  stage_ = Stage::kWritingHello;
  WriteHello();
}

// Istio's docs (networking.istio.io DestinationRule,
// ConnectionPoolSettings.TCPSettings) and what Istio makes of them for
// Envoy's tcp_proxy:
// - idleTimeout: "The idle timeout for TCP connections ... no bytes sent or
//   received on either the upstream or downstream connection. If not set, the
//   default idle timeout is 1 hour. If set to 0s, the timeout will be
//   disabled." Istio sets it as the tcp_proxy's idle_timeout, so the
//   cluster's wins over the gateway's timeouts.idle (our "not set" default).
// - maxConnectionDuration: "The maximum duration of a connection. The
//   duration is defined as the period since a connection was established. If
//   not set, there is no max duration." Envoy's tcp_proxy has the same limit
//   (max_downstream_connection_duration). Here it counts from the upstream
//   connect, the connection the rule is about; 0s is treated as not set.
void Session::SetConnectionLimits(Clock::time_point connected) {
  idle_timeout_ = routes_->settings.idle_timeout;
  const auto& pool = cluster_->policy.connection_pool;
  if (!pool) return;
  if (pool->idle_timeout) {
    idle_timeout_ = pool->idle_timeout->count() > 0 ? Clock::duration(*pool->idle_timeout) : Clock::duration::max();
  }
  if (pool->max_connection_duration && pool->max_connection_duration->count() > 0) {
    close_by_ = connected + *pool->max_connection_duration;
  }
}

void Session::OnConnectFailed(int err) {
  ctx_.reactor->Cancel(*this);
  const config::Endpoint& ep = cluster_->endpoints[endpoint_];
  if (err == 0) {
    ctx_.stats->upstream_connect_timeout.Inc();
    cluster_stats_->counters.connect_timeouts.Inc();
  } else {
    ctx_.stats->upstream_connect_fail.Inc();
    cluster_stats_->counters.connect_failures.Inc();
  }
  uint64_t suppressed = 0;
  if (ctx_.log_limiter->Allow(suppressed)) {
    spdlog::warn("{} cluster {}: connect to {}:{} failed: {}{}", Peer(), cluster_->name, ep.address, ep.port,
                 err == 0 ? "timed out" : std::strerror(err),
                 Suppressed(suppressed));
  }
  if (up_ >= 0) ::close(up_);
  up_ = -1;
  const auto& od = cluster_->policy.outlier_detection;
  const int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                          Clock::now().time_since_epoch()).count();
  if (lease_.OnConnectFailed(od ? &*od : nullptr, now)) {
    ctx_.stats->upstream_ejections.Inc();
    spdlog::warn("cluster {}: endpoint {}:{} ejected after {} consecutive connect failures "
                 "(ejection #{}, {} of {} endpoints out)",
                 cluster_->name, ep.address, ep.port,
                 od->consecutive_gateway_errors.value_or(od->consecutive_5xx_errors),
                 cluster_state_->endpoint(endpoint_).ejections.load(std::memory_order_relaxed),
                 cluster_state_->ejected_count(), cluster_state_->size());
  }
  DoConnect();
}

bool Session::SendsProxyHeader() const {
  for (const std::string& pattern : routes_->settings.proxy_protocol.upstream_hosts) {
    if (base::HostMatches(pattern, cluster_->host)) return true;
  }
  return false;
}

// The PROXY header (if any) and every byte read so far, in one sendmsg; what
// the upstream does not take at once waits for its next writable edge.
void Session::WriteHello() {
  for (;;) {
    const size_t header = upstream_header_.size();
    iovec iov[2];
    int count = 0;
    if (hello_sent_ < header) {
      iov[count++] = {upstream_header_.data() + hello_sent_, header - hello_sent_};
      iov[count++] = {hello_buf_.data(), hello_len_};
    } else {
      iov[count++] = {hello_buf_.data() + (hello_sent_ - header), hello_len_ - (hello_sent_ - header)};
    }
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = count;
    const ssize_t n = ::sendmsg(up_, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;  // the next writable edge
    if (n < 0) return Close(Termination::kUpstreamError);
    hello_sent_ += static_cast<size_t>(n);
    if (hello_sent_ == header + hello_len_) break;
  }
  const size_t n = hello_len_;  // the client's bytes only
  ctx_.stats->bytes_downstream_to_upstream.Inc(n);
  cluster_stats_->counters.sent_bytes.Inc(n);
  if (istio_ != nullptr) istio_->received_bytes.Inc(n);
  // The hello is forwarded; idle sessions should not keep its buffer.
  std::vector<uint8_t>().swap(hello_buf_);
  std::vector<uint8_t>().swap(upstream_header_);
  StartRelay();
}

void Session::StartRelay() {
  stage_ = Stage::kRelaying;
  const bool splice = routes_->settings.relay == RelayMode::kSplice;
  down_to_up_.emplace(down_, up_, splice, *ctx_.pipes, ctx_.stats->bytes_downstream_to_upstream,
                      ctx_.stats->relay_copy_fallback, static_cast<FlowOwner&>(*this));
  up_to_down_.emplace(up_, down_, splice, *ctx_.pipes, ctx_.stats->bytes_upstream_to_downstream,
                      ctx_.stats->relay_copy_fallback, static_cast<FlowOwner&>(*this));
  // Whatever arrived while connecting is read now: no edge will announce it.
  down_to_up_->SetOpposite(&*up_to_down_);
  up_to_down_->SetOpposite(&*down_to_up_);
  // Each flow reads at once only if its source may hold unread bytes: the
  // client's after a hello that filled the buffer, or either socket after an
  // event since (edges are not repeated). Otherwise it waits for the next edge,
  // without a recv that would only say EAGAIN.
  down_to_up_->Start(early_events_[kDownTag], !hello_drained_);
  if (!closed_) up_to_down_->Start(early_events_[kUpTag], false);
}

void Session::ResumeLater(Flow& flow) {
  ctx_.reactor->Defer([this, &flow] {
    if (!closed_) flow.Pump();
  });
}

void Session::OnFlowProgress(const Flow& flow, size_t n) {
  last_activity_ = Clock::now();
  const bool request = &flow == &*down_to_up_;
  (request ? cluster_stats_->counters.sent_bytes : cluster_stats_->counters.received_bytes).Inc(n);
  if (istio_ != nullptr) (request ? istio_->received_bytes : istio_->sent_bytes).Inc(n);
}

void Session::CheckIdle(Clock::time_point now) {
  // From the upstream connect on (writing the hello, then relaying) the idle
  // timeout applies.
  if (stage_ < Stage::kWritingHello || closed_) return;
  if (now >= close_by_) return Close(Termination::kMaxDuration);
  if (now - last_activity_ >= idle_timeout_) Close(Termination::kIdleTimeout);
}

void Session::OnFlowEnd(const Flow& flow, Flow::End end) {
  if (closed_) return;
  const bool downstream_to_upstream = &flow == &*down_to_up_;
  switch (end) {
    case Flow::End::kEof:
      if (!saw_eof_) {
        saw_eof_ = true;
        first_eof_from_downstream_ = downstream_to_upstream;
      }
      // Half-close: the other direction keeps flowing until it ends too.
      if (down_to_up_->finished() && up_to_down_->finished()) {
        Close(first_eof_from_downstream_ ? Termination::kDownstreamClose : Termination::kUpstreamClose);
      }
      return;
    case Flow::End::kSrcError:
      return Close(downstream_to_upstream ? Termination::kDownstreamError : Termination::kUpstreamError);
    case Flow::End::kDstError:
      return Close(downstream_to_upstream ? Termination::kUpstreamError : Termination::kDownstreamError);
  }
}

void Session::Reject(Termination why, std::string_view detail) {
  uint64_t suppressed = 0;
  if (ctx_.log_limiter->Allow(suppressed)) {
    spdlog::info("{} closed: {}: {}{}", Peer(), ToString(why), detail,
                 Suppressed(suppressed));
  }
  Close(why);
}

void Session::Close(Termination why) {
  if (closed_) return;
  closed_ = true;
  ctx_.stats->terminations[static_cast<size_t>(why)].Inc();
  CountIstioClose(why);
  if (connected_) {
    cluster_stats_->counters.sessions_closed.Inc();
    cluster_stats_->session_seconds.Observe(std::chrono::duration<double>(Clock::now() - start_).count());
  }
  if (ctx_.access_log != nullptr && ctx_.access_log->Sample(ctx_.worker_index)) WriteAccessLog(why);
  if (cluster_ != nullptr && endpoint_ >= 0 && connected_ && spdlog::should_log(spdlog::level::debug)) {
    const config::Endpoint& ep = cluster_->endpoints[endpoint_];
    spdlog::debug("{} sni=\"{}\" alpn={} cluster={} endpoint={}:{} attempts={} sent={} received={} duration_ms={} end={}",
                  Peer(), parser_.hello().server_name, parser_.hello().alpn.empty() ? "-" : parser_.hello().alpn.front(),
                  cluster_->name, ep.address, ep.port, tried_.size(),
                  down_to_up_ ? down_to_up_->bytes() + hello_len_ : 0, up_to_down_ ? up_to_down_->bytes() : 0,
                  std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start_).count(),
                  ToString(why));
  }
  CloseSockets();
  ctx_.reactor->Defer([this] { delete this; });
}

// istio_tcp_connections_closed_total, with the response flag Envoy would
// set (IstioResponseFlag). A session refused after routing to a cluster but
// before an upstream connection is opened and closed at once, in the series
// of the endpoint it last tried (Envoy's tcp_proxy records the host of a
// failed connect) or the cluster's series without an endpoint.
void Session::CountIstioClose(Termination why) {
  const std::optional<ResponseFlag> flag = IstioResponseFlag(why);
  if (!flag || cluster_ == nullptr) return;
  const auto i = static_cast<size_t>(*flag);
  if (istio_ == nullptr) {
    istio_ = routes_->IstioStats(*cluster_, endpoint_);
    if (istio_ == nullptr) return;
    istio_->opened[i].Inc();
  }
  istio_->closed[i].Inc();
}

void Session::WriteAccessLog(Termination why) {
  const sni::ClientHello& hello = parser_.hello();
  std::string alpn = "[";
  for (size_t i = 0; i < hello.alpn.size(); ++i) {
    if (i > 0) alpn += ",";
    alpn += JsonString(hello.alpn[i]);
  }
  alpn += "]";
  std::string upstream = "null";
  if (cluster_ != nullptr && endpoint_ >= 0) {
    const config::Endpoint& ep = cluster_->endpoints[endpoint_];
    upstream = JsonString(io::FormatHostPort(ep.address, ep.port));
  }
  const auto start_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(start_wall_.time_since_epoch()).count();
  const std::time_t seconds = static_cast<std::time_t>(start_ms / 1000);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  const uint64_t received = down_to_up_ ? down_to_up_->bytes() + hello_len_ : hello_len_;
  const uint64_t sent = up_to_down_ ? up_to_down_->bytes() : 0;
  ctx_.access_log->Submit(
      ctx_.worker_index,
      fmt::format("{{\"start_time\":\"{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z\",\"duration_ms\":{},"
                  "\"downstream_remote_address\":{},\"sni\":{},\"alpn\":{},\"cluster\":{},"
                  "\"upstream_host\":{},\"connect_attempts\":{},\"bytes_received\":{},"
                  "\"bytes_sent\":{},\"termination\":\"{}\"{}{}}}",
                  utc.tm_year + 1900, utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec,
                  start_ms % 1000,
                  std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start_).count(),
                  JsonString(Peer()), hello.has_server_name ? JsonString(hello.server_name) : "null",
                  alpn, cluster_ != nullptr ? JsonString(cluster_->name) : "null", upstream,
                  tried_.size(), received, sent,
                  refused_ ? fmt::format("refused_{}", ToString(*refused_)) : std::string(ToString(why)),
                  denied_by_.empty() ? std::string() : fmt::format(",\"policy\":{}", JsonString(denied_by_)),
                  // Envoy's DOWNSTREAM_DIRECT_REMOTE_ADDRESS: the load balancer, when a
                  // PROXY header carried the client.
                  client_endpoint_ == peer_endpoint_
                      ? std::string()
                      : fmt::format(",\"downstream_direct_remote_address\":{}",
                                    JsonString(io::FormatEndpoint(peer_endpoint_)))));
}

}  // namespace meshgate::proxy
