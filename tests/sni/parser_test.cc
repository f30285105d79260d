// Accepted hellos built from parts, how early verdicts come, and the parser's
// life cycle (feeding after a verdict, Reset, the size cap's edges).
#include <gtest/gtest.h>

#include <cctype>
#include <set>

#include "sni/client_hello_parser.h"
#include "tests/sni/hello_builder.h"

namespace meshgate::sni::testing {
namespace {

constexpr std::string_view kIstioSni = "outbound_.8000_._.httpbin.bar.global";

HelloBuilder Base() {
  HelloBuilder b;
  b.Sni(kIstioSni).Alpn({"istio-peer-exchange", "istio"}).Versions({0x0304, 0x0303});
  return b;
}

ParseResult ParseWire(const Bytes& wire, ParserOptions options = {}) {
  return ParseClientHello(wire, options);
}

// Index of the byte (1-based count) on which the verdict arrives when fed
// one byte at a time; 0 if it never does.
size_t BytesUntilVerdict(const Bytes& wire, ParserOptions options = {}) {
  ClientHelloParser parser(options);
  for (size_t i = 0; i < wire.size(); ++i) {
    if (parser.Feed(std::span(wire).subspan(i, 1)) != ParseStatus::kNeedMoreData) return i + 1;
  }
  return 0;
}

TEST(ClientHelloParser, ReadsServerNameAlpnAndVersions) {
  const Bytes wire = Records(Base().Message());
  const ParseResult r = ParseWire(wire);
  ASSERT_EQ(r.status, ParseStatus::kClientHello) << Describe(r);
  EXPECT_EQ(r.reason, RejectReason::kNone);
  EXPECT_TRUE(r.hello.has_server_name);
  EXPECT_EQ(r.hello.server_name, kIstioSni);
  EXPECT_EQ(r.hello.alpn, (std::vector<std::string>{"istio-peer-exchange", "istio"}));
  EXPECT_EQ(r.hello.legacy_version, 0x0303);
  EXPECT_EQ(r.hello.versions, (std::vector<uint16_t>{0x0304, 0x0303}));
  EXPECT_EQ(r.hello.bytes_consumed, wire.size());
}

TEST(ClientHelloParser, LowercasesTheHostName) {
  HelloBuilder b;
  b.Sni("HttpBin.BAR.Global");
  const ParseResult r = ParseWire(Records(b.Message()));
  ASSERT_EQ(r.status, ParseStatus::kClientHello) << Describe(r);
  EXPECT_EQ(r.hello.server_name, "httpbin.bar.global");
}

TEST(ClientHelloParser, AcceptsHostNamesAtTheLimits) {
  std::string longest;  // 255 bytes: four 63-byte labels and three dots
  for (int i = 0; i < 4; ++i) longest += (i ? "." : "") + std::string(63, 'a' + i);
  for (const std::string& host :
       {longest, std::string(63, 'x') + ".com", std::string("a"), std::string("_._-.a0-9_"),
        std::string("10.0.0.1"), std::string(kIstioSni)}) {
    HelloBuilder b;
    b.Sni(host);
    const ParseResult r = ParseWire(Records(b.Message()));
    ASSERT_EQ(r.status, ParseStatus::kClientHello) << host << ": " << Describe(r);
    EXPECT_EQ(r.hello.server_name, host);
  }
}

TEST(ClientHelloParser, NoServerNameIsAHelloWithoutOne) {
  HelloBuilder b;
  b.Alpn({"h2"});
  const ParseResult r = ParseWire(Records(b.Message()));
  ASSERT_EQ(r.status, ParseStatus::kClientHello);
  EXPECT_FALSE(r.hello.has_server_name);
  EXPECT_EQ(r.hello.server_name, "");
  EXPECT_EQ(r.hello.alpn, std::vector<std::string>{"h2"});
}

TEST(ClientHelloParser, SkipsUnknownNameTypes) {
  HelloBuilder b;
  b.Ext(kExtServerName, ServerNameListBody({{7, "opaque thing!"}, {0, "Real.Host"}, {9, ""}}));
  ParseResult r = ParseWire(Records(b.Message()));
  ASSERT_EQ(r.status, ParseStatus::kClientHello) << Describe(r);
  EXPECT_EQ(r.hello.server_name, "real.host");

  HelloBuilder only_unknown;
  only_unknown.Ext(kExtServerName, ServerNameListBody({{1, "x"}}));
  r = ParseWire(Records(only_unknown.Message()));
  ASSERT_EQ(r.status, ParseStatus::kClientHello) << Describe(r);
  EXPECT_FALSE(r.hello.has_server_name);
}

TEST(ClientHelloParser, WithoutSupportedVersionsReportsLegacyVersion) {
  HelloBuilder b;
  b.legacy_version = 0x0301;
  b.Sni("a.b");
  const ParseResult r = ParseWire(Records(b.Message()));
  ASSERT_EQ(r.status, ParseStatus::kClientHello);
  EXPECT_EQ(r.hello.legacy_version, 0x0301);
  EXPECT_EQ(r.hello.versions, std::vector<uint16_t>{0x0301});
}

TEST(ClientHelloParser, KeepsGreaseVersionsAsOffered) {
  HelloBuilder b;
  b.Versions({0x7a7a, 0x0304, 0x0303});
  const ParseResult r = ParseWire(Records(b.Message()));
  ASSERT_EQ(r.status, ParseStatus::kClientHello);
  EXPECT_EQ(r.hello.versions, (std::vector<uint16_t>{0x7a7a, 0x0304, 0x0303}));
}

TEST(ClientHelloParser, AcceptsAHelloWithoutExtensions) {
  HelloBuilder b;
  b.omit_extensions = true;
  const ParseResult r = ParseWire(Records(b.Message()));
  ASSERT_EQ(r.status, ParseStatus::kClientHello) << Describe(r);
  EXPECT_FALSE(r.hello.has_server_name);
  EXPECT_EQ(r.hello.versions, std::vector<uint16_t>{0x0303});
}

TEST(ClientHelloParser, AcceptsEmptyExtensionBlockAndEmptySessionId) {
  HelloBuilder b;
  b.session_id = {};
  const ParseResult r = ParseWire(Records(b.Message()));
  EXPECT_EQ(r.status, ParseStatus::kClientHello) << Describe(r);
}

TEST(ClientHelloParser, AcceptsManyDistinctExtensions) {
  HelloBuilder b = Base();
  for (uint16_t t = 1000; t < 1200; ++t) b.Ext(t, {});
  EXPECT_EQ(ParseWire(Records(b.Message())).status, ParseStatus::kClientHello);
}

TEST(ClientHelloParser, AcceptsRecordVersions3_0To3_4) {
  for (uint16_t version = 0x0300; version <= 0x0304; ++version) {
    const ParseResult r = ParseWire(Records(Base().Message(), 16384, version));
    EXPECT_EQ(r.status, ParseStatus::kClientHello) << std::hex << version;
  }
}

TEST(ClientHelloParser, AcceptsAnyLegacyVersion3_x) {
  for (uint16_t version : {0x0300, 0x0301, 0x0303, 0x0304, 0x03ff}) {
    HelloBuilder b = Base();
    b.legacy_version = version;
    EXPECT_EQ(ParseWire(Records(b.Message())).status, ParseStatus::kClientHello) << version;
  }
}

TEST(ClientHelloParser, HandshakeHeaderSplitAcrossRecords) {
  const Bytes message = Base().Message();
  for (size_t fragment : {1, 2, 3, 5, 41}) {
    const Bytes wire = Records(message, fragment);
    const ParseResult r = ParseWire(wire);
    ASSERT_EQ(r.status, ParseStatus::kClientHello) << fragment << ": " << Describe(r);
    EXPECT_EQ(r.hello.server_name, kIstioSni);
    EXPECT_EQ(r.hello.bytes_consumed, wire.size());
  }
}

TEST(ClientHelloParser, EveryStrictPrefixNeedsMoreData) {
  const Bytes wire = Records(Base().Message(), 60);
  ClientHelloParser parser;
  for (size_t i = 0; i + 1 < wire.size(); ++i) {
    ASSERT_EQ(parser.Feed(std::span(wire).subspan(i, 1)), ParseStatus::kNeedMoreData) << i;
    ASSERT_EQ(ParseWire(Bytes(wire.begin(), wire.begin() + i)).status, ParseStatus::kNeedMoreData);
  }
  EXPECT_EQ(parser.Feed(std::span(wire).last(1)), ParseStatus::kClientHello);
}

TEST(ClientHelloParser, EmptyFeedChangesNothing) {
  ClientHelloParser parser;
  EXPECT_EQ(parser.Feed({}), ParseStatus::kNeedMoreData);
  const Bytes wire = Records(Base().Message());
  EXPECT_EQ(parser.Feed(wire), ParseStatus::kClientHello);
  EXPECT_EQ(parser.Feed({}), ParseStatus::kClientHello);
}

TEST(ClientHelloParser, StopsAtTheHelloWhenItsRecordCarriesMore) {
  const Bytes message = Base().Message();
  const Bytes next = HandshakeMessage(11, Bytes(30, 9));
  const Bytes wire = Records(Concat({message, next}));
  for (size_t chunk : {wire.size(), size_t{1}}) {
    const ParseResult r = FeedInChunks(wire, chunk);
    ASSERT_EQ(r.status, ParseStatus::kClientHello) << Describe(r);
    EXPECT_EQ(r.hello.bytes_consumed, wire.size()) << "the whole record the hello used";
  }
  // The verdict does not wait for the rest of that record.
  EXPECT_EQ(BytesUntilVerdict(wire), 5 + message.size());
}

TEST(ClientHelloParser, BytesConsumedEndsAtTheHellosLastRecord) {
  const Bytes hello = Records(Base().Message(), 100);
  const Bytes after = Concat({Record(kChangeCipherSpec, Bytes{1}, 0x0303),
                              Record(kApplicationData, Bytes(40, 1), 0x0303)});
  const Bytes wire = Concat({hello, after});
  for (size_t chunk : {wire.size(), size_t{1}, size_t{13}}) {
    const ParseResult r = FeedInChunks(wire, chunk);
    ASSERT_EQ(r.status, ParseStatus::kClientHello) << Describe(r);
    EXPECT_EQ(r.hello.bytes_consumed, hello.size());
  }
}

TEST(ClientHelloParser, FeedAfterVerdictReturnsTheVerdict) {
  ClientHelloParser parser;
  const Bytes wire = Records(Base().Message());
  ASSERT_EQ(parser.Feed(wire), ParseStatus::kClientHello);
  const ClientHello before = parser.hello();
  EXPECT_EQ(parser.Feed(ToBytes("GET / HTTP/1.1")), ParseStatus::kClientHello);
  EXPECT_EQ(parser.Feed(wire), ParseStatus::kClientHello);
  EXPECT_EQ(parser.hello().server_name, before.server_name);
  EXPECT_EQ(parser.hello().bytes_consumed, before.bytes_consumed);

  ClientHelloParser rejecting;
  ASSERT_EQ(rejecting.Feed(ToBytes("GET ")), ParseStatus::kRejected);
  EXPECT_EQ(rejecting.Feed(wire), ParseStatus::kRejected);
  EXPECT_EQ(rejecting.reason(), RejectReason::kPlainHttp);
}

// A relaying session keeps its parser for hello() and frees the bytes the
// hello was reassembled from; the parsed fields stay, and the parser can
// still be reset and reused.
TEST(ClientHelloParser, ReleaseBufferKeepsTheParsedHello) {
  ClientHelloParser parser;
  HelloBuilder b;
  b.Sni("kept.example").Alpn({"istio-peer-exchange", "istio"});
  ASSERT_EQ(parser.Feed(Records(b.Message(), 9)), ParseStatus::kClientHello);
  parser.ReleaseBuffer();
  EXPECT_EQ(parser.status(), ParseStatus::kClientHello);
  EXPECT_EQ(parser.hello().server_name, "kept.example");
  EXPECT_EQ(parser.hello().alpn, (std::vector<std::string>{"istio-peer-exchange", "istio"}));
  parser.Reset();
  ASSERT_EQ(parser.Feed(Records(Base().Message())), ParseStatus::kClientHello);
}

TEST(ClientHelloParser, ResetAllowsReuse) {
  ClientHelloParser parser;
  ASSERT_EQ(parser.Feed(ToBytes("SSH-")), ParseStatus::kRejected);
  parser.Reset();
  EXPECT_EQ(parser.status(), ParseStatus::kNeedMoreData);
  EXPECT_EQ(parser.reason(), RejectReason::kNone);

  HelloBuilder other;
  other.Sni("second.example");
  const Bytes first = Records(Base().Message(), 7), second = Records(other.Message());
  ASSERT_EQ(parser.Feed(std::span(first).first(30)), ParseStatus::kNeedMoreData);
  parser.Reset();  // mid-hello
  ASSERT_EQ(parser.Feed(second), ParseStatus::kClientHello);
  EXPECT_EQ(parser.hello().server_name, "second.example");
  EXPECT_TRUE(parser.hello().alpn.empty());
  parser.Reset();
  ASSERT_EQ(parser.Feed(first), ParseStatus::kClientHello);
  EXPECT_EQ(parser.hello().server_name, kIstioSni);
  EXPECT_EQ(parser.hello().bytes_consumed, first.size());
}

TEST(ClientHelloParser, RejectionClearsTheHello) {
  HelloBuilder b = Base();
  b.trailing = {0};
  const ParseResult r = ParseWire(Records(b.Message()));
  ASSERT_EQ(r.reason, RejectReason::kTrailingData);
  EXPECT_FALSE(r.hello.has_server_name);
  EXPECT_TRUE(r.hello.alpn.empty());
}

// Needs-more-data and verdicts for the first few bytes of a stream.
TEST(FirstBytes, DecideWithAsFewBytesAsNeeded) {
  struct Case {
    std::string bytes;
    ParseStatus status;
  };
  for (const auto& [bytes, status] : std::vector<Case>{
           {"G", ParseStatus::kNeedMoreData},  {"GE", ParseStatus::kNeedMoreData},
           {"GET", ParseStatus::kNeedMoreData}, {"P", ParseStatus::kNeedMoreData},
           {"PR", ParseStatus::kNeedMoreData},  {"PRI", ParseStatus::kNeedMoreData},
           {"\x80", ParseStatus::kNeedMoreData}, {"\x80\x2e", ParseStatus::kNeedMoreData},
           {"\x16", ParseStatus::kNeedMoreData}, {"\x16\x03", ParseStatus::kNeedMoreData},
           {"\x16\x03\x01\x01", ParseStatus::kNeedMoreData}, {"GX", ParseStatus::kRejected},
           {"\x16\x04", ParseStatus::kRejected}, {"X", ParseStatus::kRejected},
           {std::string("\0", 1), ParseStatus::kRejected}, {"\x15", ParseStatus::kRejected}}) {
    EXPECT_EQ(ParseWire(ToBytes(bytes)).status, status) << "'" << bytes << "'";
  }
}

TEST(EarlyVerdict, ComesOnTheByteThatProvesIt) {
  const Bytes hello = Base().Message();
  EXPECT_EQ(BytesUntilVerdict(Record(kAlert, Bytes{2, 40})), 1u);
  EXPECT_EQ(BytesUntilVerdict(ToBytes("X-not-tls")), 1u);
  EXPECT_EQ(BytesUntilVerdict(ToBytes("GET / HTTP/1.1")), 4u);
  EXPECT_EQ(BytesUntilVerdict(Bytes{0x80, 0x2e, 0x01, 0x03, 0x01}), 3u);
  EXPECT_EQ(BytesUntilVerdict(Record(kHandshake, hello, 0x0201)), 2u);
  EXPECT_EQ(BytesUntilVerdict(Record(kHandshake, hello, 0x0301, 0)), 5u);
  EXPECT_EQ(BytesUntilVerdict(Records(HandshakeMessage(2, Base().Body()))), 6u);
  // The handshake length alone shows a 1 MiB hello cannot fit.
  EXPECT_EQ(BytesUntilVerdict(Records(HandshakeMessage(1, Base().Body(), 1 << 20))), 9u);
  // A record header alone shows the record would cross a small cap.
  EXPECT_EQ(BytesUntilVerdict(Records(hello), {.max_hello_bytes = 64}), 5u);
}

TEST(SizeCap, CountsRecordHeadersAndHoldsAtTheEdge) {
  const Bytes message = Base().Message();
  for (size_t fragment : {size_t{1}, size_t{10}, size_t{16384}}) {
    const Bytes wire = Records(message, fragment);
    EXPECT_EQ(ParseWire(wire, {.max_hello_bytes = wire.size()}).status, ParseStatus::kClientHello)
        << fragment;
    const ParseResult over = ParseWire(wire, {.max_hello_bytes = wire.size() - 1});
    EXPECT_EQ(over.reason, RejectReason::kTooLarge) << fragment;
    EXPECT_EQ(FeedInChunks(wire, 1, {.max_hello_bytes = wire.size() - 1}).reason,
              RejectReason::kTooLarge);
  }
}

TEST(SizeCap, DefaultIs16KiBOfRecords) {
  HelloBuilder b = Base();
  const size_t bare = Records(b.Message()).size() + 4;
  b.Ext(21, Bytes(16 * 1024 - bare, 0));
  const Bytes wire = Records(b.Message());
  ASSERT_EQ(wire.size(), 16 * 1024u);
  const ParseResult r = ParseWire(wire);
  EXPECT_EQ(r.status, ParseStatus::kClientHello) << Describe(r);
  EXPECT_EQ(r.hello.server_name, kIstioSni);
}

TEST(SizeCap, LargeCapAllowsHelloAcrossFullRecords) {
  HelloBuilder b = Base();
  b.Ext(21, Bytes(40000, 0));
  const Bytes wire = Records(b.Message());
  EXPECT_EQ(ParseWire(wire).reason, RejectReason::kTooLarge);
  const ParseResult r = FeedInChunks(wire, 1000, {.max_hello_bytes = 64 * 1024});
  ASSERT_EQ(r.status, ParseStatus::kClientHello) << Describe(r);
  EXPECT_EQ(r.hello.bytes_consumed, wire.size());
}

TEST(RejectReasons, HaveUniqueSnakeCaseNames) {
  EXPECT_EQ(ToString(RejectReason::kNone), "none");
  std::set<std::string_view> names;
  size_t listed = 0;
#define MESHGATE_SNI_COUNT(name, str) ++listed;
  MESHGATE_SNI_REJECT_REASONS(MESHGATE_SNI_COUNT)
#undef MESHGATE_SNI_COUNT
  EXPECT_EQ(listed + 1, kRejectReasonCount);
  for (size_t i = 1; i < kRejectReasonCount; ++i) {
    const std::string_view name = ToString(static_cast<RejectReason>(i));
    EXPECT_TRUE(names.insert(name).second) << name;
    EXPECT_FALSE(name.empty());
    for (unsigned char c : name) EXPECT_TRUE(std::islower(c) || std::isdigit(c) || c == '_') << name;
  }
}

}  // namespace
}  // namespace meshgate::sni::testing
