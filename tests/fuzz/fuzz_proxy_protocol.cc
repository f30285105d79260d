// libFuzzer target for the PROXY protocol parser (sni/proxy_protocol.h): the
// bytes a trusted load balancer sends before the ClientHello. Beyond "no
// crash, no overread" (ASan), it checks the parser's promises:
// - a header is never longer than its input, than 107 bytes (v1) or the v2 cap;
// - every shorter prefix of a parsed header asks for more bytes, so reading
//   byte by byte finds the same header;
// - the header alone parses the same as the header with bytes after it;
// - a carried address survives the v2 encoder the outbound side uses.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <vector>

#include "sni/proxy_protocol.h"

namespace {

using meshgate::sni::ParseProxyHeader;
using meshgate::sni::ProxyParseStatus;

void Check(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "proxy_protocol_fuzz: %s\n", what);
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> bytes(data, size);
  const auto r = ParseProxyHeader(bytes);
  (void)meshgate::sni::MatchProxySignature(bytes);
  if (r.status != ProxyParseStatus::kDone) return 0;
  const auto& h = r.header;
  Check(h.header_bytes > 0 && h.header_bytes <= size, "header longer than its input");
  Check(h.version == 2 || h.header_bytes <= meshgate::sni::kProxyV1MaxBytes, "v1 header over 107 bytes");
  Check(h.version == 1 || h.header_bytes <= meshgate::sni::kProxyV2DefaultMaxBytes, "v2 header over the cap");
  for (size_t n = 1; n < h.header_bytes; ++n) {
    Check(ParseProxyHeader(bytes.first(n)).status == ProxyParseStatus::kNeedMoreData,
          "a prefix of a header is not 'need more'");
  }
  const auto alone = ParseProxyHeader(bytes.first(h.header_bytes));
  Check(alone.status == ProxyParseStatus::kDone && alone.header.header_bytes == h.header_bytes,
        "the header alone parses differently");
  if (h.carries_ip_source()) {
    // A CRC32C TLV covers the header it came in; the re-encoded one differs.
    std::vector<meshgate::sni::ProxyTlv> tlvs;
    for (const auto& tlv : h.tlvs) {
      if (tlv.type != meshgate::sni::kPp2TypeCrc32c) tlvs.push_back(tlv);
    }
    const auto encoded = meshgate::sni::EncodeProxyV2(h.src_ip, h.src_port, h.dst_ip, h.dst_port, tlvs);
    const auto back = ParseProxyHeader(encoded, {.max_v2_bytes = 70000});
    Check(back.status == ProxyParseStatus::kDone, "the encoder's header does not parse");
    Check(back.header.src_ip == h.src_ip && back.header.dst_ip == h.dst_ip && back.header.src_port == h.src_port &&
              back.header.dst_port == h.dst_port && back.header.tlvs.size() == tlvs.size(),
          "the encoder changed the addresses or TLVs");
  }
  return 0;
}
