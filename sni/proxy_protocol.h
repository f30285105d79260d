// The PROXY protocol (HAProxy's proxy-protocol.txt, version 2.8 of the
// document): a pure parser for the v1 (text) and v2 (binary) headers a load
// balancer puts before the client's bytes, and a v2 encoder for the header
// meshgate sends to backends. No I/O: bytes in, verdict out.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace meshgate::sni {

// Why a header was refused. Every one is a counted reason
// (meshgate_connections_refused_total{reason="proxy_protocol_<name>"}).
#define MESHGATE_PROXY_HEADER_ERRORS(X)                                              \
  X(kBadSignature, "bad_signature")   /* neither "PROXY " nor the v2 signature */    \
  X(kBadVersion, "bad_version")       /* v2: version nibble other than 2 */          \
  X(kBadCommand, "bad_command")       /* v2: command other than LOCAL or PROXY */    \
  X(kBadFamily, "bad_family")         /* v2 family/transport, v1 protocol word */    \
  X(kTruncated, "truncated")          /* v2: length shorter than the addresses */    \
  X(kOversized, "oversized")          /* v1 over 107 bytes, v2 over the cap */       \
  X(kBadV1Field, "bad_v1_field")      /* v1: address, port, spacing or CRLF */       \
  X(kBadTlv, "bad_tlv")               /* v2: a TLV overruns its block */             \
  X(kBadChecksum, "bad_checksum")     /* v2: PP2_TYPE_CRC32C does not match */

enum class ProxyHeaderError : uint8_t {
#define MESHGATE_PROXY_ERROR_ENUM(name, str) name,
  MESHGATE_PROXY_HEADER_ERRORS(MESHGATE_PROXY_ERROR_ENUM)
#undef MESHGATE_PROXY_ERROR_ENUM
};
#define MESHGATE_PROXY_ERROR_COUNT(name, str) +1
inline constexpr size_t kProxyHeaderErrorCount = 0 MESHGATE_PROXY_HEADER_ERRORS(MESHGATE_PROXY_ERROR_COUNT);
#undef MESHGATE_PROXY_ERROR_COUNT
std::string_view ToString(ProxyHeaderError error);

// proxy-protocol.txt §2.2, the 13th and 14th bytes.
enum class ProxyCommand : uint8_t { kLocal = 0, kProxy = 1 };
enum class ProxyFamily : uint8_t { kUnspec = 0, kInet = 1, kInet6 = 2, kUnix = 3 };
enum class ProxyTransport : uint8_t { kUnspec = 0, kStream = 1, kDgram = 2 };

// §2.2.1-2.2.7: the registered TLV types.
inline constexpr uint8_t kPp2TypeAlpn = 0x01;
inline constexpr uint8_t kPp2TypeAuthority = 0x02;
inline constexpr uint8_t kPp2TypeCrc32c = 0x03;
inline constexpr uint8_t kPp2TypeNoop = 0x04;
inline constexpr uint8_t kPp2TypeUniqueId = 0x05;
inline constexpr uint8_t kPp2TypeSsl = 0x20;
inline constexpr uint8_t kPp2TypeNetns = 0x30;

struct ProxyTlv {
  uint8_t type = 0;
  std::string value;
  // PP2_TYPE_SSL (§2.2.5): its client and verify fields stay in `value`'s
  // first 5 bytes; its sub-TLVs are parsed into `sub`.
  std::vector<ProxyTlv> sub;
};

struct ProxyHeader {
  int version = 0;  // 1 or 2
  ProxyCommand command = ProxyCommand::kProxy;
  ProxyFamily family = ProxyFamily::kUnspec;
  ProxyTransport transport = ProxyTransport::kUnspec;
  // kInet and kInet6: IPv6 bytes, IPv4 as IPv4-mapped IPv6 (::ffff:a.b.c.d).
  std::array<uint8_t, 16> src_ip{}, dst_ip{};
  uint16_t src_port = 0, dst_port = 0;
  std::string src_unix, dst_unix;  // kUnix: the paths, up to their first NUL
  std::vector<ProxyTlv> tlvs;      // v2 only, in wire order
  size_t header_bytes = 0;         // what the header took; the client's bytes follow
  // Whether the header carries an IP source meshgate should use in place of
  // the peer: a PROXY command with an INET or INET6 address (v1 TCP4/TCP6).
  // LOCAL, UNKNOWN, UNSPEC and AF_UNIX keep the real peer (§2.1, §2.2).
  bool carries_ip_source() const {
    return command == ProxyCommand::kProxy && (family == ProxyFamily::kInet || family == ProxyFamily::kInet6);
  }
};

enum class ProxyParseStatus : uint8_t { kNeedMoreData, kDone, kError };

struct ProxyParseResult {
  ProxyParseStatus status = ProxyParseStatus::kNeedMoreData;
  ProxyHeaderError error = ProxyHeaderError::kBadSignature;  // kError
  ProxyHeader header;                                        // kDone
};

// §2.1: "a receiver ... can read up to 107 bytes", CRLF included.
inline constexpr size_t kProxyV1MaxBytes = 107;
// §2.2: the 16-byte fixed part of a v2 header; the 2-byte length may add up to
// 65535 more. meshgate caps the whole header at this by default: the biggest
// address block is 216 bytes (AF_UNIX), and the TLVs senders use (AWS and
// GCP endpoint ids, ALPN, authority, unique id up to 128 bytes) fit well.
inline constexpr size_t kProxyV2FixedBytes = 16;
inline constexpr size_t kProxyV2DefaultMaxBytes = 4096;

struct ProxyParserOptions {
  size_t max_v2_bytes = kProxyV2DefaultMaxBytes;  // whole header, fixed part included
};

// Parses the header at the start of `bytes` (everything read so far).
// kNeedMoreData until a whole header is there; the cost of a call before then
// is O(1) for v2 and O(107) for v1, so calling it again on each read is cheap.
ProxyParseResult ParseProxyHeader(std::span<const uint8_t> bytes, const ProxyParserOptions& options = {});

enum class SignatureMatch : uint8_t { kNo, kPartial, kYes };
// Whether `bytes` start with a v1 ("PROXY ") or v2 signature: kPartial while
// what is there is a prefix of one. For refusing a header from an untrusted
// source by name rather than as "not TLS".
SignatureMatch MatchProxySignature(std::span<const uint8_t> bytes);

// A v2 PROXY header (command PROXY, transport STREAM) from `src` to `dst`:
// both IPv4-mapped gives AF_INET, otherwise AF_INET6. `tlvs` are appended as
// they are (type, 2-byte length, value). §2.2.
std::vector<uint8_t> EncodeProxyV2(const std::array<uint8_t, 16>& src_ip, uint16_t src_port,
                                   const std::array<uint8_t, 16>& dst_ip, uint16_t dst_port,
                                   const std::vector<ProxyTlv>& tlvs = {});

// CRC32c (Castagnoli), as PP2_TYPE_CRC32C uses (§2.2.3, RFC 3720 B.4).
uint32_t Crc32c(std::span<const uint8_t> bytes);

}  // namespace meshgate::sni
