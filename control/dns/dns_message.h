// DNS wire format for meshgatectl's authoritative `.global` server: parses one
// query with a bounds check before every read, and builds the response. Pure:
// no sockets, so it is unit-tested and fuzzed (tests/control/dns_fuzz.cc).
//
// Follows RFC 1035 (message format, 4.1), RFC 2181 (label and name limits,
// 11; TC, 9), RFC 6891 (EDNS0 OPT) and RFC 2308 (NXDOMAIN/NODATA carry the
// SOA in the authority section).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace meshgate::control::dns {

inline constexpr uint16_t kTypeA = 1;
inline constexpr uint16_t kTypeNs = 2;
inline constexpr uint16_t kTypeSoa = 6;
inline constexpr uint16_t kTypeAaaa = 28;
inline constexpr uint16_t kTypeOpt = 41;
inline constexpr uint16_t kTypeAny = 255;
inline constexpr uint16_t kClassIn = 1;
inline constexpr size_t kHeaderSize = 12;
inline constexpr size_t kMaxNameWire = 255;  // RFC 1035 2.3.4, RFC 2181 11
inline constexpr size_t kMaxLabel = 63;
inline constexpr size_t kClassicUdpSize = 512;  // RFC 1035 4.2.1
// The largest EDNS UDP payload we answer with: DNS Flag Day 2020's 1232
// avoids IP fragmentation; a client may ask for less, never more.
inline constexpr size_t kMaxUdpSize = 1232;

enum class Rcode : uint8_t { kNoError = 0, kFormErr = 1, kServFail = 2, kNxDomain = 3, kNotImp = 4, kRefused = 5 };

// Every outcome of parsing one query: the first two are dropped without an
// answer, kNotQuery gets NOTIMP, kBadVersion BADVERS, the kBad* ones FORMERR.
#define MESHGATECTL_DNS_PARSE_OUTCOMES(X)                                                        \
  X(kOk, "ok")                                                                                  \
  X(kTooShort, "shorter than the 12-byte header")                                               \
  X(kIsResponse, "QR=1: a response, never answered (no reflection loops)")                      \
  X(kNotQuery, "an opcode other than QUERY")                                                    \
  X(kBadQuestionCount, "QDCOUNT is not 1")                                                      \
  X(kBadSectionCount, "a query with answer or authority records")                               \
  X(kTruncatedName, "the question name runs past the message")                                  \
  X(kCompressedName, "a compression pointer in the question name")                              \
  X(kBadLabelType, "a label type other than a plain label (RFC 6891 5)")                        \
  X(kNameTooLong, "the question name is longer than 255 bytes")                                 \
  X(kTruncatedQuestion, "the question's type or class runs past the message")                   \
  X(kBadAdditional, "an additional record that is not one well-formed OPT at the root")         \
  X(kBadVersion, "an EDNS version other than 0")                                                \
  X(kTrailingBytes, "bytes after the last record")

enum class ParseOutcome : uint8_t {
#define MESHGATECTL_DNS_ENUM_(name, text) name,
  MESHGATECTL_DNS_PARSE_OUTCOMES(MESHGATECTL_DNS_ENUM_)
#undef MESHGATECTL_DNS_ENUM_
};
inline constexpr size_t kParseOutcomeCount = 14;
std::string_view ParseOutcomeName(ParseOutcome o);  // "truncated_name"...
std::string_view ParseOutcomeText(ParseOutcome o);  // the explanation above

struct Query {
  uint16_t id = 0;
  uint8_t opcode = 0;
  bool rd = false;
  bool cd = false;
  // The question name as sent (case kept, for 0x20), dotted without the
  // trailing dot; "" is the root. Its wire form is `qname_wire` bytes long.
  std::string qname;
  size_t qname_wire = 0;
  uint16_t qtype = 0;
  uint16_t qclass = 0;
  bool edns = false;
  uint16_t udp_size = 0;  // the OPT's advertised payload size
  bool dnssec_ok = false;
};

struct ParseResult {
  ParseOutcome outcome = ParseOutcome::kTooShort;
  Query query;  // the header fields are set whenever outcome != kTooShort
};

ParseResult ParseQuery(const uint8_t* data, size_t size);

// What to answer: a resource record whose owner is the question name or the
// zone apex, compressed against the question (so the answer keeps the
// question's case).
struct Record {
  enum class Owner : uint8_t { kQuestion, kApex } owner = Owner::kQuestion;
  uint16_t type = 0;
  uint32_t ttl = 0;
  // A: 4 bytes, AAAA: 16. NS and SOA RDATA are written by BuildReply:
  // "ns.<apex>" (and "hostmaster.<apex>"), the apex compressed against the
  // question; `soa` is serial, refresh, retry, expire, minimum.
  std::vector<uint8_t> rdata;
  uint32_t soa[5] = {0, 0, 0, 0, 0};
};

struct Reply {
  Rcode rcode = Rcode::kNoError;
  bool authoritative = true;
  std::vector<Record> answers;
  std::vector<Record> authority;
  uint16_t extended_rcode_high = 0;  // RFC 6891 6.1.3: BADVERS is 1 (with rcode 0)
};

// The response to `query` (whose outcome was kOk, kNotQuery or kBadVersion),
// at most `limit` bytes: when the records do not fit, none are sent and TC is
// set (RFC 2181 9), so the client retries over TCP. `zone_labels` is how many
// trailing labels of the question name are the zone apex (for kApex owners
// and the SOA/NS names); 0 when the question is not in the zone.
std::vector<uint8_t> BuildReply(const uint8_t* query_wire, const Query& query, const Reply& reply,
                                size_t zone_labels, size_t limit);

// A header-only error response (FORMERR for a query we could not read):
// the ID, opcode and RD copied, QDCOUNT 0. Needs the 12 header bytes.
std::vector<uint8_t> BuildHeaderOnlyError(const uint8_t* query_wire, Rcode rcode);

// The UDP size limit for a response to `query`: 512 without EDNS, else the
// advertised size clamped to [512, kMaxUdpSize] (RFC 6891 6.2.5).
size_t UdpLimit(const Query& query);

// Lower-cases ASCII letters only (RFC 4343: DNS names compare case-insensitively).
std::string LowerName(std::string_view name);

}  // namespace meshgate::control::dns
