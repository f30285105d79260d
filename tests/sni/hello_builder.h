// Test-side construction of TLS records and ClientHellos from named parts, so
// a malformed case reads as "this field is wrong" rather than as a hex blob.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sni/client_hello_parser.h"

namespace meshgate::sni::testing {

using Bytes = std::vector<uint8_t>;

inline constexpr uint8_t kHandshake = 0x16;
inline constexpr uint8_t kChangeCipherSpec = 0x14;
inline constexpr uint8_t kAlert = 0x15;
inline constexpr uint8_t kApplicationData = 0x17;
inline constexpr uint8_t kClientHelloType = 1;
inline constexpr uint16_t kExtServerName = 0;
inline constexpr uint16_t kExtAlpn = 16;
inline constexpr uint16_t kExtSupportedVersions = 43;

// Big-endian writer; Prefixed8/16 write a length then the bytes.
class ByteWriter {
 public:
  ByteWriter& U8(uint8_t v);
  ByteWriter& U16(uint16_t v);
  ByteWriter& U24(uint32_t v);
  ByteWriter& Raw(std::span<const uint8_t> bytes);
  ByteWriter& Str(std::string_view s);
  ByteWriter& Prefixed8(std::span<const uint8_t> bytes);
  ByteWriter& Prefixed16(std::span<const uint8_t> bytes);
  Bytes Take() { return std::move(bytes_); }

 private:
  Bytes bytes_;
};

Bytes ToBytes(std::string_view s);

// Extension bodies, well formed.
Bytes ServerNameBody(std::string_view host);
Bytes ServerNameListBody(const std::vector<std::pair<uint8_t, std::string>>& names);
Bytes AlpnBody(const std::vector<std::string>& protocols);
Bytes VersionsBody(const std::vector<uint16_t>& versions);

// A ClientHello body. Every section is well formed unless a raw_* override
// replaces it, length prefix included.
struct HelloBuilder {
  uint16_t legacy_version = 0x0303;
  Bytes random = Bytes(32, 0x42);
  Bytes session_id = Bytes(32, 0x5a);
  std::vector<uint16_t> cipher_suites = {0x1301, 0x1302, 0xc02f};
  Bytes compression = {0};
  std::vector<std::pair<uint16_t, Bytes>> extensions;
  bool omit_extensions = false;  // a pre-RFC 4366 hello ends after compression
  std::optional<Bytes> raw_session_id, raw_cipher_suites, raw_compression, raw_extensions;
  Bytes trailing;  // appended inside the message, after the extensions

  HelloBuilder& Sni(std::string_view host) { return Ext(kExtServerName, ServerNameBody(host)); }
  HelloBuilder& Alpn(const std::vector<std::string>& p) { return Ext(kExtAlpn, AlpnBody(p)); }
  HelloBuilder& Versions(const std::vector<uint16_t>& v) {
    return Ext(kExtSupportedVersions, VersionsBody(v));
  }
  HelloBuilder& Ext(uint16_t type, Bytes body) {
    extensions.emplace_back(type, std::move(body));
    return *this;
  }

  Bytes Body() const;
  Bytes Message() const;  // with the handshake header
};

// Handshake header + body; the length defaults to the body's.
Bytes HandshakeMessage(uint8_t type, std::span<const uint8_t> body,
                       std::optional<uint32_t> length = std::nullopt);
// One record, length field taken from the payload unless given.
Bytes Record(uint8_t content_type, std::span<const uint8_t> payload, uint16_t version = 0x0301,
             std::optional<uint16_t> length = std::nullopt);
// Splits a handshake stream into handshake records of at most `fragment` bytes.
Bytes Records(std::span<const uint8_t> handshake, size_t fragment = 16384,
              uint16_t version = 0x0301);
// Concatenated payloads of a well-formed record stream (for re-fragmenting).
Bytes RecordPayloads(std::span<const uint8_t> records);
Bytes Concat(std::initializer_list<std::span<const uint8_t>> parts);

// The real captures in tests/data/clienthellos.
std::string TestDataPath(std::string_view relative);
Bytes ReadFileBytes(const std::string& path);

// Drives one parser over `bytes` in chunks of `chunk` bytes (the last may be
// shorter), as a socket would deliver them.
ParseResult FeedInChunks(std::span<const uint8_t> bytes, size_t chunk, ParserOptions options = {});
// Same verdict, reason, and (for a hello) the same fields.
bool SameOutcome(const ParseResult& a, const ParseResult& b);
std::string Describe(const ParseResult& r);

// A parameter's name for INSTANTIATE_TEST_SUITE_P: `text` with every
// character outside [A-Za-z0-9_] made '_', as gtest requires.
std::string ParamName(std::string_view text);
// A capture's test name: its file name without the extension.
std::string CaptureName(std::string_view file);

}  // namespace meshgate::sni::testing
