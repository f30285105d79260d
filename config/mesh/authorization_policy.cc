// security.istio.io AuthorizationPolicy at L4, as istiod builds it for a TCP
// filter chain (forTCP) and as a gateway that never terminates TLS can see it.
//
// Followed: istio/istio master 86c9f01 (2026-08, 1.31 development):
//  - pkg/config/validation/validation.go ValidateAuthorizationPolicy and
//    pkg/config/security/security.go (what the webhook rejects: errors here);
//  - pilot/pkg/security/authz/model/{model.go,generator.go}: with forTCP an
//    HTTP-only field fails to generate; rule.checkError returns that error for
//    ALLOW (the whole rule is skipped: it never matches) and ignores it for DENY
//    and AUDIT (the field is dropped: the rule matches more);
//  - pilot/pkg/security/authz/builder/builder.go build(): a policy without
//    rules matches nothing;
//  - pilot/pkg/model/authorization.go ListAuthorizationPolicies and
//    policyattachment.go ShouldAttachPolicy: which policies apply.
// Docs: istio.io/latest/docs/reference/config/security/authorization-policy/
// and istio.io/latest/docs/concepts/security/ ("Authorization on TCP traffic",
// "Using HTTP-only fields").
//
// meshgate goes one step further than Istio for the identity fields
// (principals, namespaces, serviceAccounts, trustDomains and their `when`
// keys): Envoy evaluates them on TCP from the peer certificate, but meshgate
// passes TLS through and never sees one. Istio's Envoy at a passthrough
// gateway would let a DENY on principals never match; meshgate treats them
// like the HTTP-only fields, so such a DENY rule drops them and denies more.
#include "config/mesh/authorization_policy.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "base/names.h"

namespace meshgate::config::internal {

namespace {

constexpr absl::string_view kSecurityVersions[] = {"security.istio.io/v1",
                                                   "security.istio.io/v1beta1"};

constexpr std::string_view kNeedsHttp = "HTTP, which meshgate never parses";
constexpr std::string_view kNeedsPeerCert =
    "the peer certificate, which meshgate never sees (it does not terminate TLS)";
constexpr std::string_view kNeedsMetadata = "Envoy filter metadata, which meshgate does not have";
constexpr std::string_view kNeedsLocalIp =
    "the gateway's own address, which meshgate does not check";

// What the rule being read is for: how an unsupported field changes it.
struct RuleReader {
  AuthorizationAction action;
  bool custom;
  ErrorSink& sink;
  AuthorizationRule& rule;

  // Istio's rule.checkError for a field that cannot be generated on TCP.
  void Unsupported(const yaml::Node& at, const std::string& path, std::string_view needs) {
    rule.ignored_fields.push_back(path);
    if (custom) return;  // reported, with the reason, if the policy applies
    if (action == AuthorizationAction::kAllow) {
      rule.never_matches = true;
      sink.Warn(at, path,
                absl::StrCat("needs ", AbslView(needs), ": this ALLOW rule never matches"));
    } else {
      sink.Warn(at, path,
                absl::StrCat("needs ", AbslView(needs), ": ignored, so this ",
                             AbslView(ToString(action)), " rule matches more connections"));
    }
  }
};

// A list of non-empty strings (CheckEmptyValues); fn(item, path, text) for each.
template <typename Fn>
void ReadValues(const yaml::Node& list, const std::string& path, ErrorSink& sink, Fn&& fn) {
  ForEachString(list, path, sink,
                [&](const yaml::Node& item, const std::string& item_path, const std::string& text) {
                  if (text.empty()) {
                    sink.Add(item, item_path, "empty value not allowed");
                    return;
                  }
                  fn(item, item_path, text);
                });
}

void ReadPrefixes(const yaml::Node& list, const std::string& path, ErrorSink& sink,
                  std::vector<IpPrefix>* out) {
  ReadValues(list, path, sink,
             [&](const yaml::Node& item, const std::string& item_path, const std::string& text) {
               IpPrefix prefix;
               if (!ParseIpPrefix(text, prefix)) {
                 sink.Add(item, item_path,
                          absl::StrCat("\"", text,
                                       "\" is not an IP address or CIDR range (e.g. 10.0.0.0/8)"));
               } else if (out != nullptr) {
                 out->push_back(prefix);
               }
             });
}

// security.go ValidatePorts: decimal, 0 to 65535.
void ReadPorts(const yaml::Node& list, const std::string& path, ErrorSink& sink,
               std::vector<uint16_t>& out) {
  ReadValues(
      list, path, sink,
      [&](const yaml::Node& item, const std::string& item_path, const std::string& text) {
        uint32_t value = 0;
        const bool digits = text.size() <= 5 && std::all_of(text.begin(), text.end(), [](char c) {
                              return c >= '0' && c <= '9';
                            });
        if (digits) {
          for (char c : text) value = value * 10 + static_cast<uint32_t>(c - '0');
        }
        if (!digits || value > 65535) {
          sink.Add(item, item_path, absl::StrCat("\"", text, "\" is not a port (0 to 65535)"));
          return;
        }
        out.push_back(static_cast<uint16_t>(value));
      });
}

// A field meshgate cannot evaluate: its values are still checked.
void ReadUnsupportedList(const yaml::Node& map, std::string_view key, const std::string& parent,
                         std::string_view needs, RuleReader& reader) {
  const MapEntry entry = Lookup(map, key);
  if (!entry.present() || entry.value.IsNull()) return;
  const std::string path = FieldPath(parent, key);
  ReadValues(entry.value, path, reader.sink,
             [](const yaml::Node&, const std::string&, const std::string&) {});
  reader.Unsupported(entry.key, path, needs);
}

// The Istio API's Source fields (security/v1beta1 authorization.proto).
#define MESHGATE_SOURCE_FIELDS                                                                     \
  "principals", "notPrincipals", "requestPrincipals", "notRequestPrincipals", "namespaces",        \
      "notNamespaces", "serviceAccounts", "notServiceAccounts", "trustDomains", "notTrustDomains", \
      "ipBlocks", "notIpBlocks", "remoteIpBlocks", "notRemoteIpBlocks"

bool HasAnyField(const yaml::Node& map, std::initializer_list<std::string_view> fields) {
  return std::any_of(fields.begin(), fields.end(), [&](std::string_view f) {
    const MapEntry e = Lookup(map, f);
    return e.present() && !e.value.IsNull();
  });
}

void ReadSource(const yaml::Node& source, const std::string& path, RuleReader& reader,
                AuthorizationSource& out) {
  ErrorSink& sink = reader.sink;
  CheckFields(source, path, {MESHGATE_SOURCE_FIELDS}, sink);
  if (!HasAnyField(source, {MESHGATE_SOURCE_FIELDS})) sink.Add(source, path, "must not be empty");
  // validation.go: serviceAccounts exclude principals and namespaces.
  if (HasAnyField(source, {"serviceAccounts", "notServiceAccounts"}) &&
      HasAnyField(source, {"principals", "notPrincipals", "namespaces", "notNamespaces"})) {
    sink.Add(source, path, "cannot set serviceAccounts with namespaces or principals");
  }
  IfPresent(source, "ipBlocks", [&](const yaml::Node& n) {
    ReadPrefixes(n, FieldPath(path, "ipBlocks"), sink, &out.ip_blocks);
  });
  IfPresent(source, "notIpBlocks", [&](const yaml::Node& n) {
    ReadPrefixes(n, FieldPath(path, "notIpBlocks"), sink, &out.not_ip_blocks);
  });
  IfPresent(source, "remoteIpBlocks", [&](const yaml::Node& n) {
    ReadPrefixes(n, FieldPath(path, "remoteIpBlocks"), sink, &out.remote_ip_blocks);
  });
  IfPresent(source, "notRemoteIpBlocks", [&](const yaml::Node& n) {
    ReadPrefixes(n, FieldPath(path, "notRemoteIpBlocks"), sink, &out.not_remote_ip_blocks);
  });
  for (std::string_view key :
       {"principals", "notPrincipals", "namespaces", "notNamespaces", "serviceAccounts",
        "notServiceAccounts", "trustDomains", "notTrustDomains"}) {
    ReadUnsupportedList(source, key, path, kNeedsPeerCert, reader);
  }
  for (std::string_view key : {"requestPrincipals", "notRequestPrincipals"}) {
    ReadUnsupportedList(source, key, path, kNeedsHttp, reader);
  }
}

#define MESHGATE_OPERATION_FIELDS \
  "hosts", "notHosts", "ports", "notPorts", "methods", "notMethods", "paths", "notPaths"

void ReadOperation(const yaml::Node& operation, const std::string& path, RuleReader& reader,
                   AuthorizationOperation& out) {
  ErrorSink& sink = reader.sink;
  CheckFields(operation, path, {MESHGATE_OPERATION_FIELDS}, sink);
  if (!HasAnyField(operation, {MESHGATE_OPERATION_FIELDS}))
    sink.Add(operation, path, "must not be empty");
  IfPresent(operation, "ports",
            [&](const yaml::Node& n) { ReadPorts(n, FieldPath(path, "ports"), sink, out.ports); });
  IfPresent(operation, "notPorts", [&](const yaml::Node& n) {
    ReadPorts(n, FieldPath(path, "notPorts"), sink, out.not_ports);
  });
  for (std::string_view key : {"hosts", "notHosts", "methods", "notMethods", "paths", "notPaths"}) {
    ReadUnsupportedList(operation, key, path, kNeedsHttp, reader);
  }
}

// "name[key]" with a non-empty key (security.go validateMapKey).
bool IsMapKey(std::string_view key) {
  const size_t open = key.find('[');
  return key.ends_with(']') && open != std::string_view::npos && open > 0 && open + 2 < key.size();
}

// What a `when` key needs when meshgate cannot evaluate it; empty when it
// can; an error message (set in `error`) when Istio rejects the key.
std::string_view UnsupportedKey(std::string_view key, std::string& error) {
  for (std::string_view k :
       {"source.namespace", "source.principal", "source.serviceAccount", "source.trustDomain"}) {
    if (key == k) return kNeedsPeerCert;
  }
  for (std::string_view k :
       {"request.auth.principal", "request.auth.audiences", "request.auth.presenter"}) {
    if (key == k) return kNeedsHttp;
  }
  if (key == "destination.ip") return kNeedsLocalIp;
  const bool headers = key.starts_with("request.headers");
  const bool claims = key.starts_with("request.auth.claims");
  const bool experimental = key.starts_with("experimental.");
  if (headers || claims || experimental) {
    if (!IsMapKey(key))
      error = absl::StrCat("bad key (", AbslView(key), "): should have format a[b]");
    return experimental ? kNeedsMetadata : kNeedsHttp;
  }
  if (key == "destination.namespace") {
    error = "attribute destination.namespace is replaced by the metadata.namespace";
  } else if (key.starts_with("destination.labels")) {
    error = absl::StrCat("attribute ", AbslView(key), " is replaced by the workload selector");
  } else if (key == "destination.name" || key == "destination.user") {
    error = absl::StrCat("deprecated attribute ", AbslView(key), ": only supported in v1alpha1");
  } else {
    error = absl::StrCat("unknown attribute \"", AbslView(key),
                         "\" (meshgate evaluates connection.sni, source.ip, remote.ip and "
                         "destination.port)");
  }
  return {};
}

void ReadConditionValues(const yaml::Node& when, std::string_view field, const std::string& path,
                         ErrorSink& sink, AuthorizationCondition& c, bool negated) {
  const MapEntry entry = Lookup(when, field);
  if (!entry.present() || entry.value.IsNull()) return;
  const std::string values_path = FieldPath(path, field);
  using Key = AuthorizationCondition::Key;
  switch (c.key) {
    case Key::kSni:
      ReadValues(entry.value, values_path, sink,
                 [&](const yaml::Node&, const std::string&, const std::string& text) {
                   (negated ? c.not_values : c.values).push_back(ParseStringPattern(text));
                 });
      return;
    case Key::kSourceIp:
    case Key::kRemoteIp:
      ReadPrefixes(entry.value, values_path, sink, negated ? &c.not_ips : &c.ips);
      return;
    case Key::kDestinationPort:
      ReadPorts(entry.value, values_path, sink, negated ? c.not_ports : c.ports);
      return;
  }
}

std::optional<AuthorizationCondition::Key> SupportedKey(std::string_view key) {
  using Key = AuthorizationCondition::Key;
  if (key == "connection.sni") return Key::kSni;
  if (key == "source.ip") return Key::kSourceIp;
  if (key == "remote.ip") return Key::kRemoteIp;
  if (key == "destination.port") return Key::kDestinationPort;
  return std::nullopt;
}

void ReadCondition(const yaml::Node& when, const std::string& path, RuleReader& reader) {
  ErrorSink& sink = reader.sink;
  CheckFields(when, path, {"key", "values", "notValues"}, sink);
  const MapEntry key_entry = Lookup(when, "key");
  const std::string key_path = FieldPath(path, "key");
  if (!Require(key_entry, when, key_path, sink)) return;
  const std::optional<std::string> key = ReadString(key_entry.value, key_path, sink);
  if (!key) return;
  if (key->empty()) {
    sink.Add(key_entry.value, key_path, "must not be empty");
    return;
  }
  if (!HasAnyField(when, {"values", "notValues"})) {
    sink.Add(when, path,
             absl::StrCat("at least one of values or notValues must be set for key ", *key));
    return;
  }
  AuthorizationCondition condition;
  if (const auto supported = SupportedKey(*key)) {
    condition.key = *supported;
    ReadConditionValues(when, "values", path, sink, condition, false);
    ReadConditionValues(when, "notValues", path, sink, condition, true);
    reader.rule.when.push_back(std::move(condition));
    return;
  }
  std::string error;
  const std::string_view needs = UnsupportedKey(*key, error);
  if (!error.empty()) {
    sink.Add(key_entry.value, key_path, error);
    return;
  }
  // Values are still checked as Istio's ValidateAttribute does (IPs for destination.ip).
  for (std::string_view field : {"values", "notValues"}) {
    IfPresent(when, field, [&](const yaml::Node& n) {
      if (*key == "destination.ip")
        ReadPrefixes(n, FieldPath(path, field), sink, nullptr);
      else
        ReadValues(n, FieldPath(path, field), sink,
                   [](const yaml::Node&, const std::string&, const std::string&) {});
    });
  }
  reader.Unsupported(key_entry.value, absl::StrCat(path, " (key ", *key, ")"), needs);
}

// `from: []` and `to: []` are rejected by validation.go ("must not be empty").
template <typename Fn>
void ReadClauses(const yaml::Node& rule, std::string_view key, const std::string& rule_path,
                 std::string_view inner, ErrorSink& sink, Fn&& fn) {
  const MapEntry entry = Lookup(rule, key);
  if (!entry.present() || entry.value.IsNull()) return;
  const std::string path = FieldPath(rule_path, key);
  if (entry.value.IsSequence() && entry.value.size() == 0) {
    sink.Add(entry.key, path, "must not be empty (omit it to match every connection)");
    return;
  }
  ForEachMap(entry.value, path, sink,
             [&](const yaml::Node& item, const std::string& item_path, size_t) {
               CheckFields(item, item_path, {inner}, sink);
               const MapEntry inner_entry = Lookup(item, inner);
               const std::string inner_path = FieldPath(item_path, inner);
               if (Require(inner_entry, item, inner_path, sink) &&
                   ExpectMap(inner_entry.value, inner_path, sink)) {
                 fn(inner_entry.value, inner_path);
               }
             });
}

// No clause left that can fail: every source, operation and condition is empty.
bool MatchesEveryConnection(const AuthorizationRule& rule) {
  const bool any_source = std::all_of(rule.from.begin(), rule.from.end(), [](const auto& s) {
    return s.ip_blocks.empty() && s.not_ip_blocks.empty() && s.remote_ip_blocks.empty() &&
           s.not_remote_ip_blocks.empty();
  });
  const bool any_operation = std::all_of(rule.to.begin(), rule.to.end(), [](const auto& o) {
    return o.ports.empty() && o.not_ports.empty();
  });
  return !rule.never_matches && any_source && any_operation && rule.when.empty();
}

AuthorizationRule ReadRule(const yaml::Node& node, const std::string& path,
                           AuthorizationAction action, bool custom, ErrorSink& sink) {
  AuthorizationRule rule;
  RuleReader reader{action, custom, sink, rule};
  CheckFields(node, path, {"from", "to", "when"}, sink);
  ReadClauses(node, "from", path, "source", sink,
              [&](const yaml::Node& source, const std::string& p) {
                ReadSource(source, p, reader, rule.from.emplace_back());
              });
  ReadClauses(node, "to", path, "operation", sink, [&](const yaml::Node& op, const std::string& p) {
    ReadOperation(op, p, reader, rule.to.emplace_back());
  });
  IfPresent(node, "when", [&](const yaml::Node& list) {
    ForEachMap(list, FieldPath(path, "when"), sink,
               [&](const yaml::Node& item, const std::string& p, size_t) {
                 ReadCondition(item, p, reader);
               });
  });
  // validation.go warns that a DENY rule left with nothing TCP-capable "will
  // deny all traffic to TCP ports under its scope".
  const bool unconditional = MatchesEveryConnection(rule);
  const bool narrowed_by_drop = !rule.ignored_fields.empty() && !custom;
  if (action == AuthorizationAction::kDeny && unconditional && narrowed_by_drop) {
    sink.Warn(node, path,
              "with its HTTP and identity fields ignored, this DENY rule denies every connection");
  }
  return rule;
}

struct ActionRead {
  AuthorizationAction action = AuthorizationAction::kAllow;
  bool custom = false;
};

ActionRead ReadAction(const yaml::Node& spec, ErrorSink& sink, AuthorizationPolicyResource& out) {
  ActionRead read;
  const MapEntry entry = Lookup(spec, "action");
  out.action_ref = {"spec.action", PositionOf(entry.present() ? entry.value : spec)};
  if (!entry.present() || entry.value.IsNull()) return read;  // ALLOW is the default
  const std::optional<std::string> text = ReadString(entry.value, "spec.action", sink);
  if (!text) return read;
  if (*text == "ALLOW") return read;
  if (*text == "DENY") return {AuthorizationAction::kDeny, false};
  if (*text == "AUDIT") return {AuthorizationAction::kAudit, false};
  // CUSTOM rules are read as istiod reads them for its ext_authz filter (DENY-like).
  if (*text == "CUSTOM") return {AuthorizationAction::kDeny, true};
  sink.Add(entry.value, "spec.action",
           absl::StrCat("unknown action \"", *text, "\" (one of: ALLOW, DENY, AUDIT, CUSTOM)"));
  return read;
}

void ReadTargets(const yaml::Node& spec, ErrorSink& sink, AuthorizationPolicyResource& out) {
#define MESHGATE_TARGET_FIELDS "group", "kind", "name", "namespace"
  int kinds_set = 0;
  IfPresent(spec, "selector", [&](const yaml::Node& n) {
    ++kinds_set;
    out.selector_ref = {"spec.selector", PositionOf(n)};
    if (!ExpectMap(n, "spec.selector", sink)) return;
    CheckFields(n, "spec.selector", {"matchLabels"}, sink);
    out.selector.emplace();
    IfPresent(n, "matchLabels", [&](const yaml::Node& labels) {
      if (auto read = ReadStringMap(labels, "spec.selector.matchLabels", sink))
        *out.selector = *read;
    });
  });
  IfPresent(spec, "targetRef", [&](const yaml::Node& n) {
    ++kinds_set;
    out.has_target_ref = true;
    out.selector_ref = {"spec.targetRef", PositionOf(n)};  // exclusive with selector
    if (ExpectMap(n, "spec.targetRef", sink))
      CheckFields(n, "spec.targetRef", {MESHGATE_TARGET_FIELDS}, sink);
  });
  IfPresent(spec, "targetRefs", [&](const yaml::Node& n) {
    if (n.IsSequence() && n.size() > 0) ++kinds_set;
    if (n.IsSequence() && n.size() > 0) {
      out.has_target_ref = true;
      out.selector_ref = {"spec.targetRefs", PositionOf(n)};
    }
    ForEachMap(n, "spec.targetRefs", sink,
               [&](const yaml::Node& item, const std::string& p, size_t) {
                 CheckFields(item, p, {MESHGATE_TARGET_FIELDS}, sink);
               });
  });
  // validation.go validateOneOfSelectorType.
  if (kinds_set > 1)
    sink.Add(spec, "spec", "only one of targetRefs or workloadSelector can be set");
}

// validation.go: provider only with CUSTOM, which needs rules and provider.name;
// DENY needs rules.
void CheckActionShape(const yaml::Node& spec, const ActionRead& action, bool has_rules,
                      ErrorSink& sink) {
  const MapEntry provider = Lookup(spec, "provider");
  const bool has_provider = provider.present() && !provider.value.IsNull();
  if (has_provider && ExpectMap(provider.value, "spec.provider", sink)) {
    CheckFields(provider.value, "spec.provider", {"name"}, sink);
  }
  if (has_provider && !action.custom) {
    sink.Add(provider.key, "spec.provider",
             absl::StrCat("must not be set with action ", AbslView(ToString(action.action)),
                          " (only with CUSTOM)"));
  }
  const char* kMeaningless =
      " without rules is meaningless as it will never be triggered; add an "
      "empty rule {} to match every connection";
  if (action.custom && !has_rules)
    sink.Add(spec, "spec.rules", absl::StrCat("CUSTOM action", kMeaningless));
  if (action.custom && has_rules) {
    const yaml::Node name = has_provider ? Lookup(provider.value, "name").value : yaml::Node();
    if (!name.IsScalar() || name.Scalar().empty()) {
      sink.Add(has_provider ? provider.value : spec, "spec.provider.name",
               "required with action CUSTOM");
    }
  }
  if (!action.custom && action.action == AuthorizationAction::kDeny && !has_rules) {
    sink.Add(spec, "spec.rules", absl::StrCat("DENY action", kMeaningless));
  }
}

#undef MESHGATE_SOURCE_FIELDS
#undef MESHGATE_OPERATION_FIELDS
#undef MESHGATE_TARGET_FIELDS

}  // namespace

AuthorizationPolicyResource ReadAuthorizationPolicy(const yaml::Node& doc, ResourceMeta meta,
                                                    ErrorSink& sink) {
  AuthorizationPolicyResource out;
  ReadEnvelope(doc, kSecurityVersions, {"apiVersion", "kind", "metadata", "spec", "status"}, sink,
               meta);
  out.policy.name = absl::StrCat(meta.ns, "/", meta.name);
  out.policy.source = meta.Source();
  out.meta = std::move(meta);
  // An AuthorizationPolicy without spec (or `spec: {}`) is an ALLOW policy with
  // no rules, the documented "allow-nothing"; Kubernetes accepts it without spec.
  const MapEntry spec = Lookup(doc, "spec");
  if (!spec.present() || spec.value.IsNull()) return out;
  if (!ExpectMap(spec.value, "spec", sink)) return out;
  CheckFields(spec.value, "spec",
              {"selector", "targetRef", "targetRefs", "rules", "action", "provider"}, sink);
  const ActionRead action = ReadAction(spec.value, sink, out);
  out.policy.action = action.action;
  out.custom = action.custom;
  ReadTargets(spec.value, sink, out);
  bool has_rules = false;
  IfPresent(spec.value, "rules", [&](const yaml::Node& rules) {
    has_rules = rules.IsSequence() && rules.size() > 0;
    ForEachMap(
        rules, "spec.rules", sink, [&](const yaml::Node& node, const std::string& path, size_t) {
          out.policy.rules.push_back(ReadRule(node, path, action.action, action.custom, sink));
        });
  });
  CheckActionShape(spec.value, action, has_rules, sink);
  return out;
}

namespace {

// Envoy's RBAC engine keeps policies in a std::map keyed by istiod's name
// "ns[NS]-policy[NAME]-rule[N]" (builder.go policyName) and reports the first
// that matches; sorting by that key makes Evaluate's denied_by the same name.
std::string EnvoyPolicyKey(const ResourceMeta& meta) {
  return absl::StrCat("ns[", meta.ns, "]-policy[", meta.name, "]");
}

// The istio.io/dry-run annotation (strconv.ParseBool spellings): istiod puts
// the policy in shadow rules, which are logged and never enforced.
bool IsDryRun(const ResourceMeta& meta) {
  const auto it = meta.annotations.find("istio.io/dry-run");
  if (it == meta.annotations.end()) return false;
  for (std::string_view yes : {"1", "t", "T", "TRUE", "true", "True"}) {
    if (it->second == yes) return true;
  }
  return false;
}

}  // namespace

AuthorizationPolicies SelectAuthorizationPolicies(
    const std::vector<AuthorizationPolicyResource>& all, const AuthorizationScope& scope,
    std::vector<std::string>& errors, std::vector<std::string>& warnings) {
  static const std::map<std::string, std::string> kNoLabels;
  const auto& labels = scope.gateway_labels != nullptr ? *scope.gateway_labels : kNoLabels;
  std::vector<const AuthorizationPolicyResource*> applying;
  for (const AuthorizationPolicyResource& r : all) {
    ErrorSink sink(r.meta.file, &errors, &warnings);
    sink.SetSubject(r.meta.Subject(), r.meta.at);
    const bool in_scope = r.meta.ns == scope.root_namespace || r.meta.ns == scope.gateway_namespace;
    if (!in_scope) {
      if (r.custom)
        sink.WarnAt(
            r.action_ref.at, "spec.action",
            absl::StrCat("CUSTOM policy in namespace ", r.meta.ns,
                         " does not apply to this gateway (namespace ", scope.gateway_namespace,
                         ", root ", scope.root_namespace, "): ignored"));
      continue;
    }
    // policyattachment.go ShouldAttachPolicy: a workload that is no Gateway
    // API gateway ignores policies with targetRef(s).
    if (r.has_target_ref) {
      sink.WarnAt(r.selector_ref.at, r.selector_ref.path,
                  "targets waypoints or Gateway API gateways, not meshgate: ignored");
      continue;
    }
    if (r.selector && !SelectorMatches(*r.selector, labels)) {
      if (r.custom)
        sink.WarnAt(r.selector_ref.at, "spec.selector",
                    "CUSTOM policy does not select this gateway's labels: ignored");
      continue;
    }
    if (IsDryRun(r.meta)) {
      sink.WarnAt(r.meta.at, "metadata.annotations",
                  "istio.io/dry-run: Istio only logs a dry-run policy, never enforces it; meshgate "
                  "ignores it");
      continue;
    }
    if (r.custom) {
      sink.AddAt(r.action_ref.at, "spec.action",
                 "CUSTOM (external authorization) applies to this gateway but is not supported by "
                 "meshgate: refusing the mesh rather than skipping a check Istio would make");
      continue;
    }
    applying.push_back(&r);
  }
  std::sort(applying.begin(), applying.end(), [](const auto* a, const auto* b) {
    return EnvoyPolicyKey(a->meta) < EnvoyPolicyKey(b->meta);
  });
  std::vector<AuthorizationPolicy> policies;
  for (const AuthorizationPolicyResource* r : applying) policies.push_back(r->policy);
  return AuthorizationPolicies(std::move(policies));
}

}  // namespace meshgate::config::internal
