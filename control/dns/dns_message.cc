// The query parser is a cursor with a bounds check before every read
// (Reader), one function per part: header, question name, question, OPT.
// The response writer emits exactly one kind of compression: pointers into
// the question, which we have just copied and so know to be well formed.
#include "control/dns/dns_message.h"

#include <algorithm>
#include <iterator>

namespace meshgate::control::dns {

namespace {

constexpr std::string_view kOutcomeNames[] = {"ok",
                                              "too_short",
                                              "is_response",
                                              "not_query",
                                              "bad_question_count",
                                              "bad_section_count",
                                              "truncated_name",
                                              "compressed_name",
                                              "bad_label_type",
                                              "name_too_long",
                                              "truncated_question",
                                              "bad_additional",
                                              "bad_version",
                                              "trailing_bytes"};
constexpr std::string_view kOutcomeTexts[] = {
#define MESHGATECTL_DNS_TEXT_(name, text) text,
    MESHGATECTL_DNS_PARSE_OUTCOMES(MESHGATECTL_DNS_TEXT_)
#undef MESHGATECTL_DNS_TEXT_
};
static_assert(std::size(kOutcomeTexts) == kParseOutcomeCount && std::size(kOutcomeNames) == kParseOutcomeCount);

class Reader {
 public:
  Reader(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  bool U8(uint8_t& out) {
    if (size_ - pos_ < 1) return false;
    out = data_[pos_++];
    return true;
  }
  bool U16(uint16_t& out) {
    if (size_ - pos_ < 2) return false;
    out = static_cast<uint16_t>(data_[pos_] << 8 | data_[pos_ + 1]);
    pos_ += 2;
    return true;
  }
  bool U32(uint32_t& out) {
    uint16_t hi = 0, lo = 0;
    if (size_ - pos_ < 4) return false;
    U16(hi);
    U16(lo);
    out = uint32_t{hi} << 16 | lo;
    return true;
  }
  bool Skip(size_t n) {
    if (size_ - pos_ < n) return false;
    pos_ += n;
    return true;
  }
  const uint8_t* here() const { return data_ + pos_; }
  size_t pos() const { return pos_; }
  size_t left() const { return size_ - pos_; }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

// A label in presentation form (RFC 1035 5.1): '.', '\\' and non-printable
// bytes escaped, so a label holding a dot can never match two labels.
void AppendLabel(std::string& out, const uint8_t* label, size_t len) {
  for (size_t i = 0; i < len; ++i) {
    const uint8_t c = label[i];
    if (c == '.' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c <= 0x20 || c >= 0x7f) {
      out += '\\';
      out += static_cast<char>('0' + c / 100);
      out += static_cast<char>('0' + c / 10 % 10);
      out += static_cast<char>('0' + c % 10);
    } else {
      out += static_cast<char>(c);
    }
  }
}

// The question name: plain labels only (RFC 1035 4.1.2; a pointer has
// nothing earlier to point at, RFC 6891 5 retired the other label types).
ParseOutcome ReadQuestionName(Reader& in, Query& q) {
  const size_t start = in.pos();
  for (;;) {
    uint8_t len = 0;
    if (!in.U8(len)) return ParseOutcome::kTruncatedName;
    if ((len & 0xC0) == 0xC0) return ParseOutcome::kCompressedName;
    if ((len & 0xC0) != 0) return ParseOutcome::kBadLabelType;
    if (in.pos() - start + len > kMaxNameWire) return ParseOutcome::kNameTooLong;
    if (len == 0) break;
    const uint8_t* label = in.here();
    if (!in.Skip(len)) return ParseOutcome::kTruncatedName;
    if (!q.qname.empty()) q.qname += '.';
    AppendLabel(q.qname, label, len);
  }
  q.qname_wire = in.pos() - start;
  return ParseOutcome::kOk;
}

// At most one additional record, and it is the OPT pseudo-RR (RFC 6891 6.1.1:
// owner the root, more than one is FORMERR); its options are walked, not read.
ParseOutcome ReadAdditional(Reader& in, uint16_t arcount, Query& q) {
  if (arcount == 0) return ParseOutcome::kOk;
  if (arcount > 1) return ParseOutcome::kBadAdditional;
  uint8_t root = 1;
  uint16_t type = 0, rdlength = 0;
  uint32_t ttl = 0;
  if (!in.U8(root) || root != 0 || !in.U16(type) || type != kTypeOpt || !in.U16(q.udp_size) || !in.U32(ttl) ||
      !in.U16(rdlength) || in.left() < rdlength) {
    return ParseOutcome::kBadAdditional;
  }
  Reader options(in.here(), rdlength);
  while (options.left() > 0) {
    uint16_t code = 0, len = 0;
    if (!options.U16(code) || !options.U16(len) || !options.Skip(len)) return ParseOutcome::kBadAdditional;
  }
  in.Skip(rdlength);
  q.edns = true;
  q.dnssec_ok = (ttl & 0x8000) != 0;
  if (((ttl >> 16) & 0xFF) != 0) return ParseOutcome::kBadVersion;  // RFC 6891 6.1.3
  return ParseOutcome::kOk;
}

void PutU16(std::vector<uint8_t>& out, uint16_t v) {
  out.push_back(static_cast<uint8_t>(v >> 8));
  out.push_back(static_cast<uint8_t>(v));
}

void PutU32(std::vector<uint8_t>& out, uint32_t v) {
  PutU16(out, static_cast<uint16_t>(v >> 16));
  PutU16(out, static_cast<uint16_t>(v));
}

void PutPointer(std::vector<uint8_t>& out, size_t offset) { PutU16(out, static_cast<uint16_t>(0xC000 | offset)); }

// "<label>.<apex>": the label, then a pointer to the apex in the question.
void PutApexName(std::vector<uint8_t>& out, std::string_view label, size_t apex) {
  out.push_back(static_cast<uint8_t>(label.size()));
  out.insert(out.end(), label.begin(), label.end());
  PutPointer(out, apex);
}

// The offset of the apex (the last `zone_labels` labels) inside the copied
// question name, which starts at the header's end.
size_t ApexOffset(const uint8_t* wire, size_t qname_wire, size_t zone_labels) {
  size_t labels = 0;
  for (size_t at = kHeaderSize; wire[at] != 0; at += 1 + wire[at]) ++labels;
  size_t at = kHeaderSize;
  for (size_t skip = labels > zone_labels ? labels - zone_labels : 0; skip > 0; --skip) at += 1 + wire[at];
  return at < kHeaderSize + qname_wire ? at : kHeaderSize;
}

void PutRecord(std::vector<uint8_t>& out, const Record& r, size_t apex) {
  PutPointer(out, r.owner == Record::Owner::kQuestion ? kHeaderSize : apex);
  PutU16(out, r.type);
  PutU16(out, kClassIn);
  PutU32(out, r.ttl);
  const size_t length_at = out.size();
  PutU16(out, 0);
  if (r.type == kTypeNs || r.type == kTypeSoa) {
    PutApexName(out, "ns", apex);
    if (r.type == kTypeSoa) {
      PutApexName(out, "hostmaster", apex);
      for (uint32_t v : r.soa) PutU32(out, v);
    }
  } else {
    out.insert(out.end(), r.rdata.begin(), r.rdata.end());
  }
  const size_t length = out.size() - length_at - 2;
  out[length_at] = static_cast<uint8_t>(length >> 8);
  out[length_at + 1] = static_cast<uint8_t>(length);
}

}  // namespace

std::string_view ParseOutcomeName(ParseOutcome o) { return kOutcomeNames[static_cast<size_t>(o)]; }
std::string_view ParseOutcomeText(ParseOutcome o) { return kOutcomeTexts[static_cast<size_t>(o)]; }

ParseResult ParseQuery(const uint8_t* data, size_t size) {
  ParseResult r;
  Reader in(data, size);
  uint16_t flags = 0, qdcount = 0, ancount = 0, nscount = 0, arcount = 0;
  if (!in.U16(r.query.id) || !in.U16(flags) || !in.U16(qdcount) || !in.U16(ancount) || !in.U16(nscount) ||
      !in.U16(arcount)) {
    return r;  // kTooShort
  }
  r.query.opcode = static_cast<uint8_t>((flags >> 11) & 0xF);
  r.query.rd = (flags & 0x0100) != 0;
  r.query.cd = (flags & 0x0010) != 0;
  auto done = [&r](ParseOutcome o) {
    r.outcome = o;
    return r;
  };
  if (flags & 0x8000) return done(ParseOutcome::kIsResponse);
  if (r.query.opcode != 0) return done(ParseOutcome::kNotQuery);
  if (qdcount != 1) return done(ParseOutcome::kBadQuestionCount);
  if (ancount != 0 || nscount != 0) return done(ParseOutcome::kBadSectionCount);
  if (ParseOutcome o = ReadQuestionName(in, r.query); o != ParseOutcome::kOk) return done(o);
  if (!in.U16(r.query.qtype) || !in.U16(r.query.qclass)) return done(ParseOutcome::kTruncatedQuestion);
  const ParseOutcome additional = ReadAdditional(in, arcount, r.query);
  if (additional == ParseOutcome::kBadAdditional) return done(additional);
  if (in.left() != 0) return done(ParseOutcome::kTrailingBytes);
  return done(additional);  // kOk or kBadVersion
}

size_t UdpLimit(const Query& query) {
  if (!query.edns) return kClassicUdpSize;
  return std::min<size_t>(std::max<size_t>(query.udp_size, kClassicUdpSize), kMaxUdpSize);
}

std::vector<uint8_t> BuildReply(const uint8_t* query_wire, const Query& query, const Reply& reply,
                                size_t zone_labels, size_t limit) {
  const size_t question_end = kHeaderSize + query.qname_wire + 4;
  const size_t apex = ApexOffset(query_wire, query.qname_wire, zone_labels);
  auto build = [&](bool truncated) {
    std::vector<uint8_t> out;
    out.reserve(question_end + 64);
    PutU16(out, query.id);
    uint16_t flags = 0x8000 | uint16_t{query.opcode} << 11 | (static_cast<uint16_t>(reply.rcode) & 0xF);
    if (reply.authoritative) flags |= 0x0400;
    if (truncated) flags |= 0x0200;
    if (query.rd) flags |= 0x0100;
    if (query.cd) flags |= 0x0010;
    PutU16(out, flags);
    PutU16(out, 1);
    PutU16(out, truncated ? 0 : static_cast<uint16_t>(reply.answers.size()));
    PutU16(out, truncated ? 0 : static_cast<uint16_t>(reply.authority.size()));
    PutU16(out, query.edns ? 1 : 0);
    out.insert(out.end(), query_wire + kHeaderSize, query_wire + question_end);  // the client's case (0x20)
    if (!truncated) {
      for (const Record& r : reply.answers) PutRecord(out, r, apex);
      for (const Record& r : reply.authority) PutRecord(out, r, apex);
    }
    if (query.edns) {  // RFC 6891 6.1.2/6.1.3; DO copied (RFC 3225 3)
      out.push_back(0);
      PutU16(out, kTypeOpt);
      PutU16(out, static_cast<uint16_t>(kMaxUdpSize));
      PutU32(out, uint32_t{reply.extended_rcode_high} << 24 | (query.dnssec_ok ? 0x8000u : 0u));
      PutU16(out, 0);
    }
    return out;
  };
  std::vector<uint8_t> out = build(false);
  if (out.size() > limit) out = build(true);
  return out;
}

std::vector<uint8_t> BuildHeaderOnlyError(const uint8_t* query_wire, Rcode rcode) {
  std::vector<uint8_t> out(kHeaderSize, 0);
  out[0] = query_wire[0];
  out[1] = query_wire[1];
  out[2] = static_cast<uint8_t>(0x80 | (query_wire[2] & 0x79));  // QR, opcode and RD copied
  out[3] = static_cast<uint8_t>(rcode);
  return out;
}

std::string LowerName(std::string_view name) {
  std::string out(name);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

}  // namespace meshgate::control::dns
