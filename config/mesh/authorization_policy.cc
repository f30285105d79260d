// AuthorizationPolicy reader. (Stub: filled in by the authorization work.)
#include "config/mesh/authorization_policy.h"

namespace meshgate::config::internal {

namespace {
constexpr absl::string_view kSecurityVersions[] = {"security.istio.io/v1", "security.istio.io/v1beta1"};
}  // namespace

AuthorizationPolicyResource ReadAuthorizationPolicy(const yaml::Node& doc, ResourceMeta meta,
                                                    ErrorSink& sink) {
  AuthorizationPolicyResource out;
  ReadEnvelope(doc, kSecurityVersions, {"apiVersion", "kind", "metadata", "spec", "status"}, sink, meta);
  out.meta = std::move(meta);
  return out;
}

AuthorizationPolicies SelectAuthorizationPolicies(const std::vector<AuthorizationPolicyResource>&,
                                                  const AuthorizationScope&,
                                                  std::vector<std::string>&,
                                                  std::vector<std::string>&) {
  return {};
}

}  // namespace meshgate::config::internal
