// AuthorizationPolicy reader and selection: Istio's validation
// (pkg/config/validation ValidateAuthorizationPolicy) as located errors, the
// TCP rule for HTTP-only and identity fields (pilot/pkg/security/authz/model
// rule.checkError: ALLOW rule never matches, DENY/AUDIT drop the field), and
// which policies apply (pilot/pkg/model/authorization.go,
// policyattachment.go).
#include "config/mesh/authorization_policy.h"

#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "config/mesh/mesh_loader.h"
#include "tests/config/mesh_test_util.h"

namespace meshgate::config::internal {
namespace {

using Lines = std::vector<std::string>;

struct Read {
  AuthorizationPolicyResource resource;
  Lines errors;
  Lines warnings;
};

// Reads one document as the mesh loader does: subject "AuthorizationPolicy
// ns/name", Istio's unknown fields as warnings.
Read ReadDoc(const std::string& text, const std::string& file = "t.yaml") {
  Read out;
  yaml::ParseError parse_error;
  std::optional<yaml::Stream> stream = yaml::Parse(text, &parse_error);
  EXPECT_TRUE(stream) << parse_error.message;
  if (!stream) return out;
  const yaml::Node doc = stream->documents().at(0);
  ResourceMeta meta;
  meta.kind = "AuthorizationPolicy";
  meta.file = file;
  meta.at = PositionOf(doc);
  const yaml::Node metadata = Lookup(doc, "metadata").value;
  meta.name = Lookup(metadata, "name").value.Scalar();
  if (Lookup(metadata, "namespace").present())
    meta.ns = Lookup(metadata, "namespace").value.Scalar();
  ErrorSink sink(file, &out.errors, &out.warnings, ErrorSink::UnknownFields::kWarning);
  sink.SetSubject(meta.Subject(), meta.at);
  out.resource = ReadAuthorizationPolicy(doc, std::move(meta), sink);
  return out;
}

// An AuthorizationPolicy whose spec starts on line 5.
std::string Ap(const std::string& spec, const std::string& name = "ap",
               const std::string& ns = "istio-system", const std::string& version = "v1") {
  return "apiVersion: security.istio.io/" + version +
         "\nkind: AuthorizationPolicy\nmetadata: {name: " + name + ", namespace: " + ns +
         "}\nspec:\n" + spec;
}

const std::string kAp = "t.yaml:";
const std::string kSubject = ": AuthorizationPolicy istio-system/ap: ";

std::string At(int line, int column, const std::string& rest) {
  return kAp + std::to_string(line) + ":" + std::to_string(column) + kSubject + rest;
}

struct ErrorCase {
  std::string name;
  std::string spec;
  Lines errors;
};

std::ostream& operator<<(std::ostream& out, const ErrorCase& c) { return out << c.name; }

class AuthorizationPolicyErrorTest : public ::testing::TestWithParam<ErrorCase> {};

TEST_P(AuthorizationPolicyErrorTest, LocatedWithFieldPath) {
  EXPECT_EQ(ReadDoc(Ap(GetParam().spec)).errors, GetParam().errors);
}

const std::string kRule = "  rules:\n  - ";  // the rule map starts at line 6, column 5

INSTANTIATE_TEST_SUITE_P(
    Istio, AuthorizationPolicyErrorTest,
    ::testing::ValuesIn(std::vector<ErrorCase>{
        {"BadIpBlock",
         kRule + "from:\n    - source: {ipBlocks: [10.0.0.0/8, 10.0.0.0/33]}\n",
         {At(7, 39,
             "spec.rules[0].from[0].source.ipBlocks[1]: \"10.0.0.0/33\" is not an IP address "
             "or CIDR range (e.g. 10.0.0.0/8)")}},
        {"BadRemoteIpBlock",
         kRule + "from:\n    - source: {notRemoteIpBlocks: [\"10.0.0\"]}\n",
         {At(7, 36,
             "spec.rules[0].from[0].source.notRemoteIpBlocks[0]: \"10.0.0\" is not an IP "
             "address or CIDR range (e.g. 10.0.0.0/8)")}},
        {"EmptyIpBlock",
         kRule + "from:\n    - source: {ipBlocks: [\"\"]}\n",
         {At(7, 27, "spec.rules[0].from[0].source.ipBlocks[0]: empty value not allowed")}},
        {"PortOutOfRange",
         kRule + "to:\n    - operation: {ports: [\"15443\", \"70000\"]}\n",
         {At(7, 36,
             "spec.rules[0].to[0].operation.ports[1]: \"70000\" is not a port (0 to 65535)")}},
        {"NotPortNotANumber",
         kRule + "to:\n    - operation: {notPorts: [\"https\"]}\n",
         {At(7, 30,
             "spec.rules[0].to[0].operation.notPorts[0]: \"https\" is not a port (0 to 65535)")}},
        {"UnknownAction",
         "  action: REJECT\n",
         {At(5, 11,
             "spec.action: unknown action \"REJECT\" (one of: ALLOW, DENY, AUDIT, CUSTOM)")}},
        {"WhenWithoutValues",
         kRule + "when:\n    - key: connection.sni\n",
         {At(7, 7,
             "spec.rules[0].when[0]: at least one of values or notValues must be set for key "
             "connection.sni")}},
        {"WhenUnknownKey",
         kRule + "when:\n    - {key: source.name, values: [a]}\n",
         {At(7, 13,
             "spec.rules[0].when[0].key: unknown attribute \"source.name\" (meshgate evaluates "
             "connection.sni, source.ip, remote.ip and destination.port)")}},
        {"WhenReplacedKey",
         kRule + "when:\n    - {key: \"destination.labels[app]\", values: [a]}\n",
         {At(7, 13,
             "spec.rules[0].when[0].key: attribute destination.labels[app] is replaced by the "
             "workload selector")}},
        {"WhenBadMapKey",
         kRule + "when:\n    - {key: request.headers, values: [a]}\n",
         {At(7, 13,
             "spec.rules[0].when[0].key: bad key (request.headers): should have format a[b]")}},
        {"WhenBadSourceIp",
         kRule + "when:\n    - {key: source.ip, values: [10.0.0.1, nope]}\n",
         {At(7, 43,
             "spec.rules[0].when[0].values[1]: \"nope\" is not an IP address or CIDR range "
             "(e.g. 10.0.0.0/8)")}},
        {"WhenBadPort",
         kRule + "when:\n    - {key: destination.port, notValues: [\"-1\"]}\n",
         {At(7, 43, "spec.rules[0].when[0].notValues[0]: \"-1\" is not a port (0 to 65535)")}},
    }),
    [](const ::testing::TestParamInfo<ErrorCase>& info) { return info.param.name; });

INSTANTIATE_TEST_SUITE_P(
    IstioShape, AuthorizationPolicyErrorTest,
    ::testing::ValuesIn(std::vector<ErrorCase>{
        {"EmptySource",
         kRule + "from:\n    - source: {}\n",
         {At(7, 15, "spec.rules[0].from[0].source: must not be empty")}},
        {"SourceRequired",
         kRule + "from:\n    - {}\n",
         {At(7, 7, "spec.rules[0].from[0].source: required")}},
        {"EmptyFrom",
         kRule + "from: []\n",
         {At(6, 5, "spec.rules[0].from: must not be empty (omit it to match every connection)")}},
        {"EmptyOperation",
         kRule + "to:\n    - operation: {}\n",
         {At(7, 18, "spec.rules[0].to[0].operation: must not be empty")}},
        {"ServiceAccountsWithPrincipals",
         kRule + "from:\n    - source: {serviceAccounts: [a], principals: [b]}\n",
         {At(7, 15,
             "spec.rules[0].from[0].source: cannot set serviceAccounts with namespaces or "
             "principals")}},
        {"ProviderWithoutCustom",
         "  action: DENY\n  provider: {name: ext}\n  rules: [{}]\n",
         {At(6, 3, "spec.provider: must not be set with action DENY (only with CUSTOM)")}},
        {"CustomWithoutProviderName",
         "  action: CUSTOM\n  rules: [{}]\n",
         {At(5, 3, "spec.provider.name: required with action CUSTOM")}},
        {"CustomWithoutRules",
         "  action: CUSTOM\n  provider: {name: ext}\n",
         {At(5, 3,
             "spec.rules: CUSTOM action without rules is meaningless as it will never be "
             "triggered; add an empty rule {} to match every connection")}},
        {"DenyWithoutRules",
         "  action: DENY\n",
         {At(5, 3,
             "spec.rules: DENY action without rules is meaningless as it will never be "
             "triggered; add an empty rule {} to match every connection")}},
        {"SelectorAndTargetRef",
         "  selector: {matchLabels: {istio: eastwestgateway}}\n  targetRef: {kind: Gateway, name: "
         "gw}\n",
         {At(5, 3, "spec: only one of targetRefs or workloadSelector can be set")}},
    }),
    [](const ::testing::TestParamInfo<ErrorCase>& info) { return info.param.name; });

TEST(AuthorizationPolicyReadTest, AnAlphaVersionIsRefused) {
  EXPECT_EQ(ReadDoc(Ap("  rules: [{}]\n", "ap", "istio-system", "v1alpha1")).errors,
            Lines{At(1, 13,
                     "apiVersion: unsupported apiVersion \"security.istio.io/v1alpha1\" for "
                     "AuthorizationPolicy (one of: security.istio.io/v1, "
                     "security.istio.io/v1beta1)")});
}

TEST(AuthorizationPolicyReadTest, EveryL4FieldIsRead) {
  const Read r = ReadDoc(Ap(
      "  action: DENY\n"
      "  selector: {matchLabels: {istio: eastwestgateway}}\n"
      "  rules:\n"
      "  - from:\n"
      "    - source: {ipBlocks: [10.0.0.0/8], notIpBlocks: [10.1.0.0/16]}\n"
      "    - source: {remoteIpBlocks: [\"2001:db8::/32\"], notRemoteIpBlocks: [\"2001:db8::1\"]}\n"
      "    to:\n"
      "    - operation: {ports: [\"15443\"], notPorts: [\"15012\"]}\n"
      "    when:\n"
      "    - {key: connection.sni, values: [\"*.svc.cluster.local\"], notValues: "
      "[\"outbound_.80_*\"]}\n"
      "    - {key: source.ip, notValues: [192.0.2.0/24]}\n"
      "    - {key: remote.ip, values: [192.0.2.1]}\n"
      "    - {key: destination.port, values: [\"15443\"]}\n",
      "deny-ext", "istio-system", "v1beta1"));
  EXPECT_TRUE(r.errors.empty()) << r.errors.front();
  EXPECT_TRUE(r.warnings.empty()) << r.warnings.front();
  const AuthorizationPolicyResource& p = r.resource;
  EXPECT_EQ(p.policy.name, "istio-system/deny-ext");
  EXPECT_EQ(p.policy.action, AuthorizationAction::kDeny);
  EXPECT_EQ(p.selector, (Labels{{"istio", "eastwestgateway"}}));
  ASSERT_EQ(p.policy.rules.size(), 1u);
  const AuthorizationRule& rule = p.policy.rules[0];
  ASSERT_EQ(rule.from.size(), 2u);
  EXPECT_EQ(rule.from[0].ip_blocks.size(), 1u);
  EXPECT_EQ(rule.from[0].not_ip_blocks.size(), 1u);
  EXPECT_EQ(rule.from[1].remote_ip_blocks.size(), 1u);
  EXPECT_EQ(rule.from[1].not_remote_ip_blocks.size(), 1u);
  ASSERT_EQ(rule.to.size(), 1u);
  EXPECT_EQ(rule.to[0].ports, std::vector<uint16_t>{15443});
  EXPECT_EQ(rule.to[0].not_ports, std::vector<uint16_t>{15012});
  ASSERT_EQ(rule.when.size(), 4u);
  EXPECT_EQ(rule.when[0].values.size(), 1u);
  EXPECT_EQ(rule.when[0].not_values.at(0).kind, StringPattern::Kind::kPrefix);
  EXPECT_EQ(rule.when[1].not_ips.size(), 1u);
  EXPECT_EQ(rule.when[2].key, AuthorizationCondition::Key::kRemoteIp);
  EXPECT_EQ(rule.when[3].ports, std::vector<uint16_t>{15443});
  EXPECT_FALSE(rule.never_matches);
}

TEST(AuthorizationPolicyReadTest, UnknownFieldsWarn) {
  const Read r =
      ReadDoc(Ap("  rules:\n  - from:\n    - source: {ipBlocks: [10.0.0.0/8], peers: [x]}\n"));
  EXPECT_TRUE(r.errors.empty());
  EXPECT_EQ(
      r.warnings,
      Lines{At(7, 40,
               "spec.rules[0].from[0].source.peers: unknown field, ignored (known: principals, "
               "notPrincipals, requestPrincipals, notRequestPrincipals, namespaces, "
               "notNamespaces, serviceAccounts, notServiceAccounts, trustDomains, "
               "notTrustDomains, ipBlocks, notIpBlocks, remoteIpBlocks, "
               "notRemoteIpBlocks)")});
}

TEST(AuthorizationPolicyReadTest, NoSpecIsAllowNothing) {
  const Read r = ReadDoc(
      "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
      "metadata: {name: ap, namespace: istio-system}\n");
  EXPECT_TRUE(r.errors.empty());
  EXPECT_EQ(r.resource.policy.action, AuthorizationAction::kAllow);
  EXPECT_TRUE(r.resource.policy.rules.empty());
  EXPECT_FALSE(r.resource.selector.has_value());
}

// --- HTTP-only and identity fields at L4 -----------------------------------------------

AuthorizationInput Input(std::string_view peer, uint16_t port = 15443) {
  AuthorizationInput in;
  EXPECT_TRUE(ParseIpBytes(peer, in.peer));
  in.remote = in.peer;
  in.port = port;
  in.sni = "outbound_.9080_._.reviews.bookinfo.svc.cluster.local";
  return in;
}

// A decision's names are views into the policies that made it, so the
// policies built here are kept beside it (ASan found the decision read after
// a temporary AuthorizationPolicies was destroyed).
struct Evaluated {
  AuthorizationPolicies policies;
  AuthorizationDecision decision;
  const AuthorizationDecision* operator->() const { return &decision; }
};

Evaluated EvaluateAlone(const Read& r, const AuthorizationInput& in) {
  Evaluated out{AuthorizationPolicies({r.resource.policy}), {}};
  out.decision = out.policies.Evaluate(in);
  return out;
}

const std::string kMethodsRule =
    "  rules:\n  - from:\n    - source: {ipBlocks: [10.0.0.0/8]}\n"
    "    to:\n    - operation: {ports: [\"15443\"], methods: [GET]}\n";  // methods at 9:37

TEST(AuthorizationPolicyTcpTest, AllowRuleWithAnHttpFieldNeverMatches) {
  const Read r = ReadDoc(Ap(kMethodsRule));
  EXPECT_TRUE(r.errors.empty());
  EXPECT_EQ(r.warnings, Lines{At(9, 37,
                                 "spec.rules[0].to[0].operation.methods: needs HTTP, which "
                                 "meshgate never parses: this ALLOW rule never matches")});
  ASSERT_EQ(r.resource.policy.rules.size(), 1u);
  EXPECT_TRUE(r.resource.policy.rules[0].never_matches);
  EXPECT_EQ(r.resource.policy.rules[0].ignored_fields,
            Lines{"spec.rules[0].to[0].operation.methods"});
  // The peer and port would match, but the rule is skipped: allow-nothing.
  EXPECT_EQ(EvaluateAlone(r, Input("10.0.0.1"))->denied_by, "none");
}

TEST(AuthorizationPolicyTcpTest, DenyRuleDropsAnHttpFieldAndMatchesMore) {
  const Read r = ReadDoc(Ap("  action: DENY\n" + kMethodsRule));  // methods at 10:37
  EXPECT_TRUE(r.errors.empty());
  EXPECT_EQ(r.warnings, Lines{At(10, 37,
                                 "spec.rules[0].to[0].operation.methods: needs HTTP, which "
                                 "meshgate never parses: ignored, so this DENY rule "
                                 "matches more connections")});
  EXPECT_FALSE(r.resource.policy.rules[0].never_matches);
  // Any method (none is known) from 10/8 on 15443 is denied; the rest is not.
  EXPECT_EQ(EvaluateAlone(r, Input("10.0.0.1"))->denied_by, "istio-system/ap");
  EXPECT_TRUE(EvaluateAlone(r, Input("10.0.0.1", 15012))->allowed);
  EXPECT_TRUE(EvaluateAlone(r, Input("192.0.2.1"))->allowed);
}

TEST(AuthorizationPolicyTcpTest, DenyWithOnlyHttpFieldsDeniesEveryConnection) {
  const Read r =
      ReadDoc(Ap("  action: DENY\n  rules:\n  - to:\n    - operation: {paths: [\"/admin\"]}\n"));
  EXPECT_TRUE(r.errors.empty());
  EXPECT_EQ(r.warnings,
            (Lines{At(7, 5,
                      "spec.rules[0]: with its HTTP and identity fields ignored, this DENY "
                      "rule denies every connection"),
                   At(8, 19,
                      "spec.rules[0].to[0].operation.paths: needs HTTP, which meshgate "
                      "never parses: ignored, so this DENY rule matches more connections")}));
  EXPECT_FALSE(EvaluateAlone(r, Input("192.0.2.1", 15012))->allowed);
}

// Istio's Envoy could evaluate principals on TCP from the peer certificate;
// meshgate never sees it, so an identity field is treated as HTTP-only is.
TEST(AuthorizationPolicyTcpTest, AllowOnPrincipalsNeverMatches) {
  const Read r = ReadDoc(
      Ap("  rules:\n  - from:\n    - source: {principals: [\"cluster.local/ns/a/sa/b\"]}\n"));
  EXPECT_EQ(r.warnings,
            Lines{At(7, 16,
                     "spec.rules[0].from[0].source.principals: needs the peer certificate, "
                     "which meshgate never sees (it does not terminate TLS): this ALLOW rule "
                     "never matches")});
  EXPECT_EQ(EvaluateAlone(r, Input("10.0.0.1"))->denied_by, "none");
}

TEST(AuthorizationPolicyTcpTest, DenyOnNamespacesDeniesMoreThanIstio) {
  const Read r =
      ReadDoc(Ap("  action: DENY\n  rules:\n  - from:\n"
                 "    - source: {notNamespaces: [bookinfo], ipBlocks: [10.0.0.0/8]}\n"));
  EXPECT_EQ(r.warnings.size(), 1u);
  EXPECT_NE(r.warnings.at(0).find("source.notNamespaces: needs the peer certificate"),
            std::string::npos);
  EXPECT_FALSE(EvaluateAlone(r, Input("10.0.0.1"))->allowed);
  EXPECT_TRUE(EvaluateAlone(r, Input("192.0.2.1"))->allowed);
}

TEST(AuthorizationPolicyTcpTest, WhenKeysNeedingHttpOrIdentity) {
  const std::string when =
      "  rules:\n  - when:\n    - {key: \"request.headers[x-user]\", values: [a]}\n"
      "    - {key: source.ip, values: [10.0.0.0/8]}\n";
  const Read allow = ReadDoc(Ap(when));
  EXPECT_TRUE(allow.resource.policy.rules[0].never_matches);
  EXPECT_EQ(allow.resource.policy.rules[0].ignored_fields,
            Lines{"spec.rules[0].when[0] (key request.headers[x-user])"});
  const Read deny = ReadDoc(Ap("  action: DENY\n" + when));
  EXPECT_FALSE(deny.resource.policy.rules[0].never_matches);
  EXPECT_EQ(deny.resource.policy.rules[0].when.size(), 1u);  // source.ip stays
  EXPECT_FALSE(EvaluateAlone(deny, Input("10.0.0.1"))->allowed);
  EXPECT_TRUE(EvaluateAlone(deny, Input("192.0.2.1"))->allowed);
  const Read principal =
      ReadDoc(Ap("  rules:\n  - when:\n    - {key: source.principal, values: [a]}\n"));
  EXPECT_TRUE(principal.resource.policy.rules[0].never_matches);
}

// rule.checkError ignores the error for AUDIT as for DENY: a wider audit.
TEST(AuthorizationPolicyTcpTest, AuditDropsHttpFields) {
  const Read r = ReadDoc(Ap("  action: AUDIT\n" + kMethodsRule));
  EXPECT_FALSE(r.resource.policy.rules[0].never_matches);
  const Evaluated e = EvaluateAlone(r, Input("10.0.0.1"));
  const AuthorizationDecision& d = e.decision;
  EXPECT_TRUE(d.allowed);
  EXPECT_EQ(d.audited, std::vector<std::string_view>{"istio-system/ap"});
}

// --- Selection ---------------------------------------------------------------------------

struct Selected {
  std::vector<std::string> names;
  Lines errors;
  Lines warnings;
};

Selected Select(const std::vector<std::string>& docs, const Labels& labels,
                const std::string& gateway_ns = "istio-system",
                const std::string& root = "istio-system") {
  std::vector<AuthorizationPolicyResource> all;
  for (const std::string& doc : docs) {
    Read r = ReadDoc(doc);
    EXPECT_TRUE(r.errors.empty()) << r.errors.front();
    all.push_back(std::move(r.resource));
  }
  Selected out;
  const AuthorizationPolicies policies =
      SelectAuthorizationPolicies(all, {gateway_ns, root, &labels}, out.errors, out.warnings);
  for (const AuthorizationPolicy& p : policies.policies()) out.names.push_back(p.name);
  return out;
}

const Labels kEastWest = {{"istio", "eastwestgateway"}, {"app", "istio-eastwestgateway"}};
const std::string kAllowAll = "  rules: [{}]\n";

TEST(AuthorizationSelectTest, RootAndGatewayNamespacesApply) {
  const Selected s =
      Select({Ap(kAllowAll, "in-root", "istio-system"), Ap(kAllowAll, "in-gw", "gw-ns"),
              Ap(kAllowAll, "elsewhere", "bookinfo")},
             kEastWest, "gw-ns", "istio-system");
  EXPECT_EQ(s.names, (std::vector<std::string>{"gw-ns/in-gw", "istio-system/in-root"}));
  EXPECT_TRUE(s.errors.empty());
  EXPECT_TRUE(s.warnings.empty());
}

TEST(AuthorizationSelectTest, SelectorMustBeASubsetOfTheGatewayLabels) {
  const Selected s =
      Select({Ap("  selector: {matchLabels: {istio: eastwestgateway}}\n" + kAllowAll, "subset"),
              Ap("  selector: {matchLabels: {istio: ingressgateway}}\n" + kAllowAll, "other"),
              Ap("  selector: {matchLabels: {istio: eastwestgateway, extra: x}}\n" + kAllowAll,
                 "superset"),
              Ap("  selector: {}\n" + kAllowAll, "empty")},
             kEastWest);
  EXPECT_EQ(s.names, (std::vector<std::string>{"istio-system/empty", "istio-system/subset"}));
}

TEST(AuthorizationSelectTest, OrderIsEnvoysPolicyNameOrder) {
  // "ns[a-b]" sorts before "ns[a]" (']' > '-'), as Envoy's std::map does.
  const Selected s =
      Select({Ap(kAllowAll, "z", "a"), Ap(kAllowAll, "b", "a-b"), Ap(kAllowAll, "a", "a")},
             kEastWest, "a-b", "a");
  EXPECT_EQ(s.names, (std::vector<std::string>{"a-b/b", "a/a", "a/z"}));
}

TEST(AuthorizationSelectTest, TargetRefPoliciesAreSkipped) {
  const Selected s =
      Select({Ap("  targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: gw}]\n" +
                 kAllowAll)},
             kEastWest);
  EXPECT_TRUE(s.names.empty());
  EXPECT_EQ(s.warnings, Lines{At(5, 15,
                                 "spec.targetRefs: targets waypoints or Gateway API "
                                 "gateways, not meshgate: ignored")});
}

TEST(AuthorizationSelectTest, AnApplyingCustomPolicyRefusesTheMesh) {
  const Selected s =
      Select({Ap("  action: CUSTOM\n  provider: {name: ext-authz}\n  rules: [{}]\n")}, kEastWest);
  EXPECT_TRUE(s.names.empty());
  EXPECT_EQ(s.errors, Lines{At(5, 11,
                               "spec.action: CUSTOM (external authorization) applies to this "
                               "gateway but is not supported by meshgate: refusing the mesh "
                               "rather than skipping a check Istio would make")});
}

TEST(AuthorizationSelectTest, ACustomPolicyThatDoesNotApplyOnlyWarns) {
  const Selected s = Select({Ap("  action: CUSTOM\n  provider: {name: ext-authz}\n"
                                "  selector: {matchLabels: {app: httpbin}}\n  rules: [{}]\n")},
                            kEastWest);
  EXPECT_TRUE(s.errors.empty());
  EXPECT_EQ(s.warnings, Lines{At(7, 13,
                                 "spec.selector: CUSTOM policy does not select this gateway's "
                                 "labels: ignored")});
}

TEST(AuthorizationSelectTest, DryRunPoliciesAreNotEnforced) {
  const Selected s = Select(
      {"apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
       "metadata:\n  name: ap\n  namespace: istio-system\n"
       "  annotations: {istio.io/dry-run: \"true\"}\nspec:\n  action: DENY\n  rules: [{}]\n"},
      kEastWest);
  EXPECT_TRUE(s.names.empty());
  EXPECT_EQ(s.warnings.size(), 1u);
  EXPECT_NE(s.warnings.at(0).find("istio.io/dry-run"), std::string::npos);
}

}  // namespace
}  // namespace meshgate::config::internal

namespace meshgate::config {
namespace {

// The mesh loader hands AuthorizationPolicy (v1 and v1beta1) to this reader:
// its errors reach the load result, located.
TEST(AuthorizationPolicyLoadTest, ReaderErrorsReachTheMeshLoad) {
  const MeshLoadResult result = testing::LoadYaml(
      "apiVersion: security.istio.io/v1beta1\nkind: AuthorizationPolicy\n"
      "metadata: {name: ap, namespace: istio-system}\n"
      "spec:\n  action: DENY\n  rules:\n  - from:\n    - source: {ipBlocks: [10.0.0.0/33]}\n");
  EXPECT_EQ(result.errors,
            (std::vector<std::string>{
                "t.yaml:8:27: AuthorizationPolicy istio-system/ap: "
                "spec.rules[0].from[0].source.ipBlocks[0]: \"10.0.0.0/33\" is not an IP address or "
                "CIDR range (e.g. 10.0.0.0/8)"}));
}

}  // namespace
}  // namespace meshgate::config
