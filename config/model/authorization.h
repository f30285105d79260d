// L4 AuthorizationPolicy (security.istio.io), as a gateway that never
// terminates TLS can evaluate it: peer address, destination port, SNI. Pure:
// the mesh reader (config/mesh/authorization_policy.cc) builds it, the
// session evaluates it after the ClientHello and before any dial.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace meshgate::config {

// An IPv4 or IPv6 prefix. IPv4 is kept as IPv4-mapped IPv6 so one compare
// serves both ("10.0.0.0/8" is ::ffff:10.0.0.0/104).
struct IpPrefix {
  std::array<uint8_t, 16> bytes{};
  uint8_t length = 128;  // in bits, over the 16 bytes
  bool Contains(const std::array<uint8_t, 16>& address) const;
};
// "10.1.2.3", "10.0.0.0/8", "2001:db8::/32"; false when malformed. Host bits
// set past the prefix are accepted and cleared, as Envoy's CidrRange does.
bool ParseIpPrefix(std::string_view text, IpPrefix& out);
// An address as IPv4-mapped IPv6 bytes; false when `text` is no IP literal.
bool ParseIpBytes(std::string_view text, std::array<uint8_t, 16>& out);

// A string match from `when` values: exact, "prefix*", "*suffix" or "*" (any
// non-empty value), as Istio's StringMatch conversion for conditions.
struct StringPattern {
  enum class Kind : uint8_t { kExact, kPrefix, kSuffix, kPresence } kind = Kind::kExact;
  std::string text;
  bool Matches(std::string_view value) const;
};
StringPattern ParseStringPattern(std::string_view written);

// Istio's Rule: `from` entries are ORed, `to` entries are ORed, `when`
// conditions are ANDed, and the three are ANDed. Within one source or
// operation every field present must match; a list matches when any element
// does, a not-list when none does. An absent clause matches everything.
struct AuthorizationSource {
  std::vector<IpPrefix> ip_blocks, not_ip_blocks;                // against the peer
  std::vector<IpPrefix> remote_ip_blocks, not_remote_ip_blocks;  // against the original client
};
struct AuthorizationOperation {
  std::vector<uint16_t> ports, not_ports;  // against the listener port
};
struct AuthorizationCondition {
  enum class Key : uint8_t { kSni, kSourceIp, kRemoteIp, kDestinationPort } key = Key::kSni;
  std::vector<StringPattern> values, not_values;  // kSni
  std::vector<IpPrefix> ips, not_ips;             // kSourceIp, kRemoteIp
  std::vector<uint16_t> ports, not_ports;         // kDestinationPort
};
struct AuthorizationRule {
  std::vector<AuthorizationSource> from;
  std::vector<AuthorizationOperation> to;
  std::vector<AuthorizationCondition> when;
  // Set by the reader for an ALLOW (or AUDIT-as-ALLOW) rule that uses a field
  // needing terminated TLS or HTTP: the rule never matches. For DENY such
  // fields are dropped and the rest of the rule decides (see README,
  // "AuthorizationPolicy at L4").
  bool never_matches = false;
  // The fields meshgate cannot evaluate at L4 (HTTP, or the peer certificate
  // it never sees), as paths: why never_matches is set, or what a DENY or
  // AUDIT rule dropped. For Describe() and --check.
  std::vector<std::string> ignored_fields;
};

enum class AuthorizationAction : uint8_t { kAllow, kDeny, kAudit };
std::string_view ToString(AuthorizationAction action);

struct AuthorizationPolicy {
  std::string name;    // "ns/name"
  std::string source;  // "file.yaml:12 AuthorizationPolicy ns/name"
  AuthorizationAction action = AuthorizationAction::kAllow;
  std::vector<AuthorizationRule> rules;  // ORed; an empty list matches nothing
};

// What a connection presents to the policies.
struct AuthorizationInput {
  std::array<uint8_t, 16> peer{};         // downstream address, IPv4-mapped for v4
  std::array<uint8_t, 16> remote{};       // the original client (PROXY protocol), else == peer
  uint16_t port = 0;                      // the gateway's listener port
  std::string_view sni;
};

struct AuthorizationDecision {
  bool allowed = true;
  // The DENY policy that matched, or "none" when ALLOW policies exist and
  // none matched (Envoy logs "matched_policy[none]"). Empty when allowed.
  std::string_view denied_by;
  std::vector<std::string_view> audited;  // AUDIT policies that matched
};

// The policies that apply to this gateway (selector and namespace already
// decided), evaluated in Istio's order: DENY first, then ALLOW (an ALLOW
// policy existing means one must match); AUDIT only reports. CUSTOM never
// gets here: the reader refuses it.
class AuthorizationPolicies {
 public:
  AuthorizationPolicies() = default;
  explicit AuthorizationPolicies(std::vector<AuthorizationPolicy> policies);

  bool empty() const { return policies_.empty(); }
  const std::vector<AuthorizationPolicy>& policies() const { return policies_; }
  AuthorizationDecision Evaluate(const AuthorizationInput& input) const;
  // One line per policy, for --check.
  std::string Describe() const;

 private:
  std::vector<AuthorizationPolicy> policies_;
  bool has_allow_ = false;
  bool has_audit_ = false;
};

}  // namespace meshgate::config
