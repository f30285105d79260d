// The PROXY protocol parser and encoder (sni/proxy_protocol.h), against the
// examples and rules of https://www.haproxy.org/download/2.8/doc/proxy-protocol.txt
// (§2.1 v1, §2.2 v2, §2.2.x TLVs): every error reason, every family, TLVs,
// and byte-by-byte arrival.
#include "sni/proxy_protocol.h"

#include <arpa/inet.h>

#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace meshgate::sni {
namespace {

std::vector<uint8_t> Bytes(std::string_view s) { return {s.begin(), s.end()}; }

std::array<uint8_t, 16> Ip(const char* text) {
  std::array<uint8_t, 16> out{};
  uint8_t v4[4];
  if (inet_pton(AF_INET, text, v4) == 1) {
    out[10] = out[11] = 0xFF;
    std::copy(v4, v4 + 4, out.begin() + 12);
  } else {
    EXPECT_EQ(inet_pton(AF_INET6, text, out.data()), 1) << text;
  }
  return out;
}

const std::vector<uint8_t> kV2Sig = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

// A v2 header: ver_cmd, fam, then `body` (addresses and TLVs), length from body.
std::vector<uint8_t> V2(uint8_t ver_cmd, uint8_t fam, const std::vector<uint8_t>& body) {
  std::vector<uint8_t> out = kV2Sig;
  out.push_back(ver_cmd);
  out.push_back(fam);
  out.push_back(static_cast<uint8_t>(body.size() >> 8));
  out.push_back(static_cast<uint8_t>(body.size()));
  out.insert(out.end(), body.begin(), body.end());
  return out;
}

std::vector<uint8_t> Inet4Block() {
  return {192, 0, 2, 1, 198, 51, 100, 7, 0xC3, 0x50 /* 50000 */, 0x3C, 0x2B /* 15403 */};
}

void AppendTlv(std::vector<uint8_t>& out, uint8_t type, std::string_view value) {
  out.push_back(type);
  out.push_back(static_cast<uint8_t>(value.size() >> 8));
  out.push_back(static_cast<uint8_t>(value.size()));
  out.insert(out.end(), value.begin(), value.end());
}

ProxyParseResult Parse(const std::vector<uint8_t>& bytes, ProxyParserOptions options = {}) {
  return ParseProxyHeader(bytes, options);
}

ProxyHeaderError ErrorOf(const std::vector<uint8_t>& bytes, ProxyParserOptions options = {}) {
  const ProxyParseResult r = Parse(bytes, options);
  EXPECT_EQ(r.status, ProxyParseStatus::kError);
  return r.error;
}

// Every prefix shorter than the header asks for more; the whole gives `want`.
void ExpectByteByByte(const std::vector<uint8_t>& bytes, ProxyParseStatus want) {
  for (size_t n = 0; n < bytes.size(); ++n) {
    const auto r = ParseProxyHeader(std::span(bytes.data(), n));
    if (n == 0) continue;  // nothing yet: no signature to match
    ASSERT_EQ(r.status, ProxyParseStatus::kNeedMoreData) << "after " << n << " bytes";
  }
  EXPECT_EQ(Parse(bytes).status, want);
}

TEST(ProxyProtocolV1, Tcp4WithClientBytesAfterIt) {
  const auto bytes = Bytes("PROXY TCP4 192.0.2.1 198.51.100.7 50000 15443\r\n\x16\x03\x01");
  const auto r = Parse(bytes);
  ASSERT_EQ(r.status, ProxyParseStatus::kDone);
  EXPECT_EQ(r.header.version, 1);
  EXPECT_EQ(r.header.family, ProxyFamily::kInet);
  EXPECT_EQ(r.header.src_ip, Ip("192.0.2.1"));
  EXPECT_EQ(r.header.dst_ip, Ip("198.51.100.7"));
  EXPECT_EQ(r.header.src_port, 50000);
  EXPECT_EQ(r.header.dst_port, 15443);
  EXPECT_EQ(r.header.header_bytes, bytes.size() - 3);
  EXPECT_TRUE(r.header.carries_ip_source());
}

TEST(ProxyProtocolV1, Tcp6) {
  const auto r = Parse(Bytes("PROXY TCP6 2001:db8::1 2001:db8::2 1 65535\r\n"));
  ASSERT_EQ(r.status, ProxyParseStatus::kDone);
  EXPECT_EQ(r.header.family, ProxyFamily::kInet6);
  EXPECT_EQ(r.header.src_ip, Ip("2001:db8::1"));
  EXPECT_EQ(r.header.dst_port, 65535);
}

TEST(ProxyProtocolV1, UnknownIgnoresTheRestOfTheLine) {
  for (const char* line : {"PROXY UNKNOWN\r\n", "PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n"}) {
    const auto r = Parse(Bytes(line));
    ASSERT_EQ(r.status, ProxyParseStatus::kDone) << line;
    EXPECT_EQ(r.header.family, ProxyFamily::kUnspec);
    EXPECT_FALSE(r.header.carries_ip_source());
  }
}

TEST(ProxyProtocolV1, LongestHeaderIs107BytesAndOneMoreIsOversized) {
  // §2.1's worst case: TCP6 with two full-length addresses and 5-digit ports.
  const std::string worst =
      "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
  ASSERT_EQ(worst.size(), 104u);
  EXPECT_EQ(Parse(Bytes(worst)).status, ProxyParseStatus::kDone);
  std::string unknown = "PROXY UNKNOWN " + std::string(107 - 16, 'x') + "\r\n";
  ASSERT_EQ(unknown.size(), 107u);
  EXPECT_EQ(Parse(Bytes(unknown)).status, ProxyParseStatus::kDone);
  EXPECT_EQ(ErrorOf(Bytes("PROXY UNKNOWN " + std::string(107 - 15, 'x') + "\r\n")), ProxyHeaderError::kOversized);
  // No CRLF in 107 bytes: refused without reading further.
  EXPECT_EQ(ErrorOf(Bytes("PROXY " + std::string(101, '1'))), ProxyHeaderError::kOversized);
}

TEST(ProxyProtocolV1, BadFields) {
  for (const char* line : {
           "PROXY TCP4 192.0.2.1 198.51.100.7 50000\r\n",          // a field missing
           "PROXY TCP4 192.0.2.1 198.51.100.7 50000 1 2\r\n",      // one too many
           "PROXY TCP4 192.0.2.1  198.51.100.7 50000 15443\r\n",   // two spaces
           "PROXY TCP4 192.0.2.256 198.51.100.7 50000 15443\r\n",  // bad IPv4
           "PROXY TCP4 2001:db8::1 198.51.100.7 50000 15443\r\n",  // IPv6 under TCP4
           "PROXY TCP6 192.0.2.1 2001:db8::2 50000 15443\r\n",     // IPv4 under TCP6
           "PROXY TCP4 192.0.2.1 198.51.100.7 65536 15443\r\n",    // port out of range
           "PROXY TCP4 192.0.2.1 198.51.100.7 050 15443\r\n",      // leading zero
           "PROXY TCP4 192.0.2.1 198.51.100.7 -1 15443\r\n",       // sign
           "PROXY TCP4 192.0.2.1 198.51.100.7 50000 15443\n",      // bare LF
           "PROXY TCP4 192.0.2.1 198.51.100.7 50000 15443 \r\n",   // trailing space
       }) {
    EXPECT_EQ(ErrorOf(Bytes(line)), ProxyHeaderError::kBadV1Field) << line;
  }
}

TEST(ProxyProtocolV1, UnknownProtocolWordIsBadFamily) {
  EXPECT_EQ(ErrorOf(Bytes("PROXY UDP4 192.0.2.1 198.51.100.7 1 2\r\n")), ProxyHeaderError::kBadFamily);
  EXPECT_EQ(ErrorOf(Bytes("PROXY tcp4 192.0.2.1 198.51.100.7 1 2\r\n")), ProxyHeaderError::kBadFamily);
}

TEST(ProxyProtocolV1, ByteByByte) {
  ExpectByteByByte(Bytes("PROXY TCP4 192.0.2.1 198.51.100.7 50000 15443\r\n"), ProxyParseStatus::kDone);
}

TEST(ProxyProtocol, BadSignature) {
  EXPECT_EQ(ErrorOf(Bytes("\x16\x03\x01\x02\x00")), ProxyHeaderError::kBadSignature);  // a TLS record
  EXPECT_EQ(ErrorOf(Bytes("PROXZ")), ProxyHeaderError::kBadSignature);
  EXPECT_EQ(ErrorOf(Bytes("GET / HTTP/1.1\r\n")), ProxyHeaderError::kBadSignature);
  auto v2 = V2(0x21, 0x11, Inet4Block());
  v2[6] = 0x00;
  EXPECT_EQ(ErrorOf(v2), ProxyHeaderError::kBadSignature);
}

TEST(ProxyProtocol, MatchSignature) {
  EXPECT_EQ(MatchProxySignature(Bytes("PRO")), SignatureMatch::kPartial);
  EXPECT_EQ(MatchProxySignature(Bytes("PROXY ")), SignatureMatch::kYes);
  EXPECT_EQ(MatchProxySignature(Bytes("POST ")), SignatureMatch::kNo);
  EXPECT_EQ(MatchProxySignature(std::vector<uint8_t>(kV2Sig.begin(), kV2Sig.begin() + 5)), SignatureMatch::kPartial);
  EXPECT_EQ(MatchProxySignature(kV2Sig), SignatureMatch::kYes);
  EXPECT_EQ(MatchProxySignature(Bytes("\x16\x03")), SignatureMatch::kNo);
}

TEST(ProxyProtocolV2, ProxyInet) {
  const auto r = Parse(V2(0x21, 0x11, Inet4Block()));
  ASSERT_EQ(r.status, ProxyParseStatus::kDone);
  EXPECT_EQ(r.header.version, 2);
  EXPECT_EQ(r.header.command, ProxyCommand::kProxy);
  EXPECT_EQ(r.header.family, ProxyFamily::kInet);
  EXPECT_EQ(r.header.transport, ProxyTransport::kStream);
  EXPECT_EQ(r.header.src_ip, Ip("192.0.2.1"));
  EXPECT_EQ(r.header.dst_ip, Ip("198.51.100.7"));
  EXPECT_EQ(r.header.src_port, 50000);
  EXPECT_EQ(r.header.dst_port, 15403);
  EXPECT_EQ(r.header.header_bytes, 28u);
  EXPECT_TRUE(r.header.carries_ip_source());
}

TEST(ProxyProtocolV2, ProxyInet6) {
  const auto src = Ip("2001:db8::1"), dst = Ip("2001:db8::2");
  std::vector<uint8_t> body(src.begin(), src.end());
  body.insert(body.end(), dst.begin(), dst.end());
  body.insert(body.end(), {0x01, 0x02, 0x03, 0x04});
  const auto r = Parse(V2(0x21, 0x21, body));
  ASSERT_EQ(r.status, ProxyParseStatus::kDone);
  EXPECT_EQ(r.header.family, ProxyFamily::kInet6);
  EXPECT_EQ(r.header.src_ip, src);
  EXPECT_EQ(r.header.dst_ip, dst);
  EXPECT_EQ(r.header.src_port, 0x0102);
  EXPECT_EQ(r.header.dst_port, 0x0304);
}

TEST(ProxyProtocolV2, ProxyUnixKeepsThePeer) {
  std::vector<uint8_t> body(216, 0);
  const std::string src = "/run/lb.sock", dst = "/run/gw.sock";
  std::copy(src.begin(), src.end(), body.begin());
  std::copy(dst.begin(), dst.end(), body.begin() + 108);
  const auto r = Parse(V2(0x21, 0x31, body));
  ASSERT_EQ(r.status, ProxyParseStatus::kDone);
  EXPECT_EQ(r.header.family, ProxyFamily::kUnix);
  EXPECT_EQ(r.header.src_unix, src);
  EXPECT_EQ(r.header.dst_unix, dst);
  EXPECT_FALSE(r.header.carries_ip_source());
}

TEST(ProxyProtocolV2, LocalDiscardsTheBlockEvenWithAnUnknownFamily) {
  const auto r = Parse(V2(0x20, 0x00, {}));
  ASSERT_EQ(r.status, ProxyParseStatus::kDone);
  EXPECT_EQ(r.header.command, ProxyCommand::kLocal);
  EXPECT_FALSE(r.header.carries_ip_source());
  // §2.2: for LOCAL the family is ignored and the block discarded.
  const auto odd = Parse(V2(0x20, 0xFF, {1, 2, 3}));
  ASSERT_EQ(odd.status, ProxyParseStatus::kDone);
  EXPECT_EQ(odd.header.header_bytes, 19u);
}

TEST(ProxyProtocolV2, UnspecWithTlvs) {
  std::vector<uint8_t> body;
  AppendTlv(body, kPp2TypeNoop, "");
  const auto r = Parse(V2(0x21, 0x00, body));
  ASSERT_EQ(r.status, ProxyParseStatus::kDone);
  EXPECT_EQ(r.header.family, ProxyFamily::kUnspec);
  ASSERT_EQ(r.header.tlvs.size(), 1u);
  EXPECT_FALSE(r.header.carries_ip_source());
}

TEST(ProxyProtocolV2, Tlvs) {
  std::vector<uint8_t> body = Inet4Block();
  AppendTlv(body, kPp2TypeAlpn, "istio-peer-exchange");
  AppendTlv(body, kPp2TypeAuthority, "outbound_.8080_._.httpbin.bar.svc.cluster.local");
  AppendTlv(body, kPp2TypeUniqueId, std::string(128, 'u'));
  std::string ssl = {0x01, 0, 0, 0, 0};  // client SSL, verify 0
  std::vector<uint8_t> sub;
  AppendTlv(sub, 0x21 /* PP2_SUBTYPE_SSL_VERSION */, "TLSv1.3");
  ssl.append(sub.begin(), sub.end());
  AppendTlv(body, kPp2TypeSsl, ssl);
  AppendTlv(body, 0xEA /* AWS vpce, custom range */, "\x01vpce-0123456789");
  const auto r = Parse(V2(0x21, 0x11, body));
  ASSERT_EQ(r.status, ProxyParseStatus::kDone);
  ASSERT_EQ(r.header.tlvs.size(), 5u);
  EXPECT_EQ(r.header.tlvs[0].type, kPp2TypeAlpn);
  EXPECT_EQ(r.header.tlvs[0].value, "istio-peer-exchange");
  EXPECT_EQ(r.header.tlvs[2].value.size(), 128u);
  ASSERT_EQ(r.header.tlvs[3].sub.size(), 1u);
  EXPECT_EQ(r.header.tlvs[3].sub[0].value, "TLSv1.3");
  EXPECT_EQ(r.header.tlvs[4].type, 0xEA);
}

TEST(ProxyProtocolV2, BadTlvs) {
  std::vector<uint8_t> overrun = Inet4Block();
  overrun.insert(overrun.end(), {kPp2TypeAlpn, 0x00, 0x05, 'h', '2'});  // says 5, has 2
  EXPECT_EQ(ErrorOf(V2(0x21, 0x11, overrun)), ProxyHeaderError::kBadTlv);
  std::vector<uint8_t> stub = Inet4Block();
  stub.insert(stub.end(), {kPp2TypeAlpn, 0x00});  // 2 bytes: no room for a length
  EXPECT_EQ(ErrorOf(V2(0x21, 0x11, stub)), ProxyHeaderError::kBadTlv);
  std::vector<uint8_t> short_ssl = Inet4Block();
  AppendTlv(short_ssl, kPp2TypeSsl, std::string("\x01\x00", 2));  // < client + verify
  EXPECT_EQ(ErrorOf(V2(0x21, 0x11, short_ssl)), ProxyHeaderError::kBadTlv);
  std::vector<uint8_t> bad_sub = Inet4Block();
  AppendTlv(bad_sub, kPp2TypeSsl, std::string("\x01\0\0\0\0\x21\x00\x09x", 9));
  EXPECT_EQ(ErrorOf(V2(0x21, 0x11, bad_sub)), ProxyHeaderError::kBadTlv);
}

TEST(ProxyProtocolV2, Crc32cChecked) {
  EXPECT_EQ(Crc32c(Bytes("123456789")), 0xE3069283u);  // RFC 3720 B.4's check value
  std::vector<uint8_t> body = Inet4Block();
  AppendTlv(body, kPp2TypeCrc32c, std::string(4, '\0'));
  auto header = V2(0x21, 0x11, body);
  const uint32_t crc = Crc32c(header);
  const size_t at = header.size() - 4;
  for (int i = 0; i < 4; ++i) header[at + i] = static_cast<uint8_t>(crc >> (24 - 8 * i));
  EXPECT_EQ(Parse(header).status, ProxyParseStatus::kDone);
  header[at] ^= 1;
  EXPECT_EQ(ErrorOf(header), ProxyHeaderError::kBadChecksum);
}

TEST(ProxyProtocolV2, BadVersionCommandFamily) {
  EXPECT_EQ(ErrorOf(V2(0x11, 0x11, Inet4Block())), ProxyHeaderError::kBadVersion);
  EXPECT_EQ(ErrorOf(V2(0x31, 0x11, Inet4Block())), ProxyHeaderError::kBadVersion);
  EXPECT_EQ(ErrorOf(V2(0x22, 0x11, Inet4Block())), ProxyHeaderError::kBadCommand);
  EXPECT_EQ(ErrorOf(V2(0x2F, 0x11, Inet4Block())), ProxyHeaderError::kBadCommand);
  EXPECT_EQ(ErrorOf(V2(0x21, 0x41, Inet4Block())), ProxyHeaderError::kBadFamily);
  EXPECT_EQ(ErrorOf(V2(0x21, 0x13, Inet4Block())), ProxyHeaderError::kBadFamily);
}

TEST(ProxyProtocolV2, LengthShorterThanTheAddressesIsTruncated) {
  EXPECT_EQ(ErrorOf(V2(0x21, 0x11, std::vector<uint8_t>(11, 0))), ProxyHeaderError::kTruncated);
  EXPECT_EQ(ErrorOf(V2(0x21, 0x21, std::vector<uint8_t>(12, 0))), ProxyHeaderError::kTruncated);
  EXPECT_EQ(ErrorOf(V2(0x21, 0x31, std::vector<uint8_t>(215, 0))), ProxyHeaderError::kTruncated);
}

TEST(ProxyProtocolV2, OversizedFromTheFixedPartAlone) {
  std::vector<uint8_t> fixed = kV2Sig;
  fixed.insert(fixed.end(), {0x21, 0x11, 0xFF, 0xFF});  // 65535 more bytes announced
  EXPECT_EQ(ErrorOf(fixed), ProxyHeaderError::kOversized);
  std::vector<uint8_t> body = Inet4Block();
  AppendTlv(body, kPp2TypeNoop, std::string(100, 'x'));
  EXPECT_EQ(ErrorOf(V2(0x21, 0x11, body), {.max_v2_bytes = 100}), ProxyHeaderError::kOversized);
  EXPECT_EQ(Parse(V2(0x21, 0x11, body), {.max_v2_bytes = 16 + body.size()}).status, ProxyParseStatus::kDone);
}

TEST(ProxyProtocolV2, ByteByByte) {
  std::vector<uint8_t> body = Inet4Block();
  AppendTlv(body, kPp2TypeAuthority, "example.com");
  ExpectByteByByte(V2(0x21, 0x11, body), ProxyParseStatus::kDone);
}

TEST(ProxyProtocolV2, EncoderRoundTrips) {
  const auto v4 = EncodeProxyV2(Ip("127.0.0.2"), 40000, Ip("127.0.0.1"), 15443,
                                {{kPp2TypeAuthority, "httpbin.bar.svc.cluster.local", {}}});
  const auto r4 = Parse(v4);
  ASSERT_EQ(r4.status, ProxyParseStatus::kDone);
  EXPECT_EQ(r4.header.family, ProxyFamily::kInet);
  EXPECT_EQ(r4.header.src_ip, Ip("127.0.0.2"));
  EXPECT_EQ(r4.header.src_port, 40000);
  EXPECT_EQ(r4.header.dst_port, 15443);
  ASSERT_EQ(r4.header.tlvs.size(), 1u);
  EXPECT_EQ(r4.header.header_bytes, v4.size());
  // Mixed families go as IPv6, the IPv4 one mapped.
  const auto r6 = Parse(EncodeProxyV2(Ip("2001:db8::9"), 1, Ip("10.0.0.1"), 2));
  ASSERT_EQ(r6.status, ProxyParseStatus::kDone);
  EXPECT_EQ(r6.header.family, ProxyFamily::kInet6);
  EXPECT_EQ(r6.header.src_ip, Ip("2001:db8::9"));
  EXPECT_EQ(r6.header.dst_ip, Ip("10.0.0.1"));
}

}  // namespace
}  // namespace meshgate::sni
