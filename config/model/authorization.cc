// AuthorizationPolicies evaluation. (Stub: filled in by the authorization work.)
#include "config/model/authorization.h"

namespace meshgate::config {

bool IpPrefix::Contains(const std::array<uint8_t, 16>&) const { return false; }
bool ParseIpPrefix(std::string_view, IpPrefix&) { return false; }
bool ParseIpBytes(std::string_view, std::array<uint8_t, 16>&) { return false; }
bool StringPattern::Matches(std::string_view) const { return false; }
StringPattern ParseStringPattern(std::string_view written) { return {StringPattern::Kind::kExact, std::string(written)}; }

std::string_view ToString(AuthorizationAction action) {
  switch (action) {
    case AuthorizationAction::kAllow: return "ALLOW";
    case AuthorizationAction::kDeny: return "DENY";
    case AuthorizationAction::kAudit: return "AUDIT";
  }
  return "?";
}

AuthorizationPolicies::AuthorizationPolicies(std::vector<AuthorizationPolicy> policies)
    : policies_(std::move(policies)) {}

AuthorizationDecision AuthorizationPolicies::Evaluate(const AuthorizationInput&) const { return {}; }
std::string AuthorizationPolicies::Describe() const { return ""; }

}  // namespace meshgate::config
