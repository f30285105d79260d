#include "tests/sni/hello_builder.h"

#include <cctype>
#include <fstream>
#include <iterator>
#include <stdexcept>

namespace meshgate::sni::testing {

ByteWriter& ByteWriter::U8(uint8_t v) {
  bytes_.push_back(v);
  return *this;
}
ByteWriter& ByteWriter::U16(uint16_t v) { return U8(v >> 8).U8(v & 0xff); }
ByteWriter& ByteWriter::U24(uint32_t v) { return U8((v >> 16) & 0xff).U16(v & 0xffff); }
ByteWriter& ByteWriter::Raw(std::span<const uint8_t> bytes) {
  bytes_.insert(bytes_.end(), bytes.begin(), bytes.end());
  return *this;
}
ByteWriter& ByteWriter::Str(std::string_view s) { return Raw(ToBytes(s)); }
ByteWriter& ByteWriter::Prefixed8(std::span<const uint8_t> bytes) {
  return U8(static_cast<uint8_t>(bytes.size())).Raw(bytes);
}
ByteWriter& ByteWriter::Prefixed16(std::span<const uint8_t> bytes) {
  return U16(static_cast<uint16_t>(bytes.size())).Raw(bytes);
}

Bytes ToBytes(std::string_view s) { return Bytes(s.begin(), s.end()); }

Bytes ServerNameBody(std::string_view host) { return ServerNameListBody({{0, std::string(host)}}); }

Bytes ServerNameListBody(const std::vector<std::pair<uint8_t, std::string>>& names) {
  ByteWriter list;
  for (const auto& [type, name] : names) list.U8(type).Prefixed16(ToBytes(name));
  return ByteWriter().Prefixed16(list.Take()).Take();
}

Bytes AlpnBody(const std::vector<std::string>& protocols) {
  ByteWriter list;
  for (const auto& p : protocols) list.Prefixed8(ToBytes(p));
  return ByteWriter().Prefixed16(list.Take()).Take();
}

Bytes VersionsBody(const std::vector<uint16_t>& versions) {
  ByteWriter list;
  for (uint16_t v : versions) list.U16(v);
  return ByteWriter().Prefixed8(list.Take()).Take();
}

Bytes HelloBuilder::Body() const {
  ByteWriter w;
  w.U16(legacy_version).Raw(random);
  if (raw_session_id) w.Raw(*raw_session_id); else w.Prefixed8(session_id);
  if (raw_cipher_suites) {
    w.Raw(*raw_cipher_suites);
  } else {
    ByteWriter suites;
    for (uint16_t s : cipher_suites) suites.U16(s);
    w.Prefixed16(suites.Take());
  }
  if (raw_compression) w.Raw(*raw_compression); else w.Prefixed8(compression);
  if (raw_extensions) {
    w.Raw(*raw_extensions);
  } else if (!omit_extensions) {
    ByteWriter block;
    for (const auto& [type, body] : extensions) block.U16(type).Prefixed16(body);
    w.Prefixed16(block.Take());
  }
  return w.Raw(trailing).Take();
}

Bytes HelloBuilder::Message() const { return HandshakeMessage(kClientHelloType, Body()); }

Bytes HandshakeMessage(uint8_t type, std::span<const uint8_t> body, std::optional<uint32_t> length) {
  return ByteWriter().U8(type).U24(length.value_or(body.size())).Raw(body).Take();
}

Bytes Record(uint8_t content_type, std::span<const uint8_t> payload, uint16_t version,
             std::optional<uint16_t> length) {
  return ByteWriter()
      .U8(content_type)
      .U16(version)
      .U16(length.value_or(static_cast<uint16_t>(payload.size())))
      .Raw(payload)
      .Take();
}

Bytes Records(std::span<const uint8_t> handshake, size_t fragment, uint16_t version) {
  Bytes out;
  for (size_t at = 0; at < handshake.size(); at += fragment) {
    const auto part = handshake.subspan(at, std::min(fragment, handshake.size() - at));
    const Bytes record = Record(kHandshake, part, version);
    out.insert(out.end(), record.begin(), record.end());
  }
  return out;
}

Bytes RecordPayloads(std::span<const uint8_t> records) {
  Bytes out;
  size_t at = 0;
  while (at + 5 <= records.size()) {
    const size_t length = (size_t{records[at + 3]} << 8) | records[at + 4];
    if (at + 5 + length > records.size()) throw std::runtime_error("truncated record");
    out.insert(out.end(), records.begin() + at + 5, records.begin() + at + 5 + length);
    at += 5 + length;
  }
  if (at != records.size()) throw std::runtime_error("trailing bytes after records");
  return out;
}

Bytes Concat(std::initializer_list<std::span<const uint8_t>> parts) {
  Bytes out;
  for (auto part : parts) out.insert(out.end(), part.begin(), part.end());
  return out;
}

std::string TestDataPath(std::string_view relative) {
  return std::string(MESHGATE_TESTDATA) + "/" + std::string(relative);
}

Bytes ReadFileBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path);
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

ParseResult FeedInChunks(std::span<const uint8_t> bytes, size_t chunk, ParserOptions options) {
  ClientHelloParser parser(options);
  for (size_t at = 0; at < bytes.size(); at += chunk) {
    parser.Feed(bytes.subspan(at, std::min(chunk, bytes.size() - at)));
  }
  return ParseResult{parser.status(), parser.reason(), parser.hello()};
}

bool SameOutcome(const ParseResult& a, const ParseResult& b) {
  const ClientHello &x = a.hello, &y = b.hello;
  return a.status == b.status && a.reason == b.reason && x.has_server_name == y.has_server_name &&
         x.server_name == y.server_name && x.alpn == y.alpn && x.legacy_version == y.legacy_version &&
         x.versions == y.versions && x.bytes_consumed == y.bytes_consumed;
}

std::string ParamName(std::string_view text) {
  std::string name(text);
  for (char& c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return name.empty() ? "_" : name;
}

std::string CaptureName(std::string_view file) { return ParamName(file.substr(0, file.find('.'))); }

std::string Describe(const ParseResult& r) {
  std::string out = r.status == ParseStatus::kNeedMoreData ? "need_more_data"
                    : r.status == ParseStatus::kClientHello ? "client_hello"
                                                              : "rejected";
  out += "/" + std::string(ToString(r.reason));
  if (r.status == ParseStatus::kClientHello) {
    out += " sni=" + r.hello.server_name + " consumed=" + std::to_string(r.hello.bytes_consumed);
  }
  return out;
}

}  // namespace meshgate::sni::testing
