// Incremental ClientHello parser. Three layers, each walking a bounds-checked
// reader: records (reassembly, caps), the handshake message, its extensions.
#include "sni/client_hello_parser.h"

#include <algorithm>
#include <array>
#include <string_view>

namespace meshgate::sni {
namespace {

constexpr size_t kRecordHeaderSize = 5;
constexpr size_t kMaxRecordPayload = size_t{1} << 14;  // RFC 8446 §5.1
constexpr size_t kHandshakeHeaderSize = 4;
constexpr uint8_t kContentHandshake = 0x16;
constexpr uint8_t kHandshakeClientHello = 1;
constexpr uint8_t kSslV2ClientHello = 1;
// legacy_version, random, and the shortest session id, suites and compression.
constexpr size_t kMinHelloBody = 2 + 32 + 1 + 2 + 2 + 1 + 1;
// Real hellos are 200-600 bytes; one reservation covers them.
constexpr size_t kInitialReserve = 640;
// The declared length is only trusted this far for reserving, so nine bytes
// from a peer cannot make us hold a cap's worth of memory.
constexpr size_t kMaxUpfrontReserve = 4096;

constexpr uint16_t kExtServerName = 0;
constexpr uint16_t kExtAlpn = 16;
constexpr uint16_t kExtSupportedVersions = 43;
constexpr uint8_t kNameTypeHostName = 0;
constexpr size_t kMaxHostName = 255;
constexpr size_t kMaxLabel = 63;

// Cursor over untrusted bytes. Every read checks first and returns false on
// underrun, leaving the cursor where it was.
class Reader {
 public:
  explicit Reader(std::span<const uint8_t> bytes) : bytes_(bytes) {}

  bool empty() const { return bytes_.empty(); }

  bool readU8(uint8_t& out) {
    if (bytes_.empty()) return false;
    out = bytes_[0];
    bytes_ = bytes_.subspan(1);
    return true;
  }
  bool readU16(uint16_t& out) {
    uint32_t value = 0;
    if (!readBigEndian(2, value)) return false;
    out = static_cast<uint16_t>(value);
    return true;
  }
  bool readU24(uint32_t& out) { return readBigEndian(3, out); }
  bool readBytes(size_t n, std::span<const uint8_t>& out) {
    if (bytes_.size() < n) return false;
    out = bytes_.first(n);
    bytes_ = bytes_.subspan(n);
    return true;
  }
  bool skip(size_t n) {
    std::span<const uint8_t> ignored;
    return readBytes(n, ignored);
  }
  // A vector<..> of the TLS presentation language: a 1- or 2-byte length, then
  // that many bytes.
  bool readLengthPrefixed(size_t prefix_bytes, std::span<const uint8_t>& out) {
    Reader probe = *this;
    uint32_t length = 0;
    if (!probe.readBigEndian(prefix_bytes, length) || !probe.readBytes(length, out)) return false;
    *this = probe;
    return true;
  }

 private:
  bool readBigEndian(size_t n, uint32_t& out) {
    if (bytes_.size() < n) return false;
    uint32_t value = 0;
    for (size_t i = 0; i < n; ++i) value = (value << 8) | bytes_[i];
    bytes_ = bytes_.subspan(n);
    out = value;
    return true;
  }

  std::span<const uint8_t> bytes_;
};

bool IsTlsContentType(uint8_t byte) {
  // change_cipher_spec, alert, handshake, application_data, heartbeat.
  return byte >= 0x14 && byte <= 0x18;
}

enum class HttpMatch { kNo, kMaybe, kYes };

// Four bytes name every method we look for, so "G" alone is only kMaybe.
HttpMatch MatchHttpMethod(std::span<const uint8_t> seen) {
  static constexpr std::string_view kStarts[] = {"GET ", "POST", "PUT ", "HEAD", "DELE",
                                                 "OPTI", "CONN", "PATC", "PRI "};
  for (std::string_view start : kStarts) {
    if (seen.size() <= start.size() && std::equal(seen.begin(), seen.end(), start.begin())) {
      return seen.size() == start.size() ? HttpMatch::kYes : HttpMatch::kMaybe;
    }
  }
  return HttpMatch::kNo;
}

bool IsLabelChar(uint8_t c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_';  // '_' appears in Istio names: outbound_.8000_._.svc
}

// RFC 6066 §3: an ASCII host name "without a trailing dot". We reject the
// trailing dot rather than strip it, so one host has one spelling in routes.
RejectReason StoreHostName(std::span<const uint8_t> name, std::string& out) {
  if (name.empty() || name.size() > kMaxHostName) return RejectReason::kBadHostName;
  size_t label = 0;
  for (uint8_t c : name) {
    if (c == '.') {
      if (label == 0) return RejectReason::kBadHostName;
      label = 0;
    } else if (!IsLabelChar(c) || ++label > kMaxLabel) {
      return RejectReason::kBadHostName;
    }
  }
  if (label == 0) return RejectReason::kBadHostName;
  out.resize(name.size());
  std::transform(name.begin(), name.end(), out.begin(), [](uint8_t c) {
    return static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  });
  return RejectReason::kNone;
}

// RFC 6066 §3: a non-empty list of (name_type, name); at most one host_name.
RejectReason ParseServerName(std::span<const uint8_t> body, ClientHello& hello) {
  Reader ext(body);
  std::span<const uint8_t> list;
  if (!ext.readLengthPrefixed(2, list) || !ext.empty() || list.empty()) {
    return RejectReason::kBadServerNameList;
  }
  for (Reader names(list); !names.empty();) {
    uint8_t type = 0;
    std::span<const uint8_t> name;
    if (!names.readU8(type) || !names.readLengthPrefixed(2, name)) {
      return RejectReason::kBadServerNameList;
    }
    if (type != kNameTypeHostName) continue;
    if (hello.has_server_name) return RejectReason::kBadServerNameList;
    if (RejectReason r = StoreHostName(name, hello.server_name); r != RejectReason::kNone) return r;
    hello.has_server_name = true;
  }
  return RejectReason::kNone;
}

// RFC 7301 §3.1: ProtocolName protocol_name_list<2..2^16-1>, each <1..2^8-1>.
RejectReason ParseAlpn(std::span<const uint8_t> body, ClientHello& hello) {
  Reader ext(body);
  std::span<const uint8_t> list;
  if (!ext.readLengthPrefixed(2, list) || !ext.empty() || list.empty()) return RejectReason::kBadAlpn;
  for (Reader names(list); !names.empty();) {
    std::span<const uint8_t> name;
    if (!names.readLengthPrefixed(1, name) || name.empty()) return RejectReason::kBadAlpn;
    hello.alpn.emplace_back(name.begin(), name.end());
  }
  return RejectReason::kNone;
}

// RFC 8446 §4.2.1: ProtocolVersion versions<2..254>. GREASE values are kept:
// the list is reported as offered.
RejectReason ParseSupportedVersions(std::span<const uint8_t> body, ClientHello& hello) {
  Reader ext(body);
  std::span<const uint8_t> list;
  if (!ext.readLengthPrefixed(1, list) || !ext.empty() || list.size() < 2 || list.size() % 2 != 0) {
    return RejectReason::kBadSupportedVersions;
  }
  hello.versions.clear();
  for (Reader versions(list); !versions.empty();) {
    uint16_t version = 0;
    versions.readU16(version);  // cannot fail: the list length is even
    hello.versions.push_back(version);
  }
  return RejectReason::kNone;
}

// RFC 8446 §4.2: "There MUST NOT be more than one extension of the same type."
// Sorting keeps this O(n log n) in the extension count; ~20 fit on the stack.
bool HasDuplicateType(Reader extensions, size_t count) {
  std::array<uint16_t, 64> small;
  std::vector<uint16_t> large;
  std::span<uint16_t> types(small.data(), std::min(count, small.size()));
  if (count > small.size()) {
    large.resize(count);
    types = large;
  }
  for (uint16_t& type : types) {
    std::span<const uint8_t> body;
    extensions.readU16(type);  // framing was checked by the caller
    extensions.readLengthPrefixed(2, body);
  }
  std::sort(types.begin(), types.end());
  return std::adjacent_find(types.begin(), types.end()) != types.end();
}

RejectReason ParseExtensions(std::span<const uint8_t> block, ClientHello& hello) {
  size_t count = 0;
  for (Reader framing(block); !framing.empty(); ++count) {
    uint16_t type = 0;
    std::span<const uint8_t> body;
    if (!framing.readU16(type) || !framing.readLengthPrefixed(2, body)) {
      return RejectReason::kBadExtensions;
    }
  }
  if (HasDuplicateType(Reader(block), count)) return RejectReason::kDuplicateExtension;

  for (Reader extensions(block); !extensions.empty();) {
    uint16_t type = 0;
    std::span<const uint8_t> body;
    extensions.readU16(type);
    extensions.readLengthPrefixed(2, body);
    RejectReason reason = RejectReason::kNone;
    switch (type) {
      case kExtServerName: reason = ParseServerName(body, hello); break;
      case kExtAlpn: reason = ParseAlpn(body, hello); break;
      case kExtSupportedVersions: reason = ParseSupportedVersions(body, hello); break;
      default: break;
    }
    if (reason != RejectReason::kNone) return reason;
  }
  return RejectReason::kNone;
}

// RFC 8446 §4.1.2 / RFC 5246 §7.4.1.2, from legacy_version to the extensions.
RejectReason ParseHelloBody(std::span<const uint8_t> body, ClientHello& hello) {
  Reader r(body);
  // Cannot fail once OnHandshakeHeader() has enforced kMinHelloBody; kept so
  // this function is safe on any input.
  if (!r.readU16(hello.legacy_version) || !r.skip(32)) return RejectReason::kBadHandshakeLength;
  if (hello.legacy_version >> 8 != 3) return RejectReason::kBadLegacyVersion;
  hello.versions.assign(1, hello.legacy_version);  // until supported_versions says otherwise

  std::span<const uint8_t> session_id, suites, compression, extensions;
  if (!r.readLengthPrefixed(1, session_id) || session_id.size() > 32) {
    return RejectReason::kBadSessionId;
  }
  if (!r.readLengthPrefixed(2, suites) || suites.size() < 2 || suites.size() % 2 != 0) {
    return RejectReason::kBadCipherSuites;
  }
  if (!r.readLengthPrefixed(1, compression) || compression.empty()) {
    return RejectReason::kBadCompression;
  }
  if (r.empty()) return RejectReason::kNone;  // a pre-extensions hello is still valid
  if (!r.readLengthPrefixed(2, extensions)) return RejectReason::kBadExtensions;
  if (!r.empty()) return RejectReason::kTrailingData;
  return ParseExtensions(extensions, hello);
}

}  // namespace

std::string_view ToString(RejectReason reason) {
  switch (reason) {
    case RejectReason::kNone: return "none";
#define MESHGATE_SNI_CASE(name, str) \
  case RejectReason::name: return str;
      MESHGATE_SNI_REJECT_REASONS(MESHGATE_SNI_CASE)
#undef MESHGATE_SNI_CASE
  }
  return "unknown";
}

ClientHelloParser::ClientHelloParser(ParserOptions options) : options_(options) {}

void ClientHelloParser::Reset() {
  status_ = ParseStatus::kNeedMoreData;
  reason_ = RejectReason::kNone;
  hello_ = ClientHello{};
  total_seen_ = 0;
  header_have_ = 0;
  record_left_ = 0;
  handshake_.clear();  // keeps its capacity for the next hello
  message_size_ = 0;
}

ParseStatus ClientHelloParser::Feed(std::span<const uint8_t> chunk) {
  while (status_ == ParseStatus::kNeedMoreData && !chunk.empty()) {
    if (header_have_ < kRecordHeaderSize) {
      header_[header_have_++] = chunk.front();
      ++total_seen_;
      chunk = chunk.subspan(1);
      OnRecordHeaderByte();
      continue;
    }
    const size_t n = std::min({chunk.size(), record_left_, MessageBytesWanted()});
    if (handshake_.capacity() == 0) {
      handshake_.reserve(std::min(kInitialReserve, options_.max_hello_bytes));
    }
    handshake_.insert(handshake_.end(), chunk.begin(), chunk.begin() + n);
    chunk = chunk.subspan(n);
    total_seen_ += n;
    record_left_ -= n;
    OnHandshakeBytes();
    if (status_ == ParseStatus::kNeedMoreData && record_left_ == 0) header_have_ = 0;
  }
  return status_;
}

ParseStatus ClientHelloParser::Reject(RejectReason reason) {
  status_ = ParseStatus::kRejected;
  reason_ = reason;
  hello_ = ClientHello{};
  return status_;
}

// Each header byte is judged as it arrives, so garbage is refused after the
// fewest bytes that prove it.
void ClientHelloParser::OnRecordHeaderByte() {
  const bool first_record = total_seen_ == header_have_;
  if (first_record && header_[0] != kContentHandshake) {
    ClassifyFirstBytes();
    return;
  }
  switch (header_have_) {
    case 1:
      if (header_[0] != kContentHandshake) {
        Reject(IsTlsContentType(header_[0]) ? RejectReason::kNotHandshakeRecord : RejectReason::kNotTls);
      }
      return;
    case 2:
      if (header_[1] != 3) Reject(RejectReason::kBadRecordVersion);
      return;
    case 3:
      if (header_[2] > 4) Reject(RejectReason::kBadRecordVersion);
      return;
    case kRecordHeaderSize:
      OnRecordHeader();
      return;
    default:
      return;
  }
}

// The stream does not start with a handshake record: say what it is instead.
// Every branch decides by the fourth byte.
void ClientHelloParser::ClassifyFirstBytes() {
  const uint8_t first = header_[0];
  if (IsTlsContentType(first)) {
    Reject(RejectReason::kNotHandshakeRecord);
  } else if (first & 0x80) {
    // SSLv2 record: 2-byte length with the high bit set, then msg_type.
    if (header_have_ >= 3) {
      Reject(header_[2] == kSslV2ClientHello ? RejectReason::kSslV2 : RejectReason::kNotTls);
    }
  } else {
    switch (MatchHttpMethod({header_, header_have_})) {
      case HttpMatch::kNo: Reject(RejectReason::kNotTls); break;
      case HttpMatch::kYes: Reject(RejectReason::kPlainHttp); break;
      case HttpMatch::kMaybe: break;
    }
  }
}

void ClientHelloParser::OnRecordHeader() {
  Reader header({header_, kRecordHeaderSize});
  uint8_t type = 0;
  uint16_t version = 0, length = 0;
  header.readU8(type);
  header.readU16(version);
  header.readU16(length);
  if (length == 0 || length > kMaxRecordPayload) {
    Reject(RejectReason::kBadRecordLength);
    return;
  }
  record_left_ = length;
  if (CannotFitCap()) Reject(RejectReason::kTooLarge);
}

size_t ClientHelloParser::MessageBytesWanted() const {
  return (message_size_ != 0 ? message_size_ : kHandshakeHeaderSize) - handshake_.size();
}

// The fewest record bytes the hello can still take: this record to its end,
// plus the rest of the message in full records, each with its header.
bool ClientHelloParser::CannotFitCap() const {
  const size_t through_record = total_seen_ + record_left_;
  size_t beyond = 0;
  if (message_size_ != 0) {
    const size_t missing = message_size_ - handshake_.size();
    beyond = missing > record_left_ ? missing - record_left_ : 0;
  }
  const size_t headers = (beyond + kMaxRecordPayload - 1) / kMaxRecordPayload * kRecordHeaderSize;
  return through_record + beyond + headers > options_.max_hello_bytes;
}

void ClientHelloParser::OnHandshakeBytes() {
  if (message_size_ == 0) {
    if (handshake_[0] != kHandshakeClientHello) {
      Reject(RejectReason::kNotClientHello);
      return;
    }
    if (handshake_.size() < kHandshakeHeaderSize) return;
    OnHandshakeHeader();
    if (status_ != ParseStatus::kNeedMoreData) return;
  }
  if (handshake_.size() == message_size_) ParseHandshake();
}

void ClientHelloParser::OnHandshakeHeader() {
  Reader header(handshake_);
  uint8_t type = 0;
  uint32_t length = 0;
  header.readU8(type);
  header.readU24(length);
  if (length < kMinHelloBody) {
    Reject(RejectReason::kBadHandshakeLength);
    return;
  }
  message_size_ = kHandshakeHeaderSize + length;
  if (CannotFitCap()) {
    Reject(RejectReason::kTooLarge);
    return;
  }
  handshake_.reserve(std::min(message_size_, kMaxUpfrontReserve));
}

ParseStatus ClientHelloParser::ParseHandshake() {
  const auto body = std::span<const uint8_t>(handshake_).subspan(kHandshakeHeaderSize);
  const RejectReason reason = ParseHelloBody(body, hello_);
  if (reason != RejectReason::kNone) return Reject(reason);
  // Bytes after the hello in its last record (a further message) are not ours
  // to judge, but they belong to a record the hello used.
  hello_.bytes_consumed = total_seen_ + record_left_;
  status_ = ParseStatus::kClientHello;
  return status_;
}

ParseResult ParseClientHello(std::span<const uint8_t> bytes, ParserOptions options) {
  ClientHelloParser parser(options);
  parser.Feed(bytes);
  return ParseResult{parser.status(), parser.reason(), parser.hello()};
}

}  // namespace meshgate::sni
