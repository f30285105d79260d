// Incremental TLS ClientHello parser: bytes in, verdict out, no I/O.
// The gateway feeds it whatever arrived; it never needs the bytes again.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace meshgate::sni {

enum class ParseStatus : uint8_t {
  kNeedMoreData,  // feed more bytes
  kClientHello,   // hello() is complete and valid
  kRejected,      // reason() says why; the connection is not TLS we accept
};

// Every rejection has a name of its own. Keep ToString() and the
// MESHGATE_SNI_REJECT_REASONS list in one place so counters can follow it.
#define MESHGATE_SNI_REJECT_REASONS(X)                                          \
  X(kPlainHttp, "plain_http")                   /* "GET /", "POST " ... */     \
  X(kSslV2, "sslv2_hello")                      /* SSLv2-compatible hello */   \
  X(kNotTls, "not_tls")                         /* first byte is no record */  \
  X(kNotHandshakeRecord, "not_handshake")       /* alert, app data, ... */     \
  X(kBadRecordVersion, "bad_record_version")    /* record version not 3.x */   \
  X(kBadRecordLength, "bad_record_length")      /* 0 or > 2^14 */              \
  X(kNotClientHello, "not_client_hello")        /* other handshake type */     \
  X(kBadHandshakeLength, "bad_handshake_length")                               \
  X(kBadLegacyVersion, "bad_legacy_version")                                   \
  X(kBadSessionId, "bad_session_id")                                           \
  X(kBadCipherSuites, "bad_cipher_suites")                                     \
  X(kBadCompression, "bad_compression")                                        \
  X(kBadExtensions, "bad_extensions")           /* block or one ext length */  \
  X(kDuplicateExtension, "duplicate_extension")                                \
  X(kBadServerNameList, "bad_server_name_list")                                \
  X(kBadHostName, "bad_host_name")              /* length or characters */     \
  X(kBadAlpn, "bad_alpn")                                                      \
  X(kBadSupportedVersions, "bad_supported_versions")                           \
  X(kTrailingData, "trailing_handshake_data")   /* hello shorter than header */\
  X(kTooLarge, "too_large")                     /* over max_hello_bytes */

enum class RejectReason : uint8_t {
  kNone,
#define MESHGATE_SNI_ENUM(name, str) name,
  MESHGATE_SNI_REJECT_REASONS(MESHGATE_SNI_ENUM)
#undef MESHGATE_SNI_ENUM
};
inline constexpr size_t kRejectReasonCount = static_cast<size_t>(RejectReason::kTooLarge) + 1;

// Stable snake_case name, used in logs and metric labels.
std::string_view ToString(RejectReason reason);

struct ClientHello {
  bool has_server_name = false;
  // Lowercased host_name, empty when absent. Only [A-Za-z0-9-_] labels of
  // 1..63 bytes joined by dots are accepted; a trailing dot is rejected, as
  // RFC 6066 §3 forbids it, so one host has one spelling.
  std::string server_name;
  std::vector<std::string> alpn;      // protocol names in the client's order
  uint16_t legacy_version = 0;        // ClientHello.legacy_version (0x0303 for 1.2/1.3)
  // supported_versions as offered (GREASE values kept), else {legacy_version}.
  std::vector<uint16_t> versions;
  size_t bytes_consumed = 0;          // record bytes up to and including the hello's last record
};

struct ParserOptions {
  // Cap on all record bytes (headers included) the hello may take.
  size_t max_hello_bytes = 16 * 1024;
};

// Usage: construct, call Feed() with each chunk as it arrives until the status
// is not kNeedMoreData. Feeding after a final verdict returns that verdict.
// Reassembles a hello spread over several records (RFC 8446 §5.1) and copes
// with chunks of any size, down to one byte. Total work is linear in input.
class ClientHelloParser {
 public:
  explicit ClientHelloParser(ParserOptions options = {});

  ParseStatus Feed(std::span<const uint8_t> chunk);
  ParseStatus status() const { return status_; }
  RejectReason reason() const { return reason_; }
  const ClientHello& hello() const { return hello_; }

  // Forget everything, keeping options; lets a session reuse one parser.
  void Reset();
  // Frees the buffer the hello's message was reassembled in; hello() stays.
  // For a caller that keeps the parser (for hello()) long after the parse,
  // e.g. a relaying session, so it does not hold a copy of the hello's bytes.
  void ReleaseBuffer() { std::vector<uint8_t>().swap(handshake_); }

 private:
  ParseStatus Reject(RejectReason reason);
  ParseStatus ParseHandshake();
  void OnRecordHeaderByte();
  void ClassifyFirstBytes();
  void OnRecordHeader();
  void OnHandshakeBytes();
  void OnHandshakeHeader();
  size_t MessageBytesWanted() const;
  bool CannotFitCap() const;

  ParserOptions options_;
  ParseStatus status_ = ParseStatus::kNeedMoreData;
  RejectReason reason_ = RejectReason::kNone;
  ClientHello hello_;

  size_t total_seen_ = 0;         // record bytes consumed so far
  uint8_t header_[5] = {};        // current record header, possibly partial
  size_t header_have_ = 0;
  size_t record_left_ = 0;        // payload bytes still to come in this record
  std::vector<uint8_t> handshake_;  // reassembled handshake message bytes
  size_t message_size_ = 0;       // 4 + handshake length once its header is in, else 0
};

// One-shot convenience for tests and tools: parse a complete byte string.
struct ParseResult {
  ParseStatus status;
  RejectReason reason;
  ClientHello hello;
};
ParseResult ParseClientHello(std::span<const uint8_t> bytes, ParserOptions options = {});

}  // namespace meshgate::sni
