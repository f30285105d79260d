// AuthorizationPolicies: IP prefixes, SNI patterns and Istio's L4 evaluation
// order, as Envoy's network RBAC filters that istiod generates evaluate them.
// Followed: istio/istio master 86c9f01 (2026-08, 1.31 development), envoy
// source/extensions/filters/common/rbac/engine_impl.{h,cc}.
#include "config/model/authorization.h"

#include <arpa/inet.h>  // inet_pton/inet_ntop: text conversions only

#include <algorithm>
#include <charconv>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/names.h"

namespace meshgate::config {

namespace {

constexpr std::array<uint8_t, 12> kV4MappedPrefix = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

bool IsV4Mapped(const std::array<uint8_t, 16>& bytes) {
  return std::equal(kV4MappedPrefix.begin(), kV4MappedPrefix.end(), bytes.begin());
}

// Go's netip rules, which Istio's validation (pkg/config/security ValidateIPs)
// and util.AddrStrToCidrRange apply: dotted quad without leading zeros (glibc's
// inet_pton refuses them too), IPv6 without a zone.
bool ParseIpBytesImpl(std::string_view text, std::array<uint8_t, 16>& out, bool& v4) {
  if (text.empty() || text.size() >= INET6_ADDRSTRLEN) return false;
  const std::string s(text);
  v4 = s.find(':') == std::string::npos;
  if (!v4) return inet_pton(AF_INET6, s.c_str(), out.data()) == 1;
  uint8_t quad[4];
  if (inet_pton(AF_INET, s.c_str(), quad) != 1) return false;
  out = {};
  std::copy(kV4MappedPrefix.begin(), kV4MappedPrefix.end(), out.begin());
  std::copy(quad, quad + 4, out.begin() + 12);
  return true;
}

std::string FormatPrefix(const IpPrefix& prefix) {
  char text[INET6_ADDRSTRLEN];
  if (IsV4Mapped(prefix.bytes) && prefix.length >= 96) {
    inet_ntop(AF_INET, prefix.bytes.data() + 12, text, sizeof text);
    return absl::StrCat(text, "/", prefix.length - 96);
  }
  inet_ntop(AF_INET6, prefix.bytes.data(), text, sizeof text);
  return absl::StrCat(text, "/", prefix.length);
}

std::string FormatPattern(const StringPattern& p) {
  switch (p.kind) {
    case StringPattern::Kind::kExact: return p.text;
    case StringPattern::Kind::kPrefix: return absl::StrCat(p.text, "*");
    case StringPattern::Kind::kSuffix: return absl::StrCat("*", p.text);
    case StringPattern::Kind::kPresence: return "*";
  }
  return p.text;
}

// A list matches when empty or when any element matches; a not-list when
// empty or when none does (Istio's model.go: values ORed, notValues as
// Not(Or(...))).
template <typename T, typename Match>
bool ListMatches(const std::vector<T>& values, const std::vector<T>& not_values, Match match) {
  if (!values.empty() && std::none_of(values.begin(), values.end(), match)) return false;
  return std::none_of(not_values.begin(), not_values.end(), match);
}

bool PrefixesMatch(const std::vector<IpPrefix>& in, const std::vector<IpPrefix>& not_in,
                   const std::array<uint8_t, 16>& address) {
  return ListMatches(in, not_in, [&](const IpPrefix& p) { return p.Contains(address); });
}

bool PortsMatch(const std::vector<uint16_t>& in, const std::vector<uint16_t>& not_in,
                uint16_t port) {
  return ListMatches(in, not_in, [&](uint16_t p) { return p == port; });
}

bool SourceMatches(const AuthorizationSource& s, const AuthorizationInput& in) {
  // ipBlocks is Envoy's direct_remote_ip (the peer); remoteIpBlocks is
  // remote_ip (the original client, from PROXY protocol): generator.go.
  return PrefixesMatch(s.ip_blocks, s.not_ip_blocks, in.peer) &&
         PrefixesMatch(s.remote_ip_blocks, s.not_remote_ip_blocks, in.remote);
}

bool ConditionMatches(const AuthorizationCondition& c, const AuthorizationInput& in) {
  using Key = AuthorizationCondition::Key;
  switch (c.key) {
    case Key::kSni:
      return ListMatches(c.values, c.not_values,
                         [&](const StringPattern& p) { return p.Matches(in.sni); });
    case Key::kSourceIp: return PrefixesMatch(c.ips, c.not_ips, in.peer);
    case Key::kRemoteIp: return PrefixesMatch(c.ips, c.not_ips, in.remote);
    case Key::kDestinationPort: return PortsMatch(c.ports, c.not_ports, in.port);
  }
  return false;
}

// from entries ORed, to entries ORed, when conditions ANDed, and the three
// ANDed; an absent clause matches everything (model.go New/Generate).
bool RuleMatches(const AuthorizationRule& rule, const AuthorizationInput& in) {
  if (rule.never_matches) return false;
  const auto source = [&](const AuthorizationSource& s) { return SourceMatches(s, in); };
  if (!rule.from.empty() && std::none_of(rule.from.begin(), rule.from.end(), source)) {
    return false;
  }
  const auto operation = [&](const AuthorizationOperation& o) {
    return PortsMatch(o.ports, o.not_ports, in.port);
  };
  if (!rule.to.empty() && std::none_of(rule.to.begin(), rule.to.end(), operation)) return false;
  return std::all_of(rule.when.begin(), rule.when.end(),
                     [&](const AuthorizationCondition& c) { return ConditionMatches(c, in); });
}

// An empty rule list matches nothing: istiod emits rbacPolicyMatchNever for a
// policy without rules (builder.go build()).
bool PolicyMatches(const AuthorizationPolicy& policy, const AuthorizationInput& in) {
  return std::any_of(policy.rules.begin(), policy.rules.end(),
                     [&](const AuthorizationRule& r) { return RuleMatches(r, in); });
}

}  // namespace

// Envoy's CidrRange::isInRange never matches across address families, so an
// IPv6 prefix (even ::/0) holds no IPv4 peer. A prefix is IPv4 when it lies
// inside ::ffff:0:0/96 (so "::ffff:10.0.0.0/104" reads as 10.0.0.0/8).
bool IpPrefix::Contains(const std::array<uint8_t, 16>& address) const {
  if (IsV4Mapped(address) && !(length >= 96 && IsV4Mapped(bytes))) return false;
  const size_t whole = length / 8;
  if (!std::equal(bytes.begin(), bytes.begin() + whole, address.begin())) return false;
  const unsigned rest = length % 8;
  if (rest == 0) return true;
  const auto mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (address[whole] & mask) == bytes[whole];
}

bool ParseIpBytes(std::string_view text, std::array<uint8_t, 16>& out) {
  bool v4 = false;
  return ParseIpBytesImpl(text, out, v4);
}

bool ParseIpPrefix(std::string_view text, IpPrefix& out) {
  const size_t slash = text.find('/');
  bool v4 = false;
  IpPrefix prefix;
  if (!ParseIpBytesImpl(text.substr(0, slash), prefix.bytes, v4)) return false;
  const unsigned max = v4 ? 32 : 128;
  unsigned length = max;  // a bare address is a /32 or /128 (AddrStrToCidrRange)
  if (slash != std::string_view::npos) {
    const std::string_view digits = text.substr(slash + 1);
    // Go's ParsePrefix: decimal digits, no sign, no leading zero.
    if (digits.empty() || digits.size() > 3 || (digits.size() > 1 && digits[0] == '0'))
      return false;
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), length);
    if (ec != std::errc() || end != digits.data() + digits.size() || length > max) return false;
  }
  prefix.length = static_cast<uint8_t>(v4 ? length + 96 : length);
  for (unsigned bit = prefix.length; bit < 128; ++bit) {  // clear host bits, as CidrRange does
    prefix.bytes[bit / 8] &= static_cast<uint8_t>(~(0x80u >> (bit % 8)));
  }
  out = prefix;
  return true;
}

// Istio's matcher.StringMatcher (pilot/pkg/security/authz/matcher/string.go):
// "*" is regex ".+" (any non-empty value), "*x" a suffix, "x*" a prefix, else
// exact; case-sensitive (ignore_case false).
StringPattern ParseStringPattern(std::string_view written) {
  if (written == "*") return {StringPattern::Kind::kPresence, ""};
  if (written.starts_with('*'))
    return {StringPattern::Kind::kSuffix, std::string(written.substr(1))};
  if (written.ends_with('*')) {
    return {StringPattern::Kind::kPrefix, std::string(written.substr(0, written.size() - 1))};
  }
  return {StringPattern::Kind::kExact, std::string(written)};
}

bool StringPattern::Matches(std::string_view value) const {
  switch (kind) {
    case Kind::kExact: return value == text;
    case Kind::kPrefix: return value.starts_with(text);
    case Kind::kSuffix: return value.ends_with(text);
    case Kind::kPresence: return !value.empty();
  }
  return false;
}

std::string_view ToString(AuthorizationAction action) {
  switch (action) {
    case AuthorizationAction::kAllow: return "ALLOW";
    case AuthorizationAction::kDeny: return "DENY";
    case AuthorizationAction::kAudit: return "AUDIT";
  }
  return "?";
}

AuthorizationPolicies::AuthorizationPolicies(std::vector<AuthorizationPolicy> policies)
    : policies_(std::move(policies)) {
  for (const AuthorizationPolicy& p : policies_) {
    has_allow_ = has_allow_ || p.action == AuthorizationAction::kAllow;
    has_audit_ = has_audit_ || p.action == AuthorizationAction::kAudit;
  }
}

// istiod's filter order (builder.go build()): AUDIT (RBAC LOG, never denies),
// then DENY, then ALLOW. Envoy's RBAC engine reports the first matching policy
// in its std::map order, so the reader sorts policies as istiod names them
// ("ns[NS]-policy[NAME]-rule[N]") and the first match here is the one Envoy
// would log.
AuthorizationDecision AuthorizationPolicies::Evaluate(const AuthorizationInput& input) const {
  AuthorizationDecision decision;
  if (has_audit_) {
    for (const AuthorizationPolicy& p : policies_) {
      if (p.action == AuthorizationAction::kAudit && PolicyMatches(p, input)) {
        decision.audited.push_back(p.name);
      }
    }
  }
  for (const AuthorizationPolicy& p : policies_) {
    if (p.action == AuthorizationAction::kDeny && PolicyMatches(p, input)) {
      decision.allowed = false;
      decision.denied_by = p.name;
      return decision;
    }
  }
  if (!has_allow_) return decision;
  for (const AuthorizationPolicy& p : policies_) {
    if (p.action == AuthorizationAction::kAllow && PolicyMatches(p, input)) return decision;
  }
  decision.allowed = false;
  decision.denied_by = "none";
  return decision;
}

namespace {

template <typename T, typename Format>
void AppendList(std::vector<std::string>& parts, std::string_view name, const std::vector<T>& v,
                Format format) {
  if (v.empty()) return;
  std::vector<std::string> texts;
  for (const T& item : v) texts.push_back(format(item));
  parts.push_back(absl::StrCat(base::AbslView(name), "=", absl::StrJoin(texts, ",")));
}

const auto kPrefixText = [](const IpPrefix& p) { return FormatPrefix(p); };
const auto kPortText = [](uint16_t port) { return std::to_string(port); };
const auto kPatternText = [](const StringPattern& p) { return FormatPattern(p); };

std::string_view KeyName(AuthorizationCondition::Key key) {
  switch (key) {
    case AuthorizationCondition::Key::kSni: return "connection.sni";
    case AuthorizationCondition::Key::kSourceIp: return "source.ip";
    case AuthorizationCondition::Key::kRemoteIp: return "remote.ip";
    case AuthorizationCondition::Key::kDestinationPort: return "destination.port";
  }
  return "?";
}

std::string DescribeCondition(const AuthorizationCondition& c) {
  std::vector<std::string> parts;
  const std::string key(KeyName(c.key));
  AppendList(parts, key, c.values, kPatternText);
  AppendList(parts, "not " + key, c.not_values, kPatternText);
  AppendList(parts, key, c.ips, kPrefixText);
  AppendList(parts, "not " + key, c.not_ips, kPrefixText);
  AppendList(parts, key, c.ports, kPortText);
  AppendList(parts, "not " + key, c.not_ports, kPortText);
  return absl::StrJoin(parts, " ");
}

std::string DescribeMatch(const AuthorizationRule& rule) {
  std::vector<std::string> clauses;
  for (const AuthorizationSource& s : rule.from) {
    std::vector<std::string> parts;
    AppendList(parts, "ipBlocks", s.ip_blocks, kPrefixText);
    AppendList(parts, "notIpBlocks", s.not_ip_blocks, kPrefixText);
    AppendList(parts, "remoteIpBlocks", s.remote_ip_blocks, kPrefixText);
    AppendList(parts, "notRemoteIpBlocks", s.not_remote_ip_blocks, kPrefixText);
    clauses.push_back(
        absl::StrCat("from(", parts.empty() ? "any" : absl::StrJoin(parts, " "), ")"));
  }
  for (const AuthorizationOperation& o : rule.to) {
    std::vector<std::string> parts;
    AppendList(parts, "ports", o.ports, kPortText);
    AppendList(parts, "notPorts", o.not_ports, kPortText);
    clauses.push_back(absl::StrCat("to(", parts.empty() ? "any" : absl::StrJoin(parts, " "), ")"));
  }
  for (const AuthorizationCondition& c : rule.when) {
    clauses.push_back(absl::StrCat("when(", DescribeCondition(c), ")"));
  }
  return clauses.empty() ? "every connection" : absl::StrJoin(clauses, " ");
}

std::string DescribeRule(const AuthorizationRule& rule, size_t index) {
  const std::string fields = absl::StrJoin(rule.ignored_fields, ", ");
  if (rule.never_matches) {
    return absl::StrCat("rule ", index,
                        ": never matches (needs HTTP or the peer certificate: ", fields, ")");
  }
  std::string out = absl::StrCat("rule ", index, ": ", DescribeMatch(rule));
  if (!fields.empty()) absl::StrAppend(&out, " (dropped, so it matches more: ", fields, ")");
  return out;
}

}  // namespace

std::string AuthorizationPolicies::Describe() const {
  std::string out;
  for (const AuthorizationPolicy& p : policies_) {
    absl::StrAppend(&out, base::AbslView(ToString(p.action)), " ", p.name, ": ");
    if (p.rules.empty()) {
      absl::StrAppend(
          &out, p.action == AuthorizationAction::kAllow
                    ? "no rules: matches nothing (allow-nothing: denies what no other ALLOW allows)"
                    : "no rules: matches nothing");
    }
    for (size_t i = 0; i < p.rules.size(); ++i) {
      absl::StrAppend(&out, i == 0 ? "" : "; ", DescribeRule(p.rules[i], i));
    }
    out.push_back('\n');
  }
  return out;
}

}  // namespace meshgate::config
