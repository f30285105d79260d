// Real captured ClientHellos (tests/data/clienthellos): what each one says,
// and that re-recording or re-chunking them never changes the verdict.
#include <gtest/gtest.h>

#include <filesystem>
#include <optional>
#include <set>
#include <random>

#include "sni/client_hello_parser.h"
#include "tests/sni/hello_builder.h"

namespace meshgate::sni::testing {
namespace {

struct Capture {
  std::string file;
  std::optional<std::string> sni;
  std::vector<std::string> alpn;
  std::vector<uint16_t> versions;
};

const std::vector<uint16_t> kTls13Down = {0x0304, 0x0303, 0x0302, 0x0301};
const std::string kIstioSni = "outbound_.8000_._.httpbin.bar.global";

std::vector<Capture> Captures() {
  return {
      {"openssl13_sni.bin", kIstioSni, {"istio-peer-exchange", "istio"}, kTls13Down},
      {"openssl12_sni.bin", "httpbin.bar.global", {}, {0x0303}},
      {"openssl_nosni.bin", std::nullopt, {}, kTls13Down},
      {"curl_sni.bin", "httpbin.bar.global", {"h2", "http/1.1"}, kTls13Down},
      {"gnutls_sni.bin", kIstioSni, {"h2"}, kTls13Down},
      {"python_sni.bin", "helloworld.sample.global", {"istio", "h2"}, {0x0304, 0x0303}},
  };
}

// gtest prints a parameter with this (the struct's bytes otherwise).
void PrintTo(const Capture& c, std::ostream* os) { *os << c.file; }

Bytes Load(const Capture& c) { return ReadFileBytes(TestDataPath("clienthellos/" + c.file)); }

class CaptureTest : public ::testing::TestWithParam<Capture> {
 protected:
  void ExpectCapture(const ParseResult& r, size_t wire_size) {
    const Capture& c = GetParam();
    ASSERT_EQ(r.status, ParseStatus::kClientHello) << Describe(r);
    EXPECT_EQ(r.hello.has_server_name, c.sni.has_value());
    EXPECT_EQ(r.hello.server_name, c.sni.value_or(""));
    EXPECT_EQ(r.hello.alpn, c.alpn);
    EXPECT_EQ(r.hello.legacy_version, 0x0303);
    EXPECT_EQ(r.hello.versions, c.versions);
    EXPECT_EQ(r.hello.bytes_consumed, wire_size);
  }
};

TEST_P(CaptureTest, ParsesAsCaptured) {
  const Bytes wire = Load(GetParam());
  ExpectCapture(ParseClientHello(wire), wire.size());
}

TEST_P(CaptureTest, SameVerdictInAnyChunking) {
  const Bytes wire = Load(GetParam());
  for (size_t chunk : {1, 2, 3, 4, 5, 6, 7, 64, 100, 511}) {
    SCOPED_TRACE(chunk);
    ExpectCapture(FeedInChunks(wire, chunk), wire.size());
  }
}

TEST_P(CaptureTest, SameVerdictReRecordedIntoSmallRecords) {
  const Bytes handshake = RecordPayloads(Load(GetParam()));
  for (size_t fragment : {1, 2, 3, 4, 7, 100, 200, 16384}) {
    const Bytes wire = Records(handshake, fragment);
    for (size_t chunk : {wire.size(), size_t{1}, size_t{9}}) {
      SCOPED_TRACE(::testing::Message() << "fragment " << fragment << " chunk " << chunk);
      ExpectCapture(FeedInChunks(wire, chunk), wire.size());
    }
  }
}

TEST_P(CaptureTest, EveryTruncationNeedsMoreData) {
  const Bytes wire = Records(RecordPayloads(Load(GetParam())), 50);
  for (size_t length = 0; length < wire.size(); ++length) {
    ASSERT_EQ(ParseClientHello(std::span(wire).first(length)).status, ParseStatus::kNeedMoreData)
        << length;
  }
}

// Random single-byte mutations and truncations: whatever the verdict, it is
// the same whole, byte by byte, and in random chunks.
TEST_P(CaptureTest, MutationsGetOneVerdictWhateverTheChunking) {
  const Bytes original = Load(GetParam());
  std::mt19937 rng(20240611);
  size_t accepted = 0, rejected = 0;
  for (int round = 0; round < 400; ++round) {
    Bytes wire = original;
    if (round % 4 == 0) {
      wire.resize(std::uniform_int_distribution<size_t>(0, wire.size())(rng));
    } else {
      const size_t at = std::uniform_int_distribution<size_t>(0, wire.size() - 1)(rng);
      wire[at] = static_cast<uint8_t>(rng());
    }
    const ParseResult whole = ParseClientHello(wire);
    const ParseResult bytewise = FeedInChunks(wire, 1);
    ASSERT_TRUE(SameOutcome(whole, bytewise)) << Describe(whole) << " vs " << Describe(bytewise);

    ClientHelloParser parser;
    for (size_t at = 0; at < wire.size();) {
      const size_t n = std::uniform_int_distribution<size_t>(1, 40)(rng);
      parser.Feed(std::span(wire).subspan(at, std::min(n, wire.size() - at)));
      at += n;
    }
    const ParseResult random_chunks{parser.status(), parser.reason(), parser.hello()};
    ASSERT_TRUE(SameOutcome(whole, random_chunks)) << Describe(whole) << " vs " << Describe(random_chunks);
    (whole.status == ParseStatus::kClientHello ? accepted : rejected) += 1;
  }
  EXPECT_GT(accepted, 0u);  // mutations inside random bytes keep the hello valid
  EXPECT_GT(rejected, 0u);
}

TEST(Captures, EveryCapturedFileHasExpectations) {
  std::set<std::string> listed;
  for (const Capture& c : Captures()) listed.insert(c.file);
  for (const auto& entry : std::filesystem::directory_iterator(TestDataPath("clienthellos"))) {
    if (entry.path().extension() != ".bin") continue;
    EXPECT_TRUE(listed.count(entry.path().filename().string())) << entry.path();
  }
}

INSTANTIATE_TEST_SUITE_P(Real, CaptureTest, ::testing::ValuesIn(Captures()),
                         [](const auto& info) { return CaptureName(info.param.file); });

}  // namespace
}  // namespace meshgate::sni::testing
