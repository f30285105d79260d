// libFuzzer target for the ClientHello parser. Each input is parsed whole and
// again split at a point derived from its bytes; any disagreement aborts.
#include <cstdio>
#include <cstdlib>

#include "sni/client_hello_parser.h"

namespace {

using meshgate::sni::ClientHello;
using meshgate::sni::ClientHelloParser;
using meshgate::sni::ParseClientHello;
using meshgate::sni::ParseResult;
using meshgate::sni::ParserOptions;
using meshgate::sni::ParseStatus;

void Fail(const char* what) {
  std::fprintf(stderr, "sni_fuzz: %s\n", what);
  std::abort();
}

bool SameHello(const ClientHello& a, const ClientHello& b) {
  return a.has_server_name == b.has_server_name && a.server_name == b.server_name &&
         a.alpn == b.alpn && a.legacy_version == b.legacy_version && a.versions == b.versions &&
         a.bytes_consumed == b.bytes_consumed;
}

void Check(const ParseResult& whole, const ClientHelloParser& parser, const char* how) {
  if (parser.status() != whole.status || parser.reason() != whole.reason ||
      !SameHello(parser.hello(), whole.hello)) {
    Fail(how);
  }
}

// What an accepted hello promises its users.
void CheckInvariants(const ParseResult& r, const ParserOptions& options) {
  if ((r.status == ParseStatus::kRejected) != (r.reason != meshgate::sni::RejectReason::kNone)) {
    Fail("status and reason disagree");
  }
  if (meshgate::sni::ToString(r.reason).empty()) Fail("unnamed reason");
  if (r.status != ParseStatus::kClientHello) return;
  const ClientHello& h = r.hello;
  if (h.bytes_consumed > options.max_hello_bytes) Fail("hello over the cap");
  if (h.versions.empty()) Fail("no versions");
  if (h.has_server_name != !h.server_name.empty()) Fail("server name flag");
  if (h.server_name.size() > 255) Fail("server name too long");
  for (char c : h.server_name) {
    if (c >= 'A' && c <= 'Z') Fail("server name not lowercased");
  }
  for (const auto& p : h.alpn) {
    if (p.empty() || p.size() > 255) Fail("bad alpn name");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> input(data, size);
  uint32_t hash = 2166136261u;  // FNV-1a picks the split point and the cap
  for (uint8_t b : input) hash = (hash ^ b) * 16777619u;

  // Mostly the default cap; sometimes a small one so kTooLarge paths run.
  ParserOptions options;
  if (hash % 8 == 0) options.max_hello_bytes = hash % 600;

  const ParseResult whole = ParseClientHello(input, options);
  CheckInvariants(whole, options);

  const size_t split = size == 0 ? 0 : (hash >> 3) % (size + 1);
  ClientHelloParser parser(options);
  parser.Feed(input.first(split));
  parser.Feed(input.subspan(split));
  Check(whole, parser, "split feed disagrees with whole feed");

  // Reuse after Reset, fed one byte at a time (bounded to keep runs fast).
  if (size <= 4096) {
    parser.Reset();
    for (size_t i = 0; i < size; ++i) parser.Feed(input.subspan(i, 1));
    Check(whole, parser, "byte-by-byte feed disagrees with whole feed");
  }
  return 0;
}
