// The L4 authorization model: IP prefixes, SNI patterns, rule matching and
// Istio's evaluation order (istiod's builder.go: AUDIT, then DENY, then ALLOW;
// model.go: from ORed, to ORed, when ANDed; matcher/string.go patterns).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "config/model/authorization.h"

namespace meshgate::config {
namespace {

using Bytes = std::array<uint8_t, 16>;

IpPrefix P(std::string_view text) {
  IpPrefix prefix;
  EXPECT_TRUE(ParseIpPrefix(text, prefix)) << text;
  return prefix;
}

Bytes Ip(std::string_view text) {
  Bytes bytes{};
  EXPECT_TRUE(ParseIpBytes(text, bytes)) << text;
  return bytes;
}

constexpr std::string_view kSni = "outbound_.9080_._.reviews.bookinfo.svc.cluster.local";

AuthorizationInput In(std::string_view peer, uint16_t port = 15443, std::string_view sni = kSni,
                      std::string_view remote = "") {
  AuthorizationInput in;
  in.peer = Ip(peer);
  in.remote = Ip(remote.empty() ? peer : remote);
  in.port = port;
  in.sni = sni;
  return in;
}

AuthorizationPolicy Policy(std::string name, AuthorizationAction action,
                           std::vector<AuthorizationRule> rules) {
  return {std::move(name), "t.yaml:1", action, std::move(rules)};
}

// Whether `rule` matches `in`, seen through a lone DENY policy.
bool Matches(const AuthorizationRule& rule, const AuthorizationInput& in) {
  const AuthorizationPolicies policies({Policy("ns/deny", AuthorizationAction::kDeny, {rule})});
  return !policies.Evaluate(in).allowed;
}

AuthorizationRule FromBlocks(std::vector<IpPrefix> blocks, std::vector<IpPrefix> not_blocks = {}) {
  AuthorizationRule rule;
  rule.from.push_back({std::move(blocks), std::move(not_blocks), {}, {}});
  return rule;
}

AuthorizationRule When(AuthorizationCondition condition) {
  AuthorizationRule rule;
  rule.when.push_back(std::move(condition));
  return rule;
}

TEST(IpPrefixTest, Ipv4IsKeptAsMappedIpv6) {
  const IpPrefix p = P("10.0.0.0/8");
  EXPECT_EQ(p.length, 104);
  EXPECT_TRUE(p.Contains(Ip("10.1.2.3")));
  EXPECT_FALSE(p.Contains(Ip("11.0.0.1")));
  EXPECT_FALSE(p.Contains(Ip("::a01:203")));  // the same 32 bits, but IPv6
}

TEST(IpPrefixTest, BareAddressIsAHostRoute) {
  EXPECT_EQ(P("10.1.2.3").length, 128);  // /32 over the mapped 16 bytes
  EXPECT_TRUE(P("10.1.2.3").Contains(Ip("10.1.2.3")));
  EXPECT_FALSE(P("10.1.2.3").Contains(Ip("10.1.2.4")));
  EXPECT_EQ(P("2001:db8::1").length, 128);
  EXPECT_FALSE(P("2001:db8::1").Contains(Ip("2001:db8::2")));
}

TEST(IpPrefixTest, Ipv6Prefixes) {
  EXPECT_TRUE(P("2001:db8::/32").Contains(Ip("2001:db8:1::1")));
  EXPECT_FALSE(P("2001:db8::/32").Contains(Ip("2001:db9::1")));
  EXPECT_FALSE(P("2001:db8::/32").Contains(Ip("10.0.0.1")));
  // As Envoy's CidrRange: an IPv6 range never holds an IPv4 peer.
  EXPECT_TRUE(P("::/0").Contains(Ip("2001:db8::1")));
  EXPECT_FALSE(P("::/0").Contains(Ip("10.0.0.1")));
}

TEST(IpPrefixTest, PrefixLengthsOffAByteBoundary) {
  EXPECT_TRUE(P("10.0.0.0/9").Contains(Ip("10.127.255.255")));
  EXPECT_FALSE(P("10.0.0.0/9").Contains(Ip("10.128.0.0")));
  EXPECT_TRUE(P("0.0.0.0/0").Contains(Ip("203.0.113.9")));
  EXPECT_FALSE(P("0.0.0.0/0").Contains(Ip("2001:db8::1")));  // as Envoy: families differ
}

TEST(IpPrefixTest, HostBitsAreCleared) {
  EXPECT_TRUE(P("10.1.2.3/8").Contains(Ip("10.9.9.9")));
  EXPECT_TRUE(P("2001:db8::1/64").Contains(Ip("2001:db8::ffff")));
}

TEST(IpPrefixTest, RejectsWhatGoNetipRejects) {
  for (std::string_view bad :
       {"", "10.0.0", "10.0.0.256", "010.0.0.1", "10.0.0.0/33", "2001:db8::/129", "10.0.0.0/",
        "10.0.0.0/08", "10.0.0.0/-1", "10.0.0.0/+8", "fe80::1%eth0", "reviews.local",
        "10.0.0.0/8/9", " 10.0.0.1", "10.0.0.1 ", "[::1]"}) {
    IpPrefix p;
    EXPECT_FALSE(ParseIpPrefix(bad, p)) << "\"" << bad << "\"";
  }
  Bytes b;
  EXPECT_FALSE(ParseIpBytes("10.0.0.0/8", b));
}

TEST(StringPatternTest, ExactPrefixSuffixPresence) {
  const StringPattern exact = ParseStringPattern("a.local");
  EXPECT_TRUE(exact.Matches("a.local"));
  EXPECT_FALSE(exact.Matches("A.local"));  // case-sensitive, as Istio's StringMatcher
  const StringPattern prefix = ParseStringPattern("outbound_.9080_*");
  EXPECT_EQ(prefix.kind, StringPattern::Kind::kPrefix);
  EXPECT_TRUE(prefix.Matches(kSni));
  EXPECT_FALSE(prefix.Matches("outbound_.80_._.x"));
  const StringPattern suffix = ParseStringPattern("*.bookinfo.svc.cluster.local");
  EXPECT_EQ(suffix.kind, StringPattern::Kind::kSuffix);
  EXPECT_TRUE(suffix.Matches(kSni));
  EXPECT_FALSE(suffix.Matches("outbound_.9080_._.reviews.other.svc.cluster.local"));
  const StringPattern presence = ParseStringPattern("*");
  EXPECT_EQ(presence.kind, StringPattern::Kind::kPresence);
  EXPECT_TRUE(presence.Matches("x"));
  EXPECT_FALSE(presence.Matches(""));
}

TEST(AuthorizationRuleTest, IpBlocksAndNotIpBlocksAgainstThePeer) {
  EXPECT_TRUE(Matches(FromBlocks({P("10.0.0.0/8")}), In("10.1.1.1")));
  EXPECT_FALSE(Matches(FromBlocks({P("10.0.0.0/8")}), In("192.0.2.1")));
  EXPECT_FALSE(Matches(FromBlocks({}, {P("10.0.0.0/8")}), In("10.1.1.1")));
  EXPECT_TRUE(Matches(FromBlocks({}, {P("10.0.0.0/8")}), In("192.0.2.1")));
  EXPECT_FALSE(Matches(FromBlocks({P("10.0.0.0/8")}, {P("10.1.0.0/16")}), In("10.1.1.1")));
  EXPECT_TRUE(Matches(FromBlocks({P("10.0.0.0/8")}, {P("10.1.0.0/16")}), In("10.2.1.1")));
  // ipBlocks is the direct peer, not the PROXY-protocol client.
  EXPECT_FALSE(Matches(FromBlocks({P("10.0.0.0/8")}), In("192.0.2.1", 15443, kSni, "10.1.1.1")));
}

TEST(AuthorizationRuleTest, RemoteIpBlocksAgainstTheOriginalClient) {
  AuthorizationRule remote;
  remote.from.push_back({{}, {}, {P("2001:db8::/32")}, {}});
  EXPECT_TRUE(Matches(remote, In("10.0.0.1", 15443, kSni, "2001:db8::7")));
  EXPECT_FALSE(Matches(remote, In("2001:db8::7", 15443, kSni, "10.0.0.1")));
  AuthorizationRule not_remote;
  not_remote.from.push_back({{}, {}, {}, {P("2001:db8::/32")}});
  EXPECT_FALSE(Matches(not_remote, In("10.0.0.1", 15443, kSni, "2001:db8::7")));
  EXPECT_TRUE(Matches(not_remote, In("10.0.0.1", 15443, kSni, "2001:db9::7")));
}

TEST(AuthorizationRuleTest, PortsAndNotPorts) {
  AuthorizationRule ports;
  ports.to.push_back({{15443, 15012}, {}});
  EXPECT_TRUE(Matches(ports, In("10.0.0.1", 15012)));
  EXPECT_FALSE(Matches(ports, In("10.0.0.1", 15017)));
  AuthorizationRule not_ports;
  not_ports.to.push_back({{}, {15443}});
  EXPECT_FALSE(Matches(not_ports, In("10.0.0.1", 15443)));
  EXPECT_TRUE(Matches(not_ports, In("10.0.0.1", 15012)));
}

TEST(AuthorizationRuleTest, WhenConnectionSni) {
  AuthorizationCondition sni;
  sni.key = AuthorizationCondition::Key::kSni;
  sni.values = {ParseStringPattern("*.bookinfo.svc.cluster.local")};
  sni.not_values = {ParseStringPattern("outbound_.9080_._.reviews*")};
  EXPECT_FALSE(Matches(When(sni), In("10.0.0.1")));  // notValues excludes it
  EXPECT_TRUE(Matches(
      When(sni), In("10.0.0.1", 15443, "outbound_.9080_._.ratings.bookinfo.svc.cluster.local")));
  EXPECT_FALSE(
      Matches(When(sni), In("10.0.0.1", 15443, "outbound_.9080_._.ratings.x.svc.cluster.local")));
}

TEST(AuthorizationRuleTest, WhenSourceIpRemoteIpDestinationPort) {
  AuthorizationCondition source{AuthorizationCondition::Key::kSourceIp};
  source.ips = {P("10.0.0.0/8")};
  AuthorizationCondition remote{AuthorizationCondition::Key::kRemoteIp};
  remote.not_ips = {P("192.0.2.0/24")};
  AuthorizationCondition port{AuthorizationCondition::Key::kDestinationPort};
  port.not_ports = {15012};
  EXPECT_TRUE(Matches(When(source), In("10.0.0.1", 15443, kSni, "192.0.2.1")));
  EXPECT_FALSE(Matches(When(source), In("192.0.2.1", 15443, kSni, "10.0.0.1")));
  EXPECT_FALSE(Matches(When(remote), In("10.0.0.1", 15443, kSni, "192.0.2.1")));
  EXPECT_TRUE(Matches(When(remote), In("192.0.2.1", 15443, kSni, "10.0.0.1")));
  EXPECT_TRUE(Matches(When(port), In("10.0.0.1", 15443)));
  EXPECT_FALSE(Matches(When(port), In("10.0.0.1", 15012)));
}

TEST(AuthorizationRuleTest, FromIsOredWhenIsAnded) {
  AuthorizationRule rule = FromBlocks({P("10.0.0.0/8")});
  rule.from.push_back({{P("192.0.2.0/24")}, {}, {}, {}});
  EXPECT_TRUE(Matches(rule, In("192.0.2.9")));
  AuthorizationCondition port{AuthorizationCondition::Key::kDestinationPort};
  port.ports = {15443};
  AuthorizationCondition sni{AuthorizationCondition::Key::kSni};
  sni.values = {ParseStringPattern("other")};
  rule.when = {port};
  EXPECT_TRUE(Matches(rule, In("192.0.2.9")));
  rule.when.push_back(sni);
  EXPECT_FALSE(Matches(rule, In("192.0.2.9")));
}

TEST(AuthorizationRuleTest, EmptyRuleMatchesEverythingAndNeverMatchesNothing) {
  EXPECT_TRUE(Matches(AuthorizationRule{}, In("2001:db8::1")));
  AuthorizationRule never;
  never.never_matches = true;
  EXPECT_FALSE(Matches(never, In("2001:db8::1")));
}

using Action = AuthorizationAction;

TEST(AuthorizationEvaluateTest, NoPoliciesAllow) {
  const AuthorizationDecision d = AuthorizationPolicies().Evaluate(In("10.0.0.1"));
  EXPECT_TRUE(d.allowed);
  EXPECT_EQ(d.denied_by, "");
}

TEST(AuthorizationEvaluateTest, AnAllowPolicyMeansOneMustMatch) {
  const AuthorizationPolicies policies(
      {Policy("ns/allow-10", Action::kAllow, {FromBlocks({P("10.0.0.0/8")})})});
  EXPECT_TRUE(policies.Evaluate(In("10.0.0.1")).allowed);
  const AuthorizationDecision d = policies.Evaluate(In("192.0.2.1"));
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.denied_by, "none");
}

TEST(AuthorizationEvaluateTest, DenyWinsOverAllow) {
  const AuthorizationPolicies policies(
      {Policy("ns/allow-all", Action::kAllow, {AuthorizationRule{}}),
       Policy("ns/deny-192", Action::kDeny, {FromBlocks({P("192.0.2.0/24")})})});
  EXPECT_TRUE(policies.Evaluate(In("10.0.0.1")).allowed);
  const AuthorizationDecision d = policies.Evaluate(In("192.0.2.1"));
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.denied_by, "ns/deny-192");
}

TEST(AuthorizationEvaluateTest, FirstMatchingDenyInOrderIsReported) {
  const AuthorizationPolicies policies({Policy("a/first", Action::kDeny, {AuthorizationRule{}}),
                                        Policy("b/second", Action::kDeny, {AuthorizationRule{}})});
  EXPECT_EQ(policies.Evaluate(In("10.0.0.1")).denied_by, "a/first");
}

TEST(AuthorizationEvaluateTest, AllowNothingDeniesUnlessAnotherAllowMatches) {
  const AuthorizationPolicies alone({Policy("ns/allow-nothing", Action::kAllow, {})});
  EXPECT_EQ(alone.Evaluate(In("10.0.0.1")).denied_by, "none");
  const AuthorizationPolicies with_other(
      {Policy("ns/allow-nothing", Action::kAllow, {}),
       Policy("ns/allow-10", Action::kAllow, {FromBlocks({P("10.0.0.0/8")})})});
  EXPECT_TRUE(with_other.Evaluate(In("10.0.0.1")).allowed);
}

TEST(AuthorizationEvaluateTest, DenyWithoutRulesMatchesNothing) {
  const AuthorizationPolicies policies({Policy("ns/deny-nothing", Action::kDeny, {})});
  EXPECT_TRUE(policies.Evaluate(In("10.0.0.1")).allowed);
}

TEST(AuthorizationEvaluateTest, NeverMatchingAllowRuleDenies) {
  AuthorizationRule http_only = FromBlocks({P("10.0.0.0/8")});
  http_only.never_matches = true;  // e.g. it also named methods: [GET]
  const AuthorizationPolicies policies({Policy("ns/allow-get", Action::kAllow, {http_only})});
  EXPECT_EQ(policies.Evaluate(In("10.0.0.1")).denied_by, "none");
}

TEST(AuthorizationEvaluateTest, AuditNeverDeniesAndIsListedEvenWhenDenied) {
  const AuthorizationPolicies audit_only(
      {Policy("ns/audit-10", Action::kAudit, {FromBlocks({P("10.0.0.0/8")})}),
       Policy("ns/audit-v6", Action::kAudit, {FromBlocks({P("::/0")})})});
  AuthorizationDecision d = audit_only.Evaluate(In("10.0.0.1"));
  EXPECT_TRUE(d.allowed);
  EXPECT_EQ(d.audited, (std::vector<std::string_view>{"ns/audit-10"}));
  EXPECT_TRUE(audit_only.Evaluate(In("192.0.2.1")).allowed);  // AUDIT is no ALLOW
  EXPECT_TRUE(audit_only.Evaluate(In("192.0.2.1")).audited.empty());
  const AuthorizationPolicies with_deny(
      {Policy("ns/audit-all", Action::kAudit, {AuthorizationRule{}}),
       Policy("ns/deny-all", Action::kDeny, {AuthorizationRule{}})});
  d = with_deny.Evaluate(In("10.0.0.1"));
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.denied_by, "ns/deny-all");
  EXPECT_EQ(d.audited, (std::vector<std::string_view>{"ns/audit-all"}));
}

TEST(AuthorizationDescribeTest, OneLinePerPolicyWithNotes) {
  AuthorizationRule allow = FromBlocks({P("10.0.0.0/8"), P("2001:db8::/32")});
  allow.to.push_back({{15443}, {}});
  AuthorizationRule never;
  never.never_matches = true;
  never.ignored_fields = {"spec.rules[1].to[0].operation.methods"};
  AuthorizationRule dropped;
  dropped.ignored_fields = {"spec.rules[0].from[0].source.principals"};
  AuthorizationCondition sni{AuthorizationCondition::Key::kSni};
  sni.values = {ParseStringPattern("*.local")};
  dropped.when.push_back(sni);
  const AuthorizationPolicies policies({Policy("ns/allow", Action::kAllow, {allow, never}),
                                        Policy("ns/deny", Action::kDeny, {dropped}),
                                        Policy("ns/nothing", Action::kAllow, {})});
  EXPECT_EQ(policies.Describe(),
            "ALLOW ns/allow: rule 0: from(ipBlocks=10.0.0.0/8,2001:db8::/32) to(ports=15443); "
            "rule 1: never matches (needs HTTP or the peer certificate: "
            "spec.rules[1].to[0].operation.methods)\n"
            "DENY ns/deny: rule 0: when(connection.sni=*.local) (dropped, so it matches more: "
            "spec.rules[0].from[0].source.principals)\n"
            "ALLOW ns/nothing: no rules: matches nothing (allow-nothing: denies what no other "
            "ALLOW allows)\n");
}

}  // namespace
}  // namespace meshgate::config
