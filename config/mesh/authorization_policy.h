// Reads security.istio.io AuthorizationPolicy (v1, v1beta1) and picks the
// ones that apply to this gateway, as Istio picks them for a workload.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "base/yaml/yaml_fields.h"
#include "base/yaml/yaml_tree.h"
#include "config/mesh/mesh_model.h"
#include "config/model/authorization.h"

namespace meshgate::config::internal {

AuthorizationPolicyResource ReadAuthorizationPolicy(const yaml::Node& doc, ResourceMeta meta,
                                                    ErrorSink& sink);

struct AuthorizationScope {
  std::string gateway_namespace;
  std::string root_namespace;
  const std::map<std::string, std::string>* gateway_labels = nullptr;
};

// The policies that apply to the gateway: those in the root namespace
// (mesh-wide) and in the gateway's namespace whose selector matches its
// labels. A CUSTOM one that applies is an error; notes go to `warnings`.
AuthorizationPolicies SelectAuthorizationPolicies(const std::vector<AuthorizationPolicyResource>& all,
                                                  const AuthorizationScope& scope,
                                                  std::vector<std::string>& errors,
                                                  std::vector<std::string>& warnings);

}  // namespace meshgate::config::internal
