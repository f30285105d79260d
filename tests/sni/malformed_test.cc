// One table of hostile inputs, each with the rejection it must get. Every case
// is fed whole, one byte at a time and in 7-byte chunks: same verdict each way.
#include <gtest/gtest.h>

#include <set>

#include "sni/client_hello_parser.h"
#include "tests/sni/hello_builder.h"

namespace meshgate::sni::testing {
namespace {

struct MalformedCase {
  std::string name;
  Bytes wire;
  RejectReason reason;
  ParserOptions options = {};
};

// gtest prints a parameter with this (the struct's bytes otherwise).
void PrintTo(const MalformedCase& c, std::ostream* os) {
  *os << c.name << " (" << ToString(c.reason) << ", " << c.wire.size() << " bytes)";
}

HelloBuilder Base() {
  HelloBuilder b;
  b.Sni("httpbin.bar.global").Alpn({"h2", "http/1.1"}).Versions({0x0304, 0x0303});
  return b;
}
Bytes Wire(const HelloBuilder& b) { return Records(b.Message()); }
Bytes WireWithExt(uint16_t type, Bytes body) {
  HelloBuilder b;
  b.Ext(type, std::move(body));
  return Wire(b);
}
Bytes WireWithHost(std::string_view host) { return WireWithExt(kExtServerName, ServerNameBody(host)); }
Bytes WireWith(void (*edit)(HelloBuilder&)) {
  HelloBuilder b = Base();
  edit(b);
  return Wire(b);
}
// The base hello in two records with `middle` between them.
Bytes Interleaved(std::span<const uint8_t> middle) {
  const Bytes msg = Base().Message();
  const auto head = std::span(msg).first(50), tail = std::span(msg).subspan(50);
  return Concat({Record(kHandshake, head), middle, Record(kHandshake, tail)});
}
Bytes Str(std::string_view s) { return ToBytes(s); }
std::string Labels(size_t count, size_t length) {
  std::string host;
  for (size_t i = 0; i < count; ++i) host += (i ? "." : "") + std::string(length, 'a');
  return host;
}
// A hello whose record takes exactly `total` bytes, grown with a padding
// extension (RFC 7685).
Bytes WireOfSize(size_t total) {
  HelloBuilder b = Base();
  const size_t bare = Wire(b).size() + 4;
  b.Ext(21, Bytes(total - bare, 0));
  return Wire(b);
}

std::vector<MalformedCase> Cases() {
  using R = RejectReason;
  std::vector<MalformedCase> c = {
      // What the stream is, from its first bytes.
      {"http_get", Str("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), R::kPlainHttp},
      {"http_post", Str("POST /x HTTP/1.1\r\n"), R::kPlainHttp},
      {"http_put", Str("PUT /x HTTP/1.1\r\n"), R::kPlainHttp},
      {"http_head", Str("HEAD / HTTP/1.0\r\n"), R::kPlainHttp},
      {"http_delete", Str("DELETE /x HTTP/1.1\r\n"), R::kPlainHttp},
      {"http_options", Str("OPTIONS * HTTP/1.1\r\n"), R::kPlainHttp},
      {"http_connect", Str("CONNECT a:443 HTTP/1.1\r\n"), R::kPlainHttp},
      {"http_patch", Str("PATCH /x HTTP/1.1\r\n"), R::kPlainHttp},
      {"http2_preface", Str("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), R::kPlainHttp},
      {"sslv2_hello", {0x80, 0x2e, 0x01, 0x03, 0x01, 0x00, 0x15}, R::kSslV2},
      {"high_bit_not_sslv2_hello", {0x80, 0x2e, 0x04, 0x03, 0x01}, R::kNotTls},
      {"zeros", Bytes(8, 0), R::kNotTls},
      {"ssh_banner", Str("SSH-2.0-OpenSSH_9.2\r\n"), R::kNotTls},
      {"get_without_space", Str("GETX / HTTP/1.1"), R::kNotTls},
      {"lowercase_get", Str("get / HTTP/1.1"), R::kNotTls},
      {"alert_record", Record(kAlert, Bytes{2, 40}, 0x0303), R::kNotHandshakeRecord},
      {"ccs_record", Record(kChangeCipherSpec, Bytes{1}, 0x0303), R::kNotHandshakeRecord},
      {"app_data_record", Record(kApplicationData, Bytes(20, 7), 0x0303), R::kNotHandshakeRecord},
      {"ccs_mid_hello", Interleaved(Record(kChangeCipherSpec, Bytes{1})), R::kNotHandshakeRecord},
      {"alert_mid_hello", Interleaved(Record(kAlert, Bytes{1, 0})), R::kNotHandshakeRecord},
      {"garbage_mid_hello", Interleaved(Str("GET / HTTP/1.1")), R::kNotTls},
      // Record layer.
      {"record_major_2", Record(kHandshake, Base().Message(), 0x0200), R::kBadRecordVersion},
      {"record_major_4", Record(kHandshake, Base().Message(), 0x0401), R::kBadRecordVersion},
      {"record_minor_5", Record(kHandshake, Base().Message(), 0x0305), R::kBadRecordVersion},
      {"record_version_mid_hello", Interleaved(Record(kHandshake, Bytes{1}, 0x0203)),
       R::kBadRecordVersion},
      {"record_length_zero", Record(kHandshake, Bytes{}), R::kBadRecordLength},
      {"record_length_over_2_14", Record(kHandshake, Base().Message(), 0x0301, 16385),
       R::kBadRecordLength},
      {"record_length_max_u16", Record(kHandshake, Base().Message(), 0x0301, 0xffff),
       R::kBadRecordLength},
      {"record_length_zero_mid_hello", Interleaved(Record(kHandshake, Bytes{})), R::kBadRecordLength},
      // Handshake header.
      {"server_hello_type", Records(HandshakeMessage(2, Base().Body())), R::kNotClientHello},
      {"certificate_type", Records(HandshakeMessage(11, Base().Body())), R::kNotClientHello},
      {"hello_request_type", Records(HandshakeMessage(0, Bytes{})), R::kNotClientHello},
      {"handshake_length_zero", Records(HandshakeMessage(1, Bytes{})), R::kBadHandshakeLength},
      {"handshake_length_40", Records(HandshakeMessage(1, Base().Body(), 40)),
       R::kBadHandshakeLength},
      {"handshake_length_over_cap", Records(HandshakeMessage(1, Base().Body(), 20000)),
       R::kTooLarge},
      {"handshake_length_u24_max", Records(HandshakeMessage(1, Base().Body(), 0xffffff)),
       R::kTooLarge},
      {"handshake_length_shorter_than_hello",
       Records(HandshakeMessage(1, Base().Body(), Base().Body().size() - 3)), R::kBadExtensions},
      {"handshake_length_covers_next_message",
       Records(Concat({HandshakeMessage(1, Base().Body(), Base().Body().size() + 6),
                       HandshakeMessage(20, Bytes{1, 2})})),
       R::kTrailingData},
      // ClientHello fixed fields.
      {"legacy_version_2_0", WireWith([](HelloBuilder& b) { b.legacy_version = 0x0200; }),
       R::kBadLegacyVersion},
      {"legacy_version_4_3", WireWith([](HelloBuilder& b) { b.legacy_version = 0x0403; }),
       R::kBadLegacyVersion},
      {"legacy_version_dtls", WireWith([](HelloBuilder& b) { b.legacy_version = 0xfefd; }),
       R::kBadLegacyVersion},
      {"session_id_33", WireWith([](HelloBuilder& b) { b.session_id = Bytes(33, 1); }),
       R::kBadSessionId},
      {"session_id_255", WireWith([](HelloBuilder& b) { b.session_id = Bytes(255, 1); }),
       R::kBadSessionId},
      {"session_id_overruns_message", WireWith([](HelloBuilder& b) {
         b.raw_session_id = ByteWriter().U8(32).Raw(Bytes(10, 1)).Take();
         b.raw_cipher_suites = b.raw_compression = Bytes{};
         b.omit_extensions = true;
       }),
       R::kBadSessionId},
      {"cipher_suites_odd", WireWith([](HelloBuilder& b) { b.raw_cipher_suites = {0, 3, 0x13, 1, 0x13}; }),
       R::kBadCipherSuites},
      {"cipher_suites_empty", WireWith([](HelloBuilder& b) { b.raw_cipher_suites = {0, 0}; }),
       R::kBadCipherSuites},
      {"cipher_suites_overrun", WireWith([](HelloBuilder& b) { b.raw_cipher_suites = {0xff, 0xfe, 0x13, 1}; }),
       R::kBadCipherSuites},
      {"compression_empty", WireWith([](HelloBuilder& b) { b.compression = {}; }), R::kBadCompression},
      {"compression_overrun", WireWith([](HelloBuilder& b) {
         b.raw_compression = {0x10, 0};
         b.omit_extensions = true;
       }),
       R::kBadCompression},
      // Extension framing.
      {"extensions_block_overrun",
       WireWith([](HelloBuilder& b) { b.raw_extensions = {0x01, 0x00, 0, 10, 0, 0}; }), R::kBadExtensions},
      {"extensions_one_stray_byte", WireWith([](HelloBuilder& b) { b.raw_extensions = {0}; }),
       R::kBadExtensions},
      {"extension_length_overrun", WireWith([](HelloBuilder& b) {
         b.raw_extensions = ByteWriter().Prefixed16(ByteWriter().U16(10).U16(16).U16(0).Take()).Take();
       }),
       R::kBadExtensions},
      {"extension_header_truncated", WireWith([](HelloBuilder& b) {
         b.raw_extensions = ByteWriter().Prefixed16(Bytes{0, 10, 0}).Take();
       }),
       R::kBadExtensions},
      {"trailing_after_extensions", WireWith([](HelloBuilder& b) { b.trailing = {0}; }),
       R::kTrailingData},
      {"duplicate_extension", WireWith([](HelloBuilder& b) { b.Ext(10, {0, 2, 0, 29}).Ext(10, {0, 2, 0, 23}); }),
       R::kDuplicateExtension},
      {"duplicate_server_name_ext", WireWith([](HelloBuilder& b) { b.Sni("other.example"); }),
       R::kDuplicateExtension},
      {"duplicate_among_100_extensions", WireWith([](HelloBuilder& b) {
         for (uint16_t t = 1000; t < 1100; ++t) b.Ext(t, {});
         b.Ext(1050, {});
       }),
       R::kDuplicateExtension},
      // server_name (RFC 6066 §3).
      {"two_host_names", WireWithExt(kExtServerName, ServerNameListBody({{0, "a.com"}, {0, "b.com"}})),
       R::kBadServerNameList},
      {"server_name_list_empty", WireWithExt(kExtServerName, {0, 0}), R::kBadServerNameList},
      {"server_name_ext_empty", WireWithExt(kExtServerName, {}), R::kBadServerNameList},
      {"server_name_list_length_long",
       WireWithExt(kExtServerName, ByteWriter().U16(30).U8(0).Prefixed16(Str("a.com")).Take()),
       R::kBadServerNameList},
      {"server_name_list_length_short",
       WireWithExt(kExtServerName, ByteWriter().U16(3).U8(0).Prefixed16(Str("a.com")).Take()),
       R::kBadServerNameList},
      {"server_name_entry_overrun",
       WireWithExt(kExtServerName, ByteWriter().Prefixed16(ByteWriter().U8(0).U16(100).Str("a.com").Take()).Take()),
       R::kBadServerNameList},
      {"server_name_entry_header_truncated",
       WireWithExt(kExtServerName, ByteWriter().Prefixed16(Bytes{0, 0}).Take()), R::kBadServerNameList},
      // host_name contents.
      {"host_empty", WireWithHost(""), R::kBadHostName},
      {"host_256_bytes", WireWithHost(std::string(62, 'a') + "." + Labels(3, 63) + ".a"), R::kBadHostName},
      {"host_label_64", WireWithHost(std::string(64, 'a') + ".com"), R::kBadHostName},
      {"host_empty_label", WireWithHost("a..b"), R::kBadHostName},
      {"host_leading_dot", WireWithHost(".a.b"), R::kBadHostName},
      {"host_trailing_dot", WireWithHost("httpbin.bar.global."), R::kBadHostName},
      {"host_only_dot", WireWithHost("."), R::kBadHostName},
      {"host_wildcard", WireWithHost("*.example.com"), R::kBadHostName},
      {"host_space", WireWithHost("a b.com"), R::kBadHostName},
      {"host_nul", WireWithHost(std::string_view("a\0b.com", 7)), R::kBadHostName},
      {"host_utf8", WireWithHost("caf\xc3\xa9.com"), R::kBadHostName},
      {"host_with_port", WireWithHost("a.com:443"), R::kBadHostName},
      {"host_slash", WireWithHost("a.com/x"), R::kBadHostName},
      // ALPN (RFC 7301 §3.1).
      {"alpn_list_empty", WireWithExt(kExtAlpn, {0, 0}), R::kBadAlpn},
      {"alpn_ext_empty", WireWithExt(kExtAlpn, {}), R::kBadAlpn},
      {"alpn_empty_name", WireWithExt(kExtAlpn, ByteWriter().Prefixed16(Bytes{2, 'h', '2', 0}).Take()),
       R::kBadAlpn},
      {"alpn_name_overrun", WireWithExt(kExtAlpn, ByteWriter().Prefixed16(Bytes{5, 'h', '2'}).Take()),
       R::kBadAlpn},
      {"alpn_list_length_long", WireWithExt(kExtAlpn, ByteWriter().U16(20).Raw(Bytes{2, 'h', '2'}).Take()),
       R::kBadAlpn},
      {"alpn_trailing_in_ext", WireWithExt(kExtAlpn, Concat({AlpnBody({"h2"}), Bytes{0}})), R::kBadAlpn},
      {"alpn_ext_one_byte", WireWithExt(kExtAlpn, {0}), R::kBadAlpn},
      // supported_versions (RFC 8446 §4.2.1).
      {"versions_odd", WireWithExt(kExtSupportedVersions, {3, 3, 4, 3}), R::kBadSupportedVersions},
      {"versions_empty_list", WireWithExt(kExtSupportedVersions, {0}), R::kBadSupportedVersions},
      {"versions_ext_empty", WireWithExt(kExtSupportedVersions, {}), R::kBadSupportedVersions},
      {"versions_overrun", WireWithExt(kExtSupportedVersions, {8, 3, 4}), R::kBadSupportedVersions},
      {"versions_trailing_in_ext", WireWithExt(kExtSupportedVersions, Concat({VersionsBody({0x0304}), Bytes{0}})),
       R::kBadSupportedVersions},
      {"versions_one_byte", WireWithExt(kExtSupportedVersions, {1, 3}), R::kBadSupportedVersions},
      {"versions_255_bytes",
       WireWithExt(kExtSupportedVersions, ByteWriter().Prefixed8(Bytes(255, 3)).Take()),
       R::kBadSupportedVersions},
      // Size cap.
      {"record_over_default_cap", WireOfSize(16 * 1024 + 1), R::kTooLarge},
      {"small_custom_cap", Wire(Base()), R::kTooLarge, {.max_hello_bytes = 100}},
      {"cap_one_short", Wire(Base()), R::kTooLarge, {.max_hello_bytes = Wire(Base()).size() - 1}},
      {"cap_counts_record_headers", Records(Base().Message(), 10), R::kTooLarge,
       {.max_hello_bytes = Base().Message().size() + 5}},
  };
  return c;
}

class MalformedTest : public ::testing::TestWithParam<MalformedCase> {};

TEST_P(MalformedTest, RejectedWithItsReasonWhateverTheChunking) {
  const MalformedCase& c = GetParam();
  for (size_t chunk : {c.wire.size(), size_t{1}, size_t{7}}) {
    const ParseResult r = FeedInChunks(c.wire, chunk, c.options);
    EXPECT_EQ(r.status, ParseStatus::kRejected) << "chunk " << chunk << ": " << Describe(r);
    EXPECT_EQ(ToString(r.reason), ToString(c.reason)) << "chunk " << chunk;
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, MalformedTest, ::testing::ValuesIn(Cases()),
                         [](const auto& info) { return ParamName(info.param.name); });

TEST(MalformedCoverage, EveryReasonHasACase) {
  std::set<RejectReason> covered;
  for (const MalformedCase& c : Cases()) covered.insert(c.reason);
  for (size_t i = 1; i < kRejectReasonCount; ++i) {
    EXPECT_TRUE(covered.count(static_cast<RejectReason>(i)))
        << ToString(static_cast<RejectReason>(i)) << " has no malformed case";
  }
}

TEST(MalformedCoverage, CaseNamesAreUnique) {
  std::set<std::string> names;
  for (const MalformedCase& c : Cases()) EXPECT_TRUE(names.insert(c.name).second) << c.name;
}

}  // namespace
}  // namespace meshgate::sni::testing
