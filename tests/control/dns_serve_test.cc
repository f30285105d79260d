// The `.global` DNS server of a real `meshgatectl serve`, asked by dig
// (Debian dnsutils), c-ares and raw sockets: answers equal the published
// ServiceEntries' `addresses`, follow a new service within 1 s, and
// malformed queries get FORMERR or silence, counted by reason, never a crash.
// RFC 1035 (format), RFC 2308 (negative answers), RFC 6891 (EDNS0),
// RFC 7766 (TCP), draft-vixie-dnsext-dns0x20 (case kept).
#include <ares.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "base/io/http_server.h"
#include "gtest/gtest.h"
#include "tests/control/run_command.h"
#include "tests/support/meshgate_process.h"

namespace {

namespace fs = std::filesystem;
using meshgate::testing::Read;
using meshgate::testing::Shell;
using meshgate::testing::WaitFor;

void Write(const std::string& path, const std::string& text) {
  std::ofstream(path + ".tmp") << text;
  fs::rename(path + ".tmp", path);
}

std::string KubeService(const std::string& name, const std::string& ns) {
  return "apiVersion: v1\nkind: Service\nmetadata: {name: " + name + ", namespace: " + ns +
         "}\nspec:\n  ports: [{name: http, port: 8000}]\n";
}

// meshgatectl serve with dns: on 127.0.0.1:0; the ports come from its log.
class DnsServe {
 public:
  explicit DnsServe(const std::string& dir) : dir_(dir) {
    fs::create_directories(dir + "/m1");
    fs::create_directories(dir + "/m2");
    Write(dir + "/m1/sleep.yaml", KubeService("sleep", "foo"));
    Write(dir + "/m2/httpbin.yaml", KubeService("httpbin", "bar"));
    Write(dir + "/serve.yaml",
          "dns: {listen: \"127.0.0.1:0\", zone: global, cluster: cluster1}\n"
          "clusters:\n"
          "- {name: cluster1, network: network1, gateway: 192.0.2.1, mesh: [m1]}\n"
          "- {name: cluster2, network: network2, gateway: 192.0.2.2, mesh: [m2]}\n");
    const std::string log = dir + "/serve.log";
    const std::vector<std::string> args = {MESHGATECTL_BIN, "serve", "--config", dir + "/serve.yaml", "--listen",
                                           "127.0.0.1:0"};
    pid_ = meshgate::testing::SpawnLogged(args, log);
    WaitFor([&] { return dns_port() != 0 || !Alive(); }, 10000);
  }
  ~DnsServe() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  std::string Log() const { return Read(dir_ + "/serve.log"); }
  uint16_t dns_port() const { return PortAfter("udp+tcp 127.0.0.1:"); }
  std::string http() const { return "127.0.0.1:" + std::to_string(PortAfter("serving HTTP on 127.0.0.1:")); }
  bool Alive() { return pid_ > 0 && ::waitpid(pid_, nullptr, WNOHANG) == 0; }

 private:
  uint16_t PortAfter(const std::string& marker) const {
    const std::string text = Log();
    const size_t at = text.find(marker);
    uint32_t port = 0;
    if (at == std::string::npos) return 0;
    const size_t start = at + marker.size();
    return absl::SimpleAtoi(text.substr(start, text.find('\n', start) - start), &port) ? static_cast<uint16_t>(port)
                                                                                      : 0;
  }
  std::string dir_;
  pid_t pid_ = -1;
};

class DnsServeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(Shell("command -v dig").code, 0) << "dig is missing: install dnsutils (scripts/install-deps.sh)";
    char tmpl[] = "/tmp/meshgatectl-dns-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    serve_ = std::make_unique<DnsServe>(dir_);
    ASSERT_NE(serve_->dns_port(), 0) << serve_->Log();
  }
  void TearDown() override {
    serve_.reset();
    fs::remove_all(dir_);
  }
  std::string Dig(const std::string& args) const {
    return Shell("dig +time=2 +tries=1 @127.0.0.1 -p " + std::to_string(serve_->dns_port()) + " " + args).out;
  }
  // The `addresses` of cluster1's published ServiceEntries, by host.
  std::map<std::string, std::string> PublishedVips() const {
    const auto r = meshgate::io::HttpCall(serve_->http(), "GET", "/v1/serviceentries?cluster=cluster1", 3000);
    std::map<std::string, std::string> out;
    static const std::regex entry(R"(hosts: \[([^\]]+)\][\s\S]*?addresses: \[([^\]]+)\])");
    for (std::sregex_iterator it(r.body.begin(), r.body.end(), entry), end; it != end; ++it) {
      out[(*it)[1]] = (*it)[2];
    }
    return out;
  }
  std::string Healthz() const { return meshgate::io::HttpCall(serve_->http(), "GET", "/healthz", 3000).body; }

  std::string dir_;
  std::unique_ptr<DnsServe> serve_;
};

TEST_F(DnsServeTest, DigGetsTheServiceEntryAddressesOverUdpAndTcp) {
  const auto vips = PublishedVips();
  ASSERT_EQ(vips.count("httpbin.bar.global"), 1u) << serve_->Log();
  EXPECT_EQ(vips.count("sleep.foo.global"), 0u) << "cluster1's own service is not a ServiceEntry for it";
  EXPECT_EQ(Dig("+short httpbin.bar.global A"), vips.at("httpbin.bar.global") + "\n");
  EXPECT_EQ(Dig("+short +tcp httpbin.bar.global A"), vips.at("httpbin.bar.global") + "\n");
  // 0x20: the answer's owner is the question's spelling.
  const std::string mixed = Dig("+noall +answer HtTpBiN.bAr.GlObAl A");
  EXPECT_NE(mixed.find("HtTpBiN.bAr.GlObAl."), std::string::npos) << mixed;
  EXPECT_NE(mixed.find(vips.at("httpbin.bar.global")), std::string::npos) << mixed;

  const std::string aaaa = Dig("httpbin.bar.global AAAA");
  EXPECT_NE(aaaa.find("status: NOERROR"), std::string::npos) << aaaa;
  EXPECT_NE(aaaa.find("ANSWER: 0, AUTHORITY: 1"), std::string::npos) << "NODATA with the SOA: " << aaaa;
  const std::string nx = Dig("+tcp nope.bar.global A");
  EXPECT_NE(nx.find("status: NXDOMAIN"), std::string::npos) << nx;
  EXPECT_NE(nx.find("IN\tSOA\tns.global. hostmaster.global."), std::string::npos) << nx;
  EXPECT_NE(Dig("example.com A").find("status: REFUSED"), std::string::npos);
  EXPECT_NE(Dig("+short global SOA").find("ns.global. hostmaster.global."), std::string::npos);
  EXPECT_EQ(Dig("+short global NS"), "ns.global.\n");
  const std::string edns = Dig("+bufsize=4096 httpbin.bar.global");
  EXPECT_NE(edns.find("EDNS: version: 0, flags:; udp: 1232"), std::string::npos) << edns;
  EXPECT_NE(Dig("+noedns httpbin.bar.global").find("ADDITIONAL: 0"), std::string::npos);
}

// c-ares, the resolver meshgate itself links: one A query, its addresses.
std::vector<std::string> CaresLookup(uint16_t port, const std::string& name, int* status_out) {
  ares_channel channel = nullptr;
  ares_options options{};
  options.timeout = 2000;
  options.tries = 1;
  if (ares_init_options(&channel, &options, ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES) != ARES_SUCCESS) return {};
  ares_set_servers_ports_csv(channel, ("127.0.0.1:" + std::to_string(port)).c_str());
  struct Result {
    int status = -1;
    std::vector<std::string> addresses;
  } result;
  ares_query(channel, name.c_str(), 1 /* IN */, 1 /* A */,
             [](void* arg, int status, int, unsigned char* abuf, int alen) {
               auto* r = static_cast<Result*>(arg);
               r->status = status;
               ares_addrttl ttls[16];
               int n = 16;
               if (status == ARES_SUCCESS && ares_parse_a_reply(abuf, alen, nullptr, ttls, &n) == ARES_SUCCESS) {
                 char text[INET_ADDRSTRLEN];
                 for (int i = 0; i < n; ++i) r->addresses.push_back(inet_ntop(AF_INET, &ttls[i].ipaddr, text, sizeof text));
               }
             },
             &result);
  while (result.status == -1) {
    fd_set read, write;
    FD_ZERO(&read);
    FD_ZERO(&write);
    const int nfds = ares_fds(channel, &read, &write);
    if (nfds == 0) break;
    timeval tv{}, *tvp = ares_timeout(channel, nullptr, &tv);
    select(nfds, &read, &write, nullptr, tvp);
    ares_process(channel, &read, &write);
  }
  ares_destroy(channel);
  *status_out = result.status;
  return result.addresses;
}

TEST_F(DnsServeTest, CaresGetsTheSameAddressesAndAnAddedServiceWithinOneSecond) {
  ASSERT_EQ(ares_library_init(ARES_LIB_INIT_ALL), ARES_SUCCESS);
  int status = 0;
  const auto vips = PublishedVips();
  EXPECT_EQ(CaresLookup(serve_->dns_port(), "httpbin.bar.global", &status),
            std::vector<std::string>{vips.at("httpbin.bar.global")});
  CaresLookup(serve_->dns_port(), "reviews.bar.global", &status);
  EXPECT_EQ(status, ARES_ENOTFOUND);

  // A new Service in cluster2: answered, from the ServiceEntry's VIP, within 1 s.
  const auto start = std::chrono::steady_clock::now();
  Write(dir_ + "/m2/reviews.yaml", KubeService("reviews", "bar"));
  std::vector<std::string> got;
  EXPECT_TRUE(WaitFor([&] { return !(got = CaresLookup(serve_->dns_port(), "reviews.bar.global", &status)).empty(); },
                      1000))
      << serve_->Log();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(1000));
  EXPECT_EQ(got, std::vector<std::string>{PublishedVips().at("reviews.bar.global")});

  // And removed again: NXDOMAIN, as its ServiceEntry is gone.
  fs::remove(dir_ + "/m2/reviews.yaml");
  EXPECT_TRUE(WaitFor([&] { return CaresLookup(serve_->dns_port(), "reviews.bar.global", &status), status == ARES_ENOTFOUND; }, 2000));
  EXPECT_EQ(PublishedVips().count("reviews.bar.global"), 0u);
  ares_library_cleanup();
}

// Sends `packet` over UDP; the reply, or "" after `wait_ms` of silence.
std::string RawUdp(uint16_t port, const std::string& packet, int wait_ms = 300) {
  const int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(port);
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::sendto(fd, packet.data(), packet.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to);
  pollfd p{fd, POLLIN, 0};
  std::string reply;
  if (::poll(&p, 1, wait_ms) == 1) {
    char buf[2048];
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n > 0) reply.assign(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return reply;
}

std::string Header(uint8_t flags_hi, uint16_t qdcount, uint16_t arcount = 0) {
  return std::string{'\xAB', '\xCD', static_cast<char>(flags_hi), 0, static_cast<char>(qdcount >> 8),
                     static_cast<char>(qdcount), 0, 0, 0, 0, static_cast<char>(arcount >> 8), static_cast<char>(arcount)};
}

TEST_F(DnsServeTest, MalformedQueriesGetFormerrOrSilenceAndAreCountedByReason) {
  const uint16_t port = serve_->dns_port();
  const std::string question = std::string("\x07httpbin\x03" "bar\x06global\x00", 20) + std::string("\x00\x01\x00\x01", 4);
  // A thousand questions.
  std::string thousand = Header(1, 1000);
  for (int i = 0; i < 1000; ++i) thousand += question;
  const std::pair<std::string, std::string> formerr[] = {
      {"1000 questions", thousand},
      {"a compression loop", Header(1, 1) + std::string("\xC0\x0C\x00\x01\x00\x01", 6)},
      {"a pointer past the end", Header(1, 1) + std::string("\x03" "abc\xC0\xFF\x00\x01\x00\x01", 10)},
      {"a truncated name", Header(1, 1) + std::string("\x3F" "abc", 4)},
      {"a truncated question", Header(1, 1) + question.substr(0, 22)},
      {"two OPTs", Header(1, 1, 2) + question + std::string(22, '\0')},
  };
  for (const auto& [what, packet] : formerr) {
    const std::string reply = RawUdp(port, packet);
    ASSERT_GE(reply.size(), 12u) << what;
    EXPECT_EQ(reply.substr(0, 2), "\xAB\xCD") << what;
    EXPECT_EQ(reply[3] & 0xF, 1) << what << ": FORMERR";
  }
  const std::string notify = RawUdp(port, Header(0x20 | 1, 1) + question);  // opcode 4
  ASSERT_GE(notify.size(), 12u);
  EXPECT_EQ(notify[3] & 0xF, 4) << "NOTIMP";
  EXPECT_EQ(RawUdp(port, Header(0x81, 1) + question), "") << "a response is never answered";
  EXPECT_EQ(RawUdp(port, "\x01\x02\x03"), "") << "a runt is dropped";

  // Still serving, and each reason counted on /healthz.
  EXPECT_EQ(Dig("+short httpbin.bar.global"), PublishedVips().at("httpbin.bar.global") + "\n");
  const std::string health = Healthz();
  for (const char* counted : {"formerr=6", "notimp=1", "dropped=2", "bad_question_count=1", "compressed_name=2",
                              "truncated_name=1", "truncated_question=1", "bad_additional=1", "is_response=1",
                              "too_short=1"}) {
    EXPECT_NE(health.find(counted), std::string::npos) << counted << " in\n" << health;
  }
}

TEST_F(DnsServeTest, TcpAnswersSeveralQueriesOnOneConnection) {
  // dig +keepopen sends every query on one connection (RFC 7766 6.2.1).
  const std::string out = Dig("+tcp +keepopen +short httpbin.bar.global A global SOA httpbin.bar.global A");
  const auto vips = PublishedVips();
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 3) << out;
  EXPECT_NE(out.find(vips.at("httpbin.bar.global")), std::string::npos);
  const std::string health = Healthz();
  EXPECT_TRUE(std::regex_search(health, std::regex(R"(tcp_queries=3\b)"))) << health;
  EXPECT_TRUE(std::regex_search(health, std::regex(R"(tcp_connections=1\b)"))) << "one connection: " << health;
}

}  // namespace
