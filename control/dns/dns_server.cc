// UDP: one socket, drained in a loop of non-blocking reads per wake-up and
// answered at once (a full send buffer drops the answer, as a lost datagram
// would). TCP (RFC 7766): two-byte length framing, several queries per
// connection answered in order, an idle deadline, a cap on open connections.
#include "control/dns/dns_server.h"

#include <optional>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "base/address.h"
#include "base/names.h"
#include "base/io/endpoint.h"

namespace meshgate::control::dns {

namespace asio = boost::asio;
using boost::system::error_code;
using tcp = asio::ip::tcp;
using udp = asio::ip::udp;

namespace {

constexpr size_t kMaxTcpConnections = 256;
constexpr auto kTcpIdle = std::chrono::seconds(10);  // RFC 7766 6.2.3: seconds, not minutes
constexpr int kDrainPerWake = 64;
constexpr size_t kTcpLimit = 65535;

}  // namespace

struct DnsServer::Impl {
  // First, so they outlive the io_context, whose destruction frees the
  // sessions still queued in it (and they count themselves out).
  DnsServerStats stats;
  std::array<base::Counter, kParseOutcomeCount> outcomes;

  asio::io_context io{1};
  udp::socket udp_socket{io};
  tcp::acceptor acceptor{io};
  asio::steady_timer accept_backoff{io};
  std::thread thread;
  std::array<uint8_t, 65535> udp_buffer{};
  udp::endpoint peer;

  std::mutex mu;
  std::shared_ptr<const Zone> next_zone;  // guarded by mu
  std::atomic<uint64_t> zone_generation{0};
  uint64_t seen_generation = 0;            // the DNS thread's
  std::shared_ptr<const Zone> zone;        // the DNS thread's

  const Zone& CurrentZone();
  std::optional<std::vector<uint8_t>> Handle(const uint8_t* data, size_t size, bool over_udp);
  void CountRcode(const Reply& reply);
  void DoReceive();
  void OnDatagram(size_t size);
  void DoAccept();
};

namespace {

// One TCP connection: read a length, read the message, answer, again.
class TcpSession : public std::enable_shared_from_this<TcpSession> {
 public:
  TcpSession(tcp::socket socket, DnsServer::Impl& server) : socket_(std::move(socket)), timer_(socket_.get_executor()), server_(server) {
    server_.stats.tcp_open.Inc();
  }
  ~TcpSession() { server_.stats.tcp_open.Dec(); }
  void Start() { DoReadLength(); }

 private:
  void Arm() {
    timer_.expires_after(kTcpIdle);
    timer_.async_wait([self = weak_from_this()](const error_code& ec) {
      if (auto s = self.lock(); s && !ec) s->socket_.close();
    });
  }
  void DoReadLength() {
    Arm();
    asio::async_read(socket_, asio::buffer(length_),
                     [self = shared_from_this()](const error_code& ec, size_t) { self->OnLength(ec); });
  }
  void OnLength(const error_code& ec) {
    if (ec) return;  // EOF, the idle deadline, or a reset: the connection ends
    message_.resize(size_t{length_[0]} << 8 | length_[1]);
    asio::async_read(socket_, asio::buffer(message_),
                     [self = shared_from_this()](const error_code& e, size_t) { self->OnMessage(e); });
  }
  void OnMessage(const error_code& ec) {
    if (ec) return;
    server_.stats.tcp_queries.Inc();
    auto answer = server_.Handle(message_.data(), message_.size(), false);
    if (!answer) return;  // nothing to say to a response or a runt: close
    reply_.assign({static_cast<uint8_t>(answer->size() >> 8), static_cast<uint8_t>(answer->size())});
    reply_.insert(reply_.end(), answer->begin(), answer->end());
    asio::async_write(socket_, asio::buffer(reply_), [self = shared_from_this()](const error_code& e, size_t) {
      if (!e) self->DoReadLength();
    });
  }

  tcp::socket socket_;
  asio::steady_timer timer_;
  DnsServer::Impl& server_;
  std::array<uint8_t, 2> length_{};
  std::vector<uint8_t> message_;
  std::vector<uint8_t> reply_;
};

}  // namespace

const Zone& DnsServer::Impl::CurrentZone() {
  const uint64_t generation = zone_generation.load(std::memory_order_acquire);
  if (generation != seen_generation) {
    std::lock_guard<std::mutex> lock(mu);
    zone = next_zone;
    seen_generation = generation;
  }
  return *zone;
}

void DnsServer::Impl::CountRcode(const Reply& reply) {
  switch (reply.rcode) {
    case Rcode::kNoError:
      (reply.answers.empty() ? stats.nodata : stats.answered).Inc();
      break;
    case Rcode::kNxDomain:
      stats.nxdomain.Inc();
      break;
    case Rcode::kRefused:
      stats.refused.Inc();
      break;
    default:
      break;
  }
}

// The answer to one message; nothing when it gets none.
std::optional<std::vector<uint8_t>> DnsServer::Impl::Handle(const uint8_t* data, size_t size, bool over_udp) {
  const ParseResult parsed = ParseQuery(data, size);
  outcomes[static_cast<size_t>(parsed.outcome)].Inc();
  switch (parsed.outcome) {
    case ParseOutcome::kOk:
      break;
    case ParseOutcome::kTooShort:
    case ParseOutcome::kIsResponse:
      stats.dropped.Inc();
      return std::nullopt;
    case ParseOutcome::kNotQuery:
      stats.notimp.Inc();
      return BuildHeaderOnlyError(data, Rcode::kNotImp);  // RFC 1035 4.1.1
    case ParseOutcome::kBadVersion: {
      stats.badvers.Inc();
      Reply badvers;
      badvers.extended_rcode_high = 1;  // BADVERS = 16 (RFC 6891 6.1.3)
      badvers.authoritative = false;
      return BuildReply(data, parsed.query, badvers, 0, kClassicUdpSize);
    }
    default:
      stats.formerr.Inc();
      return BuildHeaderOnlyError(data, Rcode::kFormErr);
  }
  const Zone::Answer answer = CurrentZone().Resolve(parsed.query);
  CountRcode(answer.reply);
  const size_t limit = over_udp ? UdpLimit(parsed.query) : kTcpLimit;
  std::vector<uint8_t> out = BuildReply(data, parsed.query, answer.reply, answer.zone_labels, limit);
  if (out[2] & 0x02) stats.truncated.Inc();
  return out;
}

void DnsServer::Impl::DoReceive() {
  udp_socket.async_receive_from(asio::buffer(udp_buffer), peer, [this](const error_code& ec, size_t n) {
    if (ec == asio::error::operation_aborted) return;
    if (!ec) OnDatagram(n);
    // Then whatever else is queued, without a trip through the reactor each.
    for (int i = 0; i < kDrainPerWake; ++i) {
      error_code again;
      const size_t more = udp_socket.receive_from(asio::buffer(udp_buffer), peer, 0, again);
      if (again) break;
      OnDatagram(more);
    }
    DoReceive();
  });
}

void DnsServer::Impl::OnDatagram(size_t size) {
  stats.udp_queries.Inc();
  auto answer = Handle(udp_buffer.data(), size, true);
  if (!answer) return;
  error_code ec;
  udp_socket.send_to(asio::buffer(*answer), peer, 0, ec);
  if (ec) stats.send_errors.Inc();
}

void DnsServer::Impl::DoAccept() {
  acceptor.async_accept([this](const error_code& ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted) return;
    if (ec) {
      // Out of descriptors, most likely: back off instead of spinning.
      spdlog::warn("meshgatectl serve: DNS TCP accept: {}", ec.message());
      accept_backoff.expires_after(std::chrono::milliseconds(100));
      accept_backoff.async_wait([this](const error_code& e) {
        if (!e) DoAccept();
      });
      return;
    }
    if (stats.tcp_open.value() >= kMaxTcpConnections) {
      stats.tcp_rejected.Inc();
    } else {
      stats.tcp_connections.Inc();
      std::make_shared<TcpSession>(std::move(socket), *this)->Start();
    }
    DoAccept();
  });
}

namespace {

// UDP and TCP on the same port: with port 0, UDP picks one and TCP takes
// the same, retried a few times in case that TCP port is busy.
absl::Status Bind(DnsServer::Impl& s, const base::IpPort& address) {
  const auto ip = asio::ip::make_address(address.ip);
  for (int attempt = 0; attempt < 16; ++attempt) {
    error_code ec;
    s.udp_socket = udp::socket(s.io);
    s.udp_socket.open(ip.is_v6() ? udp::v6() : udp::v4(), ec);
    if (!ec) s.udp_socket.bind({ip, address.port}, ec);
    if (ec) return absl::UnavailableError(absl::StrCat("DNS: cannot bind UDP ", address.ip, ":", address.port, ": ", ec.message()));
    const uint16_t port = s.udp_socket.local_endpoint().port();
    s.acceptor = tcp::acceptor(s.io);
    s.acceptor.open(ip.is_v6() ? tcp::v6() : tcp::v4(), ec);
    if (!ec) s.acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) s.acceptor.bind({ip, port}, ec);
    if (!ec) s.acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (!ec) return absl::OkStatus();
    if (address.port != 0) {
      return absl::UnavailableError(absl::StrCat("DNS: cannot bind TCP ", address.ip, ":", port, ": ", ec.message()));
    }
  }
  return absl::UnavailableError("DNS: no port free for both UDP and TCP after 16 tries");
}

}  // namespace

absl::StatusOr<std::unique_ptr<DnsServer>> DnsServer::Start(const std::string& listen, std::shared_ptr<const Zone> zone) {
  auto address = base::ParseListenAddress(listen);
  if (!address.ok()) return address.status();
  auto impl = std::make_unique<Impl>();
  if (absl::Status s = Bind(*impl, *address); !s.ok()) return s;
  impl->udp_socket.non_blocking(true);
  // Bursts from a load generator or a CoreDNS fleet: a roomy receive buffer.
  error_code ignored;
  impl->udp_socket.set_option(asio::socket_base::receive_buffer_size(4 << 20), ignored);
  impl->zone = zone;
  impl->next_zone = std::move(zone);
  impl->DoReceive();
  impl->DoAccept();
  Impl* raw = impl.get();
  impl->thread = std::thread([raw] { raw->io.run(); });
  return std::unique_ptr<DnsServer>(new DnsServer(std::move(impl)));
}

DnsServer::DnsServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

DnsServer::~DnsServer() {
  impl_->io.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

void DnsServer::SetZone(std::shared_ptr<const Zone> zone) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->next_zone = std::move(zone);
  impl_->zone_generation.fetch_add(1, std::memory_order_release);
}

std::string DnsServer::bound_address() const {
  const udp::endpoint ep = impl_->udp_socket.local_endpoint();
  return io::FormatHostPort(ep.address().to_string(), ep.port());
}

const DnsServerStats& DnsServer::stats() const { return impl_->stats; }

uint64_t DnsServer::outcome_count(ParseOutcome o) const { return impl_->outcomes[static_cast<size_t>(o)].value(); }

std::string DnsServer::Summary() const {
  std::string out;
  const DnsServerStats* sets[] = {&impl_->stats};
  base::AppendSummary(out, "", sets, 1, true);
  std::string malformed;
  for (size_t i = 1; i < kParseOutcomeCount; ++i) {
    if (const uint64_t n = impl_->outcomes[i].value()) {
      absl::StrAppend(&malformed, " ", base::AbslView(ParseOutcomeName(static_cast<ParseOutcome>(i))), "=", n);
    }
  }
  if (!malformed.empty()) absl::StrAppend(&out, out.empty() ? "" : " ", "by reason:", malformed);
  return out;
}

}  // namespace meshgate::control::dns
