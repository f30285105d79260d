// libFuzzer target for the `.global` DNS server's query parser and response
// writer: every input is parsed, answered from a fixed zone as the server
// would, and the promises the server relies on are checked.
#include <cstdio>
#include <cstdlib>

#include "control/dns/dns_message.h"
#include "control/dns/dns_zone.h"

namespace {

using namespace meshgate::control::dns;

void Fail(const char* what) {
  std::fprintf(stderr, "dns_fuzz: %s\n", what);
  std::abort();
}

const Zone& TheZone() {
  static const auto zone = Zone::Make(
      "global", {{"httpbin.bar.global", {"240.0.0.7"}}, {"reviews.bar.global", {"240.0.0.8", "fd00::8"}}}, 7, 0x7f000001);
  return *zone;
}

void CheckReply(const std::vector<uint8_t>& out, const uint8_t* data, const Query& q, size_t limit) {
  if (out.size() > limit) Fail("reply larger than the limit");
  if (out.size() < kHeaderSize + q.qname_wire + 4) Fail("reply without its question");
  if (out[0] != data[0] || out[1] != data[1] || !(out[2] & 0x80)) Fail("reply header");
  // A reply is a response: our own parser must refuse to answer it (no loops).
  if (ParseQuery(out.data(), out.size()).outcome != ParseOutcome::kIsResponse) Fail("reply not seen as a response");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const ParseResult r = ParseQuery(data, size);
  if (ParseOutcomeName(r.outcome).empty()) Fail("unnamed outcome");
  if (r.outcome == ParseOutcome::kTooShort) {
    if (size >= kHeaderSize) Fail("a full header called too short");
    return 0;
  }
  if (BuildHeaderOnlyError(data, Rcode::kFormErr).size() != kHeaderSize) Fail("error size");
  if (r.outcome != ParseOutcome::kOk) return 0;
  if (r.query.qname_wire == 0 || r.query.qname_wire > kMaxNameWire) Fail("name length");
  const Zone::Answer a = TheZone().Resolve(r.query);
  CheckReply(BuildReply(data, r.query, a.reply, a.zone_labels, UdpLimit(r.query)), data, r.query, UdpLimit(r.query));
  CheckReply(BuildReply(data, r.query, a.reply, a.zone_labels, 65535), data, r.query, 65535);
  return 0;
}
