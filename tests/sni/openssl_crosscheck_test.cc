// Our parser against OpenSSL 3 on the same bytes: an OpenSSL server reads the
// hello through a memory BIO and reports what it saw from its client-hello
// callback; an OpenSSL client makes fresh hellos with chosen SNI and ALPN.
#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <memory>
#include <optional>

#include "sni/client_hello_parser.h"
#include "tests/sni/hello_builder.h"

namespace meshgate::sni::testing {
namespace {

struct CtxFree {
  void operator()(SSL_CTX* ctx) const { SSL_CTX_free(ctx); }
};
struct SslFree {
  void operator()(SSL* ssl) const { SSL_free(ssl); }
};
using CtxPtr = std::unique_ptr<SSL_CTX, CtxFree>;
using SslPtr = std::unique_ptr<SSL, SslFree>;

// What OpenSSL's server saw, read from raw extension bodies with just enough
// parsing to be independent of the parser under test.
struct OpenSslView {
  bool called = false;
  std::optional<std::string> sni;
  std::vector<std::string> alpn;
  unsigned legacy_version = 0;
  std::vector<uint16_t> versions;
};

size_t Be16(const unsigned char* p) { return (size_t{p[0]} << 8) | p[1]; }

void ReadServerName(const unsigned char* p, size_t n, OpenSslView& view) {
  size_t at = 2;
  while (n >= 2 && at + 3 <= std::min(n, 2 + Be16(p))) {
    const size_t len = Be16(p + at + 1);
    if (p[at] == 0 && at + 3 + len <= n) view.sni.emplace(p + at + 3, p + at + 3 + len);
    at += 3 + len;
  }
}

void ReadAlpn(const unsigned char* p, size_t n, OpenSslView& view) {
  for (size_t at = 2; n >= 2 && at < n && at + 1 + p[at] <= n; at += 1 + p[at]) {
    view.alpn.emplace_back(p + at + 1, p + at + 1 + p[at]);
  }
}

int OnClientHello(SSL* ssl, int* alert, void* arg) {
  auto& view = *static_cast<OpenSslView*>(arg);
  view.called = true;
  view.legacy_version = SSL_client_hello_get0_legacy_version(ssl);
  const unsigned char* p = nullptr;
  size_t n = 0;
  if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &p, &n)) ReadServerName(p, n, view);
  if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_application_layer_protocol_negotiation, &p, &n)) {
    ReadAlpn(p, n, view);
  }
  if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_supported_versions, &p, &n) && n >= 1) {
    for (size_t at = 1; at + 2 <= n; at += 2) view.versions.push_back(Be16(p + at));
  } else {
    view.versions.push_back(static_cast<uint16_t>(view.legacy_version));
  }
  return SSL_CLIENT_HELLO_ERROR;  // we only came to look
}

OpenSslView ServerSees(const Bytes& wire) {
  OpenSslView view;
  CtxPtr ctx(SSL_CTX_new(TLS_server_method()));
  SSL_CTX_set_client_hello_cb(ctx.get(), &OnClientHello, &view);
  SslPtr ssl(SSL_new(ctx.get()));
  BIO* in = BIO_new(BIO_s_mem());
  BIO_write(in, wire.data(), static_cast<int>(wire.size()));
  SSL_set_bio(ssl.get(), in, BIO_new(BIO_s_mem()));
  SSL_set_accept_state(ssl.get());
  SSL_do_handshake(ssl.get());
  ERR_clear_error();
  return view;
}

// The bytes an OpenSSL client sends first.
Bytes OpenSslClientHello(const std::string& sni, const std::vector<std::string>& alpn,
                         int max_version) {
  CtxPtr ctx(SSL_CTX_new(TLS_client_method()));
  SSL_CTX_set_max_proto_version(ctx.get(), max_version);
  SslPtr ssl(SSL_new(ctx.get()));
  if (!sni.empty()) SSL_set_tlsext_host_name(ssl.get(), sni.c_str());
  if (!alpn.empty()) {
    ByteWriter protos;
    for (const auto& p : alpn) protos.Prefixed8(ToBytes(p));
    const Bytes wire = protos.Take();
    EXPECT_EQ(SSL_set_alpn_protos(ssl.get(), wire.data(), static_cast<unsigned>(wire.size())), 0);
  }
  BIO* out = BIO_new(BIO_s_mem());
  SSL_set_bio(ssl.get(), BIO_new(BIO_s_mem()), out);
  SSL_set_connect_state(ssl.get());
  EXPECT_EQ(SSL_do_handshake(ssl.get()), -1);
  EXPECT_EQ(SSL_get_error(ssl.get(), -1), SSL_ERROR_WANT_READ);
  char* data = nullptr;
  const long n = BIO_get_mem_data(out, &data);
  ERR_clear_error();
  return Bytes(data, data + n);
}

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

void ExpectAgreement(const Bytes& wire) {
  const ParseResult ours = ParseClientHello(wire);
  const OpenSslView theirs = ServerSees(wire);
  ASSERT_TRUE(theirs.called) << "OpenSSL did not reach its client-hello callback";
  ASSERT_EQ(ours.status, ParseStatus::kClientHello) << Describe(ours);
  EXPECT_EQ(ours.hello.has_server_name, theirs.sni.has_value());
  EXPECT_EQ(ours.hello.server_name, Lower(theirs.sni.value_or("")));
  EXPECT_EQ(ours.hello.alpn, theirs.alpn);
  EXPECT_EQ(ours.hello.legacy_version, theirs.legacy_version);
  EXPECT_EQ(ours.hello.versions, theirs.versions);
}

class CaptureCrossCheck : public ::testing::TestWithParam<std::string> {};

TEST_P(CaptureCrossCheck, AgreesWithOpenSslAsCapturedAndReRecorded) {
  const Bytes captured = ReadFileBytes(TestDataPath("clienthellos/" + GetParam()));
  {
    SCOPED_TRACE("as captured");
    ExpectAgreement(captured);
  }
  const Bytes handshake = RecordPayloads(captured);
  for (size_t fragment : {1, 2, 7, 100, 300}) {
    SCOPED_TRACE(::testing::Message() << "fragment " << fragment);
    ExpectAgreement(Records(handshake, fragment));
  }
}

INSTANTIATE_TEST_SUITE_P(Real, CaptureCrossCheck,
                         ::testing::Values("openssl13_sni.bin", "openssl12_sni.bin",
                                           "openssl_nosni.bin", "curl_sni.bin", "gnutls_sni.bin",
                                           "python_sni.bin"),
                         [](const auto& info) { return CaptureName(info.param); });

struct FreshHello {
  std::string name;
  std::string sni;
  std::vector<std::string> alpn;
  int max_version;
};

// gtest prints a parameter with this (the struct's bytes otherwise).
void PrintTo(const FreshHello& c, std::ostream* os) { *os << c.name; }

class FreshHelloCrossCheck : public ::testing::TestWithParam<FreshHello> {};

TEST_P(FreshHelloCrossCheck, SeesWhatTheClientSetAndWhatTheServerSaw) {
  const FreshHello& c = GetParam();
  const Bytes wire = OpenSslClientHello(c.sni, c.alpn, c.max_version);
  const ParseResult r = ParseClientHello(wire);
  ASSERT_EQ(r.status, ParseStatus::kClientHello) << Describe(r);
  EXPECT_EQ(r.hello.has_server_name, !c.sni.empty());
  EXPECT_EQ(r.hello.server_name, Lower(c.sni));
  EXPECT_EQ(r.hello.alpn, c.alpn);
  EXPECT_EQ(r.hello.bytes_consumed, wire.size());
  const bool offers_13 = std::count(r.hello.versions.begin(), r.hello.versions.end(), 0x0304) > 0;
  EXPECT_EQ(offers_13, c.max_version == TLS1_3_VERSION);
  ExpectAgreement(wire);
  for (size_t fragment : {1, 5, 64}) {
    SCOPED_TRACE(::testing::Message() << "fragment " << fragment);
    const Bytes refragmented = Records(RecordPayloads(wire), fragment);
    ExpectAgreement(refragmented);
    EXPECT_TRUE(SameOutcome(FeedInChunks(refragmented, 1), ParseClientHello(refragmented)));
  }
}

std::string LongestHost() {
  std::string host;  // 253 bytes, the longest DNS name in dotted form
  for (int i = 0; i < 4; ++i) host += (i ? "." : "") + std::string(i < 3 ? 63 : 61, 'a' + i);
  return host;
}

INSTANTIATE_TEST_SUITE_P(
    OpenSslClient, FreshHelloCrossCheck,
    ::testing::Values(
        FreshHello{"tls13_h2", "httpbin.bar.global", {"h2", "http/1.1"}, TLS1_3_VERSION},
        FreshHello{"tls13_istio", "outbound_.8000_._.httpbin.bar.global",
                   {"istio-peer-exchange", "istio"}, TLS1_3_VERSION},
        FreshHello{"tls12_mixed_case", "Mixed.CASE.Example", {}, TLS1_2_VERSION},
        FreshHello{"tls12_no_sni", "", {"h2"}, TLS1_2_VERSION},
        FreshHello{"tls13_no_sni_no_alpn", "", {}, TLS1_3_VERSION},
        FreshHello{"tls13_longest_names", LongestHost(), {std::string(255, 'p'), "h2"},
                   TLS1_3_VERSION}),
    [](const auto& info) { return ParamName(info.param.name); });

// Framing errors OpenSSL also refuses before its callback: both sides reject.
TEST(OpenSslAgreesOnRejection, FramingErrors) {
  auto base = [] {
    HelloBuilder b;
    b.Sni("a.example").Versions({0x0304, 0x0303});
    return b;
  };
  HelloBuilder duplicate = base(), long_session = base(), overrun = base(), trailing = base();
  duplicate.Ext(10, {0, 2, 0, 29}).Ext(10, {0, 2, 0, 29});
  long_session.session_id = Bytes(33, 1);
  overrun.raw_extensions = ByteWriter().Prefixed16(ByteWriter().U16(10).U16(16).U16(0).Take()).Take();
  trailing.trailing = {0};
  for (const auto& [b, reason] :
       std::vector<std::pair<HelloBuilder, RejectReason>>{
           {duplicate, RejectReason::kDuplicateExtension},
           {long_session, RejectReason::kBadSessionId},
           {overrun, RejectReason::kBadExtensions},
           {trailing, RejectReason::kTrailingData}}) {
    const Bytes wire = Records(b.Message());
    EXPECT_EQ(ParseClientHello(wire).reason, reason);
    EXPECT_FALSE(ServerSees(wire).called) << ToString(reason);
  }
  EXPECT_TRUE(ServerSees(Records(base().Message())).called) << "the unbroken hello passes";
}

}  // namespace
}  // namespace meshgate::sni::testing
