// The `.global` DNS server's wire layer and zone, without sockets: every
// parse outcome by name, 0x20 case kept, EDNS0 (RFC 6891), TC when records
// do not fit (RFC 2181 9), and RFC 2308's negative answers.
#include <arpa/inet.h>

#include <string>
#include <vector>

#include "control/dns/dns_message.h"
#include "control/dns/dns_zone.h"
#include "gtest/gtest.h"

namespace {

using namespace meshgate::control::dns;

// A query as a stub resolver sends it (RFC 1035 4.1).
std::vector<uint8_t> Query(const std::string& name, uint16_t qtype, bool edns = false, uint16_t udp = 1232,
                           uint8_t version = 0) {
  std::vector<uint8_t> q = {0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, static_cast<uint8_t>(edns ? 1 : 0)};
  size_t start = 0;
  while (start <= name.size() && !name.empty()) {
    size_t dot = name.find('.', start);
    if (dot == std::string::npos) dot = name.size();
    q.push_back(static_cast<uint8_t>(dot - start));
    q.insert(q.end(), name.begin() + static_cast<long>(start), name.begin() + static_cast<long>(dot));
    start = dot + 1;
  }
  q.push_back(0);
  q.insert(q.end(), {static_cast<uint8_t>(qtype >> 8), static_cast<uint8_t>(qtype), 0, 1});
  if (edns) q.insert(q.end(), {0, 0, 41, static_cast<uint8_t>(udp >> 8), static_cast<uint8_t>(udp), 0, version, 0, 0, 0, 0});
  return q;
}

ParseOutcome OutcomeOf(const std::vector<uint8_t>& wire) { return ParseQuery(wire.data(), wire.size()).outcome; }

std::shared_ptr<const Zone> SampleZone() {
  return Zone::Make("global",
                    {{"httpbin.bar.global", {"240.0.0.7"}}, {"reviews.bar.global", {"240.0.0.8", "fd00::8"}}},
                    42, std::nullopt);
}

uint16_t Rcode16(const std::vector<uint8_t>& reply) { return reply[3] & 0xF; }
uint16_t Count(const std::vector<uint8_t>& reply, int section) {
  return static_cast<uint16_t>(reply[4 + 2 * section] << 8 | reply[5 + 2 * section]);
}

TEST(DnsMessageTest, ParsesAQueryKeepingTheCaseOfItsName) {
  const auto wire = Query("HttpBin.Bar.GLOBAL", kTypeA, true, 4096);
  const ParseResult r = ParseQuery(wire.data(), wire.size());
  ASSERT_EQ(r.outcome, ParseOutcome::kOk);
  EXPECT_EQ(r.query.id, 0x1234);
  EXPECT_TRUE(r.query.rd);
  EXPECT_EQ(r.query.qname, "HttpBin.Bar.GLOBAL");
  EXPECT_EQ(r.query.qname_wire, 20u);
  EXPECT_TRUE(r.query.edns);
  EXPECT_EQ(UdpLimit(r.query), kMaxUdpSize);  // 4096 asked, clamped to ours
}

TEST(DnsMessageTest, NamesEveryMalformedQuery) {
  auto wire = Query("a.global", kTypeA);
  EXPECT_EQ(ParseQuery(wire.data(), 11).outcome, ParseOutcome::kTooShort);
  EXPECT_EQ(ParseQuery(wire.data(), 14).outcome, ParseOutcome::kTruncatedName);
  EXPECT_EQ(ParseQuery(wire.data(), wire.size() - 1).outcome, ParseOutcome::kTruncatedQuestion);
  auto response = wire;
  response[2] |= 0x80;
  EXPECT_EQ(OutcomeOf(response), ParseOutcome::kIsResponse);
  auto notify = wire;
  notify[2] = 4 << 3;  // NOTIFY (RFC 1996)
  EXPECT_EQ(OutcomeOf(notify), ParseOutcome::kNotQuery);
  auto many = wire;
  many[4] = 0x03, many[5] = 0xE8;  // 1000 questions
  EXPECT_EQ(OutcomeOf(many), ParseOutcome::kBadQuestionCount);
  auto answers = wire;
  answers[7] = 1;
  EXPECT_EQ(OutcomeOf(answers), ParseOutcome::kBadSectionCount);
  auto loop = wire;  // a pointer to itself, the classic compression loop
  loop[12] = 0xC0, loop[13] = 12;
  EXPECT_EQ(OutcomeOf(loop), ParseOutcome::kCompressedName);
  auto extended = wire;
  extended[12] = 0x41;
  EXPECT_EQ(OutcomeOf(extended), ParseOutcome::kBadLabelType);
  EXPECT_EQ(OutcomeOf(Query(std::string(63, 'a') + "." + std::string(63, 'b') + "." + std::string(63, 'c') + "." +
                            std::string(63, 'd') + ".global", kTypeA)),
            ParseOutcome::kNameTooLong);
  auto trailing = wire;
  trailing.push_back(0);
  EXPECT_EQ(OutcomeOf(trailing), ParseOutcome::kTrailingBytes);
  auto not_opt = Query("a.global", kTypeA, true);
  not_opt[not_opt.size() - 9] = 1;  // type 1, not OPT
  EXPECT_EQ(OutcomeOf(not_opt), ParseOutcome::kBadAdditional);
  EXPECT_EQ(OutcomeOf(Query("a.global", kTypeA, true, 1232, 1)), ParseOutcome::kBadVersion);
  EXPECT_EQ(ParseOutcomeName(ParseOutcome::kCompressedName), "compressed_name");
}

TEST(DnsMessageTest, ALabelHoldingADotNeverMatchesTwoLabels) {
  std::vector<uint8_t> wire = {0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 9};
  for (char c : std::string("httpbin.b")) wire.push_back(static_cast<uint8_t>(c));
  wire.insert(wire.end(), {2, 'a', 'r', 6, 'g', 'l', 'o', 'b', 'a', 'l', 0, 0, 1, 0, 1});
  const ParseResult r = ParseQuery(wire.data(), wire.size());
  ASSERT_EQ(r.outcome, ParseOutcome::kOk);
  EXPECT_EQ(r.query.qname, "httpbin\\.b.ar.global");
  EXPECT_EQ(SampleZone()->Resolve(r.query).reply.rcode, Rcode::kNxDomain);
}

// Resolves and builds as the server does.
std::vector<uint8_t> Answer(const std::vector<uint8_t>& wire, size_t limit = 512) {
  const ParseResult r = ParseQuery(wire.data(), wire.size());
  const Zone::Answer a = SampleZone()->Resolve(r.query);
  return BuildReply(wire.data(), r.query, a.reply, a.zone_labels, limit);
}

TEST(DnsZoneTest, AnswersARecordsWithTheQuestionsCase) {
  const auto wire = Query("HTTPBIN.bar.Global", kTypeA);
  const auto reply = Answer(wire);
  EXPECT_EQ(Rcode16(reply), 0);
  EXPECT_TRUE(reply[2] & 0x04);  // AA
  EXPECT_EQ(Count(reply, 1), 1);
  // The question is copied byte for byte; the answer's owner points at it.
  EXPECT_EQ(std::string(reply.begin() + 12, reply.begin() + 32), std::string(wire.begin() + 12, wire.begin() + 32));
  const size_t rr = 12 + 20 + 4;
  EXPECT_EQ(reply[rr], 0xC0);
  EXPECT_EQ(reply[rr + 1], 12);
  EXPECT_EQ(std::vector<uint8_t>(reply.end() - 4, reply.end()), (std::vector<uint8_t>{240, 0, 0, 7}));
}

TEST(DnsZoneTest, NegativeAnswersFollowRfc2308) {
  for (const auto& [name, type, rcode] : std::vector<std::tuple<std::string, uint16_t, int>>{
           {"httpbin.bar.global", kTypeAaaa, 0},  // NODATA: no v6 VIP
           {"nope.bar.global", kTypeA, 3},         // NXDOMAIN
           {"bar.global", kTypeA, 0},              // an empty non-terminal
           {"global", kTypeA, 0}}) {
    const auto reply = Answer(Query(name, type));
    EXPECT_EQ(Rcode16(reply), rcode) << name;
    EXPECT_EQ(Count(reply, 1), 0) << name;
    EXPECT_EQ(Count(reply, 2), 1) << name << ": the SOA in authority";
  }
  const auto v6 = Answer(Query("reviews.bar.global", kTypeAaaa));
  EXPECT_EQ(Count(v6, 1), 1);
  const auto outside = Answer(Query("example.com", kTypeA));
  EXPECT_EQ(Rcode16(outside), 5);
  EXPECT_FALSE(outside[2] & 0x04);
  EXPECT_EQ(Count(Answer(Query("global", kTypeSoa)), 1), 1);
  EXPECT_EQ(Count(Answer(Query("GLOBAL", kTypeNs)), 1), 1);
}

TEST(DnsZoneTest, EchoesOptAndSetsTcWhenTheRecordsDoNotFit) {
  std::map<std::string, std::vector<std::string>> hosts;
  for (int i = 1; i < 200; ++i) hosts["big.bar.global"].push_back("240.0.1." + std::to_string(i));
  const auto zone = Zone::Make("global", hosts, 1, std::nullopt);
  for (const auto& [edns, udp, truncated] :
       std::vector<std::tuple<bool, uint16_t, bool>>{{false, 0, true}, {true, 512, true}, {true, 4096, false}}) {
    auto wire = Query("big.bar.global", kTypeA, edns, udp);
    const ParseResult r = ParseQuery(wire.data(), wire.size());
    auto a = zone->Resolve(r.query);
    // 199 records of 16 bytes: 3.2 kB fits TCP and... not 1232: trim to 60 for the EDNS case.
    if (udp == 4096) a.reply.answers.resize(60);
    const auto reply = BuildReply(wire.data(), r.query, a.reply, a.zone_labels, UdpLimit(r.query));
    EXPECT_LE(reply.size(), UdpLimit(r.query));
    EXPECT_EQ((reply[2] & 0x02) != 0, truncated) << udp;
    EXPECT_EQ(Count(reply, 1), truncated ? 0 : 60);
    EXPECT_EQ(Count(reply, 3), edns ? 1 : 0) << "OPT echoed only to EDNS queries";
  }
  auto wire = Query("big.bar.global", kTypeA);
  const ParseResult r = ParseQuery(wire.data(), wire.size());
  const auto a = zone->Resolve(r.query);
  EXPECT_EQ(Count(BuildReply(wire.data(), r.query, a.reply, a.zone_labels, 65535), 1), 199) << "TCP takes it all";
}

}  // namespace
