// PROXY protocol v1/v2 headers. Section numbers are those of
// https://www.haproxy.org/download/2.8/doc/proxy-protocol.txt.
#include "sni/proxy_protocol.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>
#include <optional>

namespace meshgate::sni {
namespace {

// §2.2: "\x0D\x0A\x0D\x0A\x00\x0D\x0A\x51\x55\x49\x54\x0A".
constexpr std::array<uint8_t, 12> kV2Signature = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                                  0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
constexpr std::string_view kV1Signature = "PROXY ";

// §2.2: the address block's length for each family (UNSPEC: none).
constexpr size_t kInetBlock = 12;    // 2 × 4-byte address, 2 × 2-byte port
constexpr size_t kInet6Block = 36;   // 2 × 16-byte address, 2 × 2-byte port
constexpr size_t kUnixBlock = 216;   // 2 × 108-byte path

ProxyParseResult Fail(ProxyHeaderError error) {
  ProxyParseResult r;
  r.status = ProxyParseStatus::kError;
  r.error = error;
  return r;
}

std::array<uint8_t, 16> MappedV4(const uint8_t* v4) {
  std::array<uint8_t, 16> out{};
  out[10] = 0xFF;
  out[11] = 0xFF;
  std::memcpy(out.data() + 12, v4, 4);
  return out;
}

bool IsMappedV4(const std::array<uint8_t, 16>& ip) {
  static constexpr uint8_t kPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF};
  return std::memcmp(ip.data(), kPrefix, sizeof(kPrefix)) == 0;
}

uint16_t ReadU16(const uint8_t* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }

// ---- v1 (§2.1) ----

// A decimal port, 0..65535, without a sign or leading zeros.
std::optional<uint16_t> ParsePort(std::string_view text) {
  if (text.empty() || text.size() > 5 || (text.size() > 1 && text[0] == '0')) return std::nullopt;
  uint32_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<uint32_t>(c - '0');
  }
  if (v > 65535) return std::nullopt;
  return static_cast<uint16_t>(v);
}

// One address of `family` (AF_INET/AF_INET6) as IPv6 bytes, IPv4 mapped.
bool ParseV1Address(std::string_view text, int family, std::array<uint8_t, 16>& out) {
  char buf[INET6_ADDRSTRLEN + 1];
  if (text.empty() || text.size() >= sizeof(buf)) return false;
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  if (family == AF_INET) {
    uint8_t v4[4];
    if (inet_pton(AF_INET, buf, v4) != 1) return false;
    out = MappedV4(v4);
    return true;
  }
  return inet_pton(AF_INET6, buf, out.data()) == 1;
}

// "TCP4 SRC DST SPORT DPORT" (the line after "PROXY ", without CRLF): exactly
// single spaces between fields (§2.1: "a single space").
bool ParseV1Fields(std::string_view line, ProxyHeader& h) {
  std::string_view fields[5];
  size_t n = 0;
  size_t start = 0;
  for (size_t i = 0; i <= line.size(); ++i) {
    if (i < line.size() && line[i] != ' ') continue;
    if (n == 5) return false;  // a sixth field
    fields[n++] = line.substr(start, i - start);
    start = i + 1;
  }
  if (n != 5) return false;
  const int family = h.family == ProxyFamily::kInet ? AF_INET : AF_INET6;
  const auto sport = ParsePort(fields[3]);
  const auto dport = ParsePort(fields[4]);
  if (!sport || !dport) return false;
  if (!ParseV1Address(fields[1], family, h.src_ip) || !ParseV1Address(fields[2], family, h.dst_ip)) return false;
  h.src_port = *sport;
  h.dst_port = *dport;
  return true;
}

ProxyParseResult ParseV1(std::span<const uint8_t> bytes) {
  const size_t scan = std::min(bytes.size(), kProxyV1MaxBytes);
  size_t lf = scan;
  for (size_t i = kV1Signature.size(); i < scan; ++i) {
    if (bytes[i] == '\n') {
      lf = i;
      break;
    }
  }
  if (lf == scan) {
    if (bytes.size() >= kProxyV1MaxBytes) return Fail(ProxyHeaderError::kOversized);
    return {};
  }
  // A bare LF, or a CR anywhere but right before the LF, is no CRLF.
  if (bytes[lf - 1] != '\r') return Fail(ProxyHeaderError::kBadV1Field);
  const std::string_view line(reinterpret_cast<const char*>(bytes.data()) + kV1Signature.size(),
                              lf - 1 - kV1Signature.size());
  ProxyParseResult r;
  r.status = ProxyParseStatus::kDone;
  ProxyHeader& h = r.header;
  h.version = 1;
  h.header_bytes = lf + 1;
  h.transport = ProxyTransport::kStream;
  const std::string_view protocol = line.substr(0, line.find(' '));
  if (protocol == "UNKNOWN") {
    // "the receiver must ignore anything presented before the CRLF is found".
    h.family = ProxyFamily::kUnspec;
    h.transport = ProxyTransport::kUnspec;
    return r;
  }
  if (protocol == "TCP4") {
    h.family = ProxyFamily::kInet;
  } else if (protocol == "TCP6") {
    h.family = ProxyFamily::kInet6;
  } else {
    return Fail(protocol.find('\r') == std::string_view::npos ? ProxyHeaderError::kBadFamily
                                                                : ProxyHeaderError::kBadV1Field);
  }
  if (line.find('\r') != std::string_view::npos || !ParseV1Fields(line, h)) {
    return Fail(ProxyHeaderError::kBadV1Field);
  }
  return r;
}

// ---- v2 (§2.2) ----

// TLVs over [p, end): type, 2-byte big-endian length, value (§2.2). Each
// length is checked against what is left before it is read.
bool ParseTlvs(const uint8_t* p, const uint8_t* end, std::vector<ProxyTlv>& out, bool nested) {
  while (p != end) {
    if (end - p < 3) return false;
    const uint8_t type = p[0];
    const size_t len = ReadU16(p + 1);
    p += 3;
    if (static_cast<size_t>(end - p) < len) return false;
    ProxyTlv tlv;
    tlv.type = type;
    tlv.value.assign(reinterpret_cast<const char*>(p), len);
    // §2.2.5: PP2_TYPE_SSL is 1 byte client, 4 bytes verify, then sub-TLVs.
    // Sub-TLVs of sub-TLVs are not defined: read as plain values.
    if (type == kPp2TypeSsl && !nested) {
      if (len < 5) return false;
      if (!ParseTlvs(p + 5, p + len, tlv.sub, true)) return false;
    }
    out.push_back(std::move(tlv));
    p += len;
  }
  return true;
}

// §2.2.3: the CRC32c of the whole header with the checksum's 4 bytes zeroed.
bool ChecksumMatches(std::span<const uint8_t> header, const ProxyTlv& crc, size_t crc_offset) {
  if (crc.value.size() != 4) return false;
  std::vector<uint8_t> copy(header.begin(), header.end());
  std::fill_n(copy.begin() + static_cast<std::ptrdiff_t>(crc_offset), 4, 0);
  const auto* v = reinterpret_cast<const uint8_t*>(crc.value.data());
  const uint32_t want = (uint32_t{v[0]} << 24) | (uint32_t{v[1]} << 16) | (uint32_t{v[2]} << 8) | v[3];
  return Crc32c(copy) == want;
}

// The CRC32C TLV's value offset in the header, found by walking the TLVs
// again (they are known to be well-formed here).
size_t Crc32cOffset(std::span<const uint8_t> header, size_t tlv_start) {
  size_t p = tlv_start;
  while (p + 3 <= header.size()) {
    const size_t len = ReadU16(&header[p + 1]);
    if (header[p] == kPp2TypeCrc32c) return p + 3;
    p += 3 + len;
  }
  return header.size();
}

void ReadAddresses(const uint8_t* block, ProxyHeader& h) {
  if (h.family == ProxyFamily::kInet) {
    h.src_ip = MappedV4(block);
    h.dst_ip = MappedV4(block + 4);
    h.src_port = ReadU16(block + 8);
    h.dst_port = ReadU16(block + 10);
  } else if (h.family == ProxyFamily::kInet6) {
    std::memcpy(h.src_ip.data(), block, 16);
    std::memcpy(h.dst_ip.data(), block + 16, 16);
    h.src_port = ReadU16(block + 32);
    h.dst_port = ReadU16(block + 34);
  } else if (h.family == ProxyFamily::kUnix) {
    const auto* src = reinterpret_cast<const char*>(block);
    h.src_unix.assign(src, strnlen(src, 108));
    h.dst_unix.assign(src + 108, strnlen(src + 108, 108));
  }
}

ProxyParseResult ParseV2(std::span<const uint8_t> bytes, const ProxyParserOptions& options) {
  if (bytes.size() < kProxyV2FixedBytes) return {};
  const uint8_t ver_cmd = bytes[12];
  const uint8_t fam = bytes[13];
  if ((ver_cmd >> 4) != 2) return Fail(ProxyHeaderError::kBadVersion);
  const uint8_t command = ver_cmd & 0x0F;
  if (command > 1) return Fail(ProxyHeaderError::kBadCommand);
  const size_t len = ReadU16(&bytes[14]);
  if (kProxyV2FixedBytes + len > options.max_v2_bytes) return Fail(ProxyHeaderError::kOversized);
  ProxyParseResult r;
  ProxyHeader& h = r.header;
  h.version = 2;
  h.command = static_cast<ProxyCommand>(command);
  const uint8_t family = fam >> 4, transport = fam & 0x0F;
  // §2.2: with LOCAL "the receiver must ... discard the protocol block
  // including the family (which is ignored)".
  if (h.command == ProxyCommand::kProxy && (family > 3 || transport > 2)) return Fail(ProxyHeaderError::kBadFamily);
  if (bytes.size() < kProxyV2FixedBytes + len) return {};
  h.header_bytes = kProxyV2FixedBytes + len;
  r.status = ProxyParseStatus::kDone;
  if (h.command == ProxyCommand::kLocal) return r;
  h.family = static_cast<ProxyFamily>(family);
  h.transport = static_cast<ProxyTransport>(transport);
  const size_t block = h.family == ProxyFamily::kInet    ? kInetBlock
                       : h.family == ProxyFamily::kInet6 ? kInet6Block
                       : h.family == ProxyFamily::kUnix  ? kUnixBlock
                                                         : 0;
  if (len < block) return Fail(ProxyHeaderError::kTruncated);
  const uint8_t* start = bytes.data() + kProxyV2FixedBytes;
  ReadAddresses(start, h);
  if (!ParseTlvs(start + block, start + len, h.tlvs, false)) return Fail(ProxyHeaderError::kBadTlv);
  for (const ProxyTlv& tlv : h.tlvs) {
    if (tlv.type != kPp2TypeCrc32c) continue;
    const auto header = bytes.first(h.header_bytes);
    if (!ChecksumMatches(header, tlv, Crc32cOffset(header, kProxyV2FixedBytes + block))) {
      return Fail(ProxyHeaderError::kBadChecksum);
    }
    break;
  }
  return r;
}

}  // namespace

std::string_view ToString(ProxyHeaderError error) {
  switch (error) {
#define MESHGATE_PROXY_ERROR_CASE(name, str) \
  case ProxyHeaderError::name:               \
    return str;
    MESHGATE_PROXY_HEADER_ERRORS(MESHGATE_PROXY_ERROR_CASE)
#undef MESHGATE_PROXY_ERROR_CASE
  }
  return "unknown";
}

SignatureMatch MatchProxySignature(std::span<const uint8_t> bytes) {
  const auto matches = [&](std::span<const uint8_t> signature) {
    const size_t n = std::min(bytes.size(), signature.size());
    if (n == 0 || std::memcmp(bytes.data(), signature.data(), n) != 0) return SignatureMatch::kNo;
    return n == signature.size() ? SignatureMatch::kYes : SignatureMatch::kPartial;
  };
  const auto v1 = std::span(reinterpret_cast<const uint8_t*>(kV1Signature.data()), kV1Signature.size());
  const SignatureMatch m1 = matches(v1);
  return m1 != SignatureMatch::kNo ? m1 : matches(kV2Signature);
}

// §2.3 ("the receiver ... must not try to guess"): the signature decides the
// version, and a header is always expected; the caller decides from whom.
ProxyParseResult ParseProxyHeader(std::span<const uint8_t> bytes, const ProxyParserOptions& options) {
  switch (MatchProxySignature(bytes)) {
    case SignatureMatch::kNo:
      return Fail(ProxyHeaderError::kBadSignature);
    case SignatureMatch::kPartial:
      return {};
    case SignatureMatch::kYes:
      break;
  }
  return bytes[0] == 'P' ? ParseV1(bytes) : ParseV2(bytes, options);
}

std::vector<uint8_t> EncodeProxyV2(const std::array<uint8_t, 16>& src_ip, uint16_t src_port,
                                   const std::array<uint8_t, 16>& dst_ip, uint16_t dst_port,
                                   const std::vector<ProxyTlv>& tlvs) {
  const bool v4 = IsMappedV4(src_ip) && IsMappedV4(dst_ip);
  size_t len = v4 ? kInetBlock : kInet6Block;
  for (const ProxyTlv& tlv : tlvs) len += 3 + std::min<size_t>(tlv.value.size(), 0xFFFF);
  std::vector<uint8_t> out(kV2Signature.begin(), kV2Signature.end());
  out.push_back(0x21);                // version 2, command PROXY
  out.push_back(v4 ? 0x11 : 0x21);    // AF_INET or AF_INET6, STREAM
  out.push_back(static_cast<uint8_t>(len >> 8));
  out.push_back(static_cast<uint8_t>(len));
  const auto put_ip = [&](const std::array<uint8_t, 16>& ip) {
    out.insert(out.end(), ip.begin() + (v4 ? 12 : 0), ip.end());
  };
  const auto put_u16 = [&](uint16_t v) {
    out.push_back(static_cast<uint8_t>(v >> 8));
    out.push_back(static_cast<uint8_t>(v));
  };
  put_ip(src_ip);
  put_ip(dst_ip);
  put_u16(src_port);
  put_u16(dst_port);
  for (const ProxyTlv& tlv : tlvs) {
    const size_t n = std::min<size_t>(tlv.value.size(), 0xFFFF);
    out.push_back(tlv.type);
    put_u16(static_cast<uint16_t>(n));
    out.insert(out.end(), tlv.value.begin(), tlv.value.begin() + static_cast<std::ptrdiff_t>(n));
  }
  return out;
}

uint32_t Crc32c(std::span<const uint8_t> bytes) {
  uint32_t crc = 0xFFFFFFFFu;
  for (uint8_t b : bytes) {
    crc ^= b;
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
  }
  return ~crc;
}

}  // namespace meshgate::sni
