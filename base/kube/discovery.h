// API discovery for groups whose served versions differ between installs:
// GET /apis/<group> answers an APIGroup listing the versions the server
// serves (https://kubernetes.io/docs/reference/using-api/#api-groups).
// Istio's networking.istio.io serves v1 from Istio 1.22; older control
// planes have only v1beta1 and v1alpha3.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "base/kube/api_client.h"

namespace meshgate::kube {

// Preferred first.
inline const std::vector<std::string>& IstioNetworkingVersions() {
  static const std::vector<std::string> versions = {"v1", "v1beta1", "v1alpha3"};
  return versions;
}

// The first of `preferred` the server serves for `group`: NotFound when the
// group is missing (its CRDs are not installed: a warning for callers) or
// serves none of them; Unavailable for transport or HTTP errors (retry).
void ResolveGroupVersion(const std::shared_ptr<ApiClient>& client, const std::string& group,
                         std::vector<std::string> preferred,
                         std::function<void(absl::StatusOr<std::string> version)> done);

// The APIGroup document's versions ("versions[].version"), in server order.
absl::StatusOr<std::vector<std::string>> ParseApiGroupVersions(const std::string& body);

}  // namespace meshgate::kube
