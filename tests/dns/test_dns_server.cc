#include "tests/dns/test_dns_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstring>
#include <stdexcept>

namespace meshgate::testing {

namespace {

constexpr size_t kHeaderBytes = 12;
constexpr size_t kMaxUdpReply = 512;  // no EDNS: classic UDP limit
constexpr uint8_t kRcodeNxdomain = 3, kRcodeServfail = 2, kRcodeRefused = 5;

// Bounds-checked cursor over the query.
struct Reader {
  const uint8_t* p;
  size_t len;
  size_t pos = 0;
  bool U8(uint8_t& v) {
    if (pos + 1 > len) return false;
    v = p[pos++];
    return true;
  }
  bool U16(uint16_t& v) {
    if (pos + 2 > len) return false;
    v = static_cast<uint16_t>(p[pos] << 8 | p[pos + 1]);
    pos += 2;
    return true;
  }
  // An uncompressed QNAME, lowercased, without the trailing dot.
  bool Name(std::string& out) {
    for (;;) {
      uint8_t n;
      if (!U8(n) || (n & 0xC0) != 0 || pos + n > len) return false;
      if (n == 0) return true;
      if (!out.empty()) out += '.';
      for (size_t i = 0; i < n; ++i) out += static_cast<char>(std::tolower(p[pos + i]));
      pos += n;
    }
  }
};

void Put16(std::vector<uint8_t>& out, uint16_t v) {
  out.push_back(static_cast<uint8_t>(v >> 8));
  out.push_back(static_cast<uint8_t>(v));
}
void Put32(std::vector<uint8_t>& out, uint32_t v) {
  Put16(out, static_cast<uint16_t>(v >> 16));
  Put16(out, static_cast<uint16_t>(v));
}

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

}  // namespace

TestDnsServer::TestDnsServer() {
  fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) throw std::runtime_error("dns test server: socket");
  int rcvbuf = 4 << 20;  // bursts of hundreds of queries
  ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t sl = sizeof sa;
  if (::bind(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 ||
      ::getsockname(fd_, reinterpret_cast<sockaddr*>(&sa), &sl) != 0)
    throw std::runtime_error("dns test server: bind");
  port_ = ntohs(sa.sin_port);
  thread_ = std::thread([this] { Serve(); });
}

TestDnsServer::~TestDnsServer() {
  stop_ = true;
  thread_.join();
  ::close(fd_);
}

std::string TestDnsServer::address() const { return "127.0.0.1:" + std::to_string(port_); }

void TestDnsServer::Set(const std::string& name, std::vector<std::string> addresses, uint32_t ttl) {
  Records r;
  r.ttl = ttl;
  for (const std::string& a : addresses) {
    std::array<uint8_t, 4> v4;
    std::array<uint8_t, 16> v6;
    if (::inet_pton(AF_INET, a.c_str(), v4.data()) == 1) {
      r.a.push_back(v4);
    } else if (::inet_pton(AF_INET6, a.c_str(), v6.data()) == 1) {
      r.aaaa.push_back(v6);
    } else {
      throw std::invalid_argument("dns test server: not an IP: " + a);
    }
  }
  std::lock_guard lock(mu_);
  table_[Lower(name)] = std::move(r);
}

void TestDnsServer::Remove(const std::string& name) {
  std::lock_guard lock(mu_);
  table_.erase(Lower(name));
}

void TestDnsServer::SetMode(Mode mode, uint16_t qtype) {
  std::lock_guard lock(mu_);
  if (qtype == 0) {
    mode_ = mode;
    type_mode_.clear();
  } else {
    type_mode_[qtype] = mode;
  }
}

size_t TestDnsServer::Queries(const std::string& name, uint16_t qtype) const { return QueryTimes(name, qtype).size(); }

size_t TestDnsServer::TotalQueries() const {
  std::lock_guard lock(mu_);
  size_t n = 0;
  for (const auto& [key, times] : log_) n += times.size();
  return n;
}

std::vector<TestDnsServer::Clock::time_point> TestDnsServer::QueryTimes(const std::string& name, uint16_t qtype) const {
  std::lock_guard lock(mu_);
  auto it = log_.find({Lower(name), qtype});
  return it == log_.end() ? std::vector<Clock::time_point>{} : it->second;
}

void TestDnsServer::Serve() {
  std::array<uint8_t, 1500> buf;
  std::vector<uint8_t> reply;
  while (!stop_) {
    pollfd pfd{fd_, POLLIN, 0};
    if (::poll(&pfd, 1, 20) <= 0) continue;
    sockaddr_storage from{};
    socklen_t fl = sizeof from;
    const ssize_t n = ::recvfrom(fd_, buf.data(), buf.size(), 0, reinterpret_cast<sockaddr*>(&from), &fl);
    if (n <= 0) continue;
    if (Answer(buf.data(), static_cast<size_t>(n), reply))
      ::sendto(fd_, reply.data(), reply.size(), 0, reinterpret_cast<sockaddr*>(&from), fl);
  }
}

bool TestDnsServer::Answer(const uint8_t* query, size_t len, std::vector<uint8_t>& reply) {
  Reader r{query, len};
  uint16_t id, flags, qdcount, skip, qtype, qclass;
  if (!r.U16(id) || !r.U16(flags) || !r.U16(qdcount) || !r.U16(skip) || !r.U16(skip) || !r.U16(skip)) return false;
  if ((flags & 0x8000) != 0 || qdcount != 1) return false;  // a response, or not one question
  std::string name;
  if (!r.Name(name) || !r.U16(qtype) || !r.U16(qclass)) return false;
  const size_t question_end = r.pos;

  std::lock_guard lock(mu_);
  log_[{name, qtype}].push_back(Clock::now());
  auto tm = type_mode_.find(qtype);
  const Mode mode = tm != type_mode_.end() ? tm->second : mode_;
  if (mode == Mode::kDrop) return false;

  uint8_t rcode = 0;
  const Records* records = nullptr;
  switch (mode) {
    case Mode::kNxdomain: rcode = kRcodeNxdomain; break;
    case Mode::kServfail: rcode = kRcodeServfail; break;
    case Mode::kRefused: rcode = kRcodeRefused; break;
    default: {
      auto it = table_.find(name);
      if (it == table_.end()) {
        rcode = kRcodeNxdomain;
      } else {
        records = &it->second;
      }
    }
  }
  std::vector<const uint8_t*> rdata;
  size_t rdlen = 0;
  if (records && qclass == 1 && qtype == kTypeA) {
    for (const auto& a : records->a) rdata.push_back(a.data());
    rdlen = 4;
  } else if (records && qclass == 1 && qtype == kTypeAaaa) {
    for (const auto& a : records->aaaa) rdata.push_back(a.data());
    rdlen = 16;
  }
  const size_t per_record = 12 + rdlen;
  rdata.resize(std::min(rdata.size(), (kMaxUdpReply - question_end) / per_record));

  reply.clear();
  Put16(reply, id);
  // QR, opcode and RD copied, AA, RA, rcode.
  Put16(reply, static_cast<uint16_t>(0x8000 | (flags & 0x7900) | 0x0400 | 0x0080 | rcode));
  Put16(reply, 1);
  Put16(reply, static_cast<uint16_t>(rdata.size()));
  Put16(reply, 0);
  Put16(reply, 0);
  reply.insert(reply.end(), query + kHeaderBytes, query + question_end);
  for (const uint8_t* d : rdata) {
    Put16(reply, 0xC000 | kHeaderBytes);  // pointer to the question's name
    Put16(reply, qtype);
    Put16(reply, 1);
    Put32(reply, records->ttl);
    Put16(reply, static_cast<uint16_t>(rdlen));
    reply.insert(reply.end(), d, d + rdlen);
  }
  return true;
}

}  // namespace meshgate::testing
