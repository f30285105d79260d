// One downstream connection: read the ClientHello under a deadline, route it
// by SNI, connect upstream (trying other endpoints on failure), replay the
// hello, then relay both ways until both sides are done or idle too long.
// Driven by its worker's reactor (proxy/reactor.h): both sockets are
// registered once, edge-triggered, under one handle, and the session keeps
// its own stage. It owns itself: Start() after `new`; once closed it is
// deleted at the end of the reactor's turn.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/ip/tcp.hpp>

#include "absl/container/flat_hash_set.h"
#include "absl/container/inlined_vector.h"
#include "base/io/endpoint.h"
#include "config/model/route_table.h"
#include "lb/balancer.h"
#include "lb/upstream_lease.h"
#include "proxy/access_log.h"
#include "proxy/admission.h"
#include "proxy/cluster_stats.h"
#include "proxy/log_limiter.h"
#include "proxy/reactor.h"
#include "proxy/relay.h"
#include "proxy/snapshot.h"
#include "proxy/stats.h"
#include "sni/client_hello_parser.h"
#include "sni/proxy_protocol.h"

namespace meshgate::proxy {

class Session;
using LiveSessions = absl::flat_hash_set<Session*>;

// What a worker lends every session it accepts. Outlives the sessions, which
// refer to it.
struct WorkerContext {
  std::shared_ptr<WorkerRoutes> routes;  // the current snapshot
  ProxyStats* stats = nullptr;
  PipePool* pipes = nullptr;
  LogLimiter* log_limiter = nullptr;
  AccessLog* access_log = nullptr;         // null: off
  size_t worker_index = 0;                 // this worker's access-log queue
  LiveSessions* live = nullptr;             // open sessions, for the drain and the sweep
  Admission* admission = nullptr;  // for the per-source count after a PROXY header (null: none)
  Reactor* reactor = nullptr;      // the worker's loop: every session's sockets and deadline
  // The listener's TCP_DEFER_ACCEPT wait (0: none). A connection accepted
  // with nothing to read has waited that long since its SYN, and its hello
  // deadline is that much shorter (Session::ChargeDeferredWait).
  std::chrono::milliseconds defer_accept{0};
};

// An established upstream connection in the data-path gauges: the worker's
// upstream_cx_active and its cluster's cx_active, from the connect until the
// session is gone.
class UpstreamGauges {
 public:
  UpstreamGauges(Counter& worker_active, base::SharedCounter& cluster_active)
      : worker_active_(worker_active), cluster_active_(cluster_active) {
    worker_active_.Inc();
    cluster_active_.Inc();
  }
  ~UpstreamGauges() {
    worker_active_.Dec();
    cluster_active_.Dec();
  }
  UpstreamGauges(const UpstreamGauges&) = delete;
  UpstreamGauges& operator=(const UpstreamGauges&) = delete;

 private:
  Counter& worker_active_;
  base::SharedCounter& cluster_active_;
};

class Session final : private FlowOwner, private Pollable, private Reactor::Timer {
 public:
  // fd: the accepted, non-blocking socket (the session closes it). peer: the
  // client's address as accept() returned it. admission: its share of the
  // overload counts (proxy/admission.h), given back with it.
  Session(int fd, const boost::asio::ip::tcp::endpoint& peer, const WorkerContext& ctx,
          AdmissionTicket admission = {});
  // Only the reactor's deferred delete after a close, or the worker's
  // shutdown (Abandon) leads here.
  ~Session();
  void Start();
  // The drain time ran out: close now, as "drained".
  void Drain() { Close(Termination::kDrained); }
  // The worker is shutting down: close without counting a termination.
  void Abandon();
  // The worker's periodic sweep (SessionSweep): closes a relaying session
  // idle for its idle timeout, or connected for its cluster's
  // maxConnectionDuration.
  void CheckIdle(std::chrono::steady_clock::time_point now);

 private:
  using Clock = std::chrono::steady_clock;

  // In order: CheckIdle compares them.
  enum class Stage : uint8_t { kHello, kConnecting, kWritingHello, kRelaying };
  static constexpr unsigned kDownTag = 0;
  static constexpr unsigned kUpTag = 1;

  void OnEvents(unsigned tag, uint32_t events) override;
  void OnTimer() override;  // the hello deadline, or the connect timeout
  void ReadHello();
  size_t HelloRoom();  // 0: refused as too large
  // Each takes the bytes read so far; true: more are needed.
  bool OnHelloBytes(size_t n);
  bool OnProxyHeaderBytes();
  bool OnSniffBytes();
  bool FeedHello(std::span<const uint8_t> chunk);
  void OnReadHelloError(int err);  // 0: EOF
  void ChargeDeferredWait();
  // PROXY protocol (README "PROXY protocol"): a trusted source's header is
  // read first; an untrusted source's first bytes are checked for one.
  bool ApplyProxyHeader(const sni::ProxyHeader& header);  // false: refused
  void Refuse(Refusal why, std::string_view detail);
  void OnHello();
  bool Authorized();  // false: refused (rbac_denied) and closed
  void DoConnect();
  std::chrono::milliseconds ConnectTimeout() const;
  int OpenUpstream(const boost::asio::ip::tcp::endpoint& target);  // 0 or errno
  void OnUpstreamEvents(uint32_t events);
  void OnConnected();
  void OnConnectFailed(int err);  // 0: timed out
  bool SendsProxyHeader() const;  // upstreamProxyProtocol matches the cluster
  void WriteHello();
  void SetConnectionLimits(Clock::time_point connected);
  void StartRelay();
  void OnFlowProgress(const Flow& flow, size_t n) override;
  void OnFlowEnd(const Flow& flow, Flow::End end) override;
  void ResumeLater(Flow& flow) override;
  void CloseSockets();
  // "ip:port" of the client, for logs: formatted only when a line is written.
  std::string Peer() const { return io::FormatEndpoint(client_endpoint_); }

  void Reject(Termination why, std::string_view detail);
  void Close(Termination why);
  void CountIstioClose(Termination why);
  void WriteAccessLog(Termination why);

  const WorkerContext& ctx_;  // the worker's: outlives its sessions
  // The snapshot the session started with (the worker's moves on at a reload).
  std::shared_ptr<WorkerRoutes> routes_;
  int down_ = -1;
  int up_ = -1;
  Reactor::Handle handle_;
  Stage stage_ = Stage::kHello;
  // Each socket's events from before the relay, for its flow (Flow::OnSrcEvents).
  uint32_t early_events_[2] = {0, 0};
  bool charged_defer_ = false; // ChargeDeferredWait ran
  bool hello_drained_ = false; // the read that completed the hello emptied the socket
  boost::asio::ip::tcp::endpoint peer_endpoint_;  // the direct peer, from accept()
  // The client: the peer, or the source a trusted PROXY header carried. The
  // access log, consistent hashing, remoteIpBlocks and per-source limits use it.
  boost::asio::ip::tcp::endpoint client_endpoint_;
  std::optional<boost::asio::ip::tcp::endpoint> proxied_dst_;  // the header's destination
  enum class Phase : uint8_t { kProxyHeader, kSniff, kHello } phase_ = Phase::kSniff;
  std::optional<Refusal> refused_;   // why, when refused at the PROXY header
  std::vector<uint8_t> upstream_header_;  // the v2 header sent before the hello
  size_t hello_sent_ = 0;            // of upstream_header_ then hello_buf_, written upstream
  std::string_view denied_by_;       // the AuthorizationPolicy that refused it (in the table)

  sni::ClientHelloParser parser_;
  std::vector<uint8_t> hello_buf_;   // every byte read before relaying
  size_t hello_len_ = 0;

  const config::Cluster* cluster_ = nullptr;
  lb::ClusterState* cluster_state_ = nullptr;
  ClusterStats* cluster_stats_ = nullptr;
  IstioTcpStats* istio_ = nullptr;  // istio_tcp_*: from the upstream connect, or the refusal
  // After routes_, so destroyed before the snapshot it points into is released.
  lb::UpstreamLease lease_;        // cluster slot and endpoint count, from the pick
  std::optional<UpstreamGauges> connected_;  // from the upstream connect
  Clock::time_point connect_started_;
  uint64_t client_hash_ = 0;         // source IP, for consistentHash
  absl::InlinedVector<uint32_t, 4> tried_;  // endpoint indices attempted
  int endpoint_ = -1;                // the last one tried, for logs

  std::optional<Flow> down_to_up_;  // in the session: no allocations of their own
  std::optional<Flow> up_to_down_;
  bool first_eof_from_downstream_ = false;
  bool saw_eof_ = false;
  Clock::time_point start_;
  std::chrono::system_clock::time_point start_wall_;  // for the access log
  Clock::time_point last_activity_;
  // From the upstream connect, for the sweep: the cluster's idle timeout (else
  // the gateway's) and the time its maxConnectionDuration runs out (max: none).
  Clock::duration idle_timeout_ = Clock::duration::max();
  Clock::time_point close_by_ = Clock::time_point::max();
  bool closed_ = false;
  AdmissionTicket admission_;  // the open-connection and per-source counts
};

}  // namespace meshgate::proxy
