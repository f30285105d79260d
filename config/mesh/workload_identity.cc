// Workload metadata as Istio (master, Aug 2026) derives it:
//   workload name   pkg/kube/util.go GetWorkloadMetaFromPod / GetDeployMetaFromPod for Pods,
//                   pkg/kube/labels WorkloadNameFromWorkloadEntry for WorkloadEntries and
//                   ServiceEntry endpoints (pilot serviceentry/conversion.go names endpoint i
//                   of ServiceEntry "se" "se-i");
//   canonical name  pkg/kube/labels CanonicalService: service.istio.io/canonical-name,
//                   app.kubernetes.io/name, app, else the workload name;
//   revision        service.istio.io/canonical-revision, app.kubernetes.io/version,
//                   version, else "latest";
//   principal       spiffe://<trust domain>/ns/<namespace>/sa/<service account>.
#include "config/mesh/workload_identity.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace meshgate::config::internal {

namespace {

constexpr std::string_view kWorkloadNameLabel = "service.istio.io/workload-name";
constexpr std::string_view kAutoRegistrationGroup = "istio.io/autoRegistrationGroup";

// Over a Pod's label map or a workload's LabelSet.
template <typename LabelMap>
const std::string* Find(const LabelMap& labels, std::string_view key) {
  const auto it = labels.find(std::string(key));
  return it == labels.end() ? nullptr : &it->second;
}

template <typename LabelMap>
std::string First(const LabelMap& labels, std::initializer_list<std::string_view> keys,
                  std::string_view fallback) {
  for (std::string_view key : keys) {
    if (const std::string* value = Find(labels, key)) return *value;
  }
  return std::string(fallback);
}

// pkg/kube/util.go cronJobNameRegexp: "(.+)-\d{8,10}$".
bool TrimCronJobSuffix(std::string& name) {
  const size_t dash = name.rfind('-');
  if (dash == std::string::npos || dash == 0) return false;
  const std::string_view digits = std::string_view(name).substr(dash + 1);
  if (digits.size() < 8 || digits.size() > 10) return false;
  for (char c : digits) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return false;
  }
  name.resize(dash);
  return true;
}

bool TrimHashSuffix(std::string& name, const std::string* hash) {
  if (hash == nullptr || hash->empty() || !name.ends_with(*hash)) return false;
  const std::string suffix = absl::StrCat("-", *hash);
  if (name.ends_with(suffix)) name.resize(name.size() - suffix.size());
  return true;
}

template <typename LabelMap>
void FillCommon(const LabelMap& labels, std::string_view ns, std::string_view service_account,
                std::string_view trust_domain, WorkloadIdentity& out) {
  out.ns = std::string(ns);
  out.app = First(labels, {"app"}, "");
  out.version = First(labels, {"version"}, "");
  out.canonical_service =
      First(labels, {"service.istio.io/canonical-name", "app.kubernetes.io/name", "app"}, out.name);
  out.canonical_revision = First(
      labels, {"service.istio.io/canonical-revision", "app.kubernetes.io/version", "version"},
      "latest");
  if (!service_account.empty() && !trust_domain.empty()) {
    out.principal = absl::StrCat("spiffe://", AbslView(trust_domain), "/ns/", AbslView(ns), "/sa/",
                                 AbslView(service_account));
  }
}

}  // namespace

std::string PodWorkloadName(const Pod& pod) {
  if (const std::string* name = Find(pod.meta.labels, kWorkloadNameLabel)) return *name;
  std::string name = pod.meta.name;
  if (!pod.generated_name || pod.controller_kind.empty()) return name;
  name = pod.controller_name;
  const Labels& labels = pod.meta.labels;
  if (pod.controller_kind == "ReplicaSet") {
    // Deployment, else an Argo Rollout
    if (!TrimHashSuffix(name, Find(labels, "pod-template-hash"))) {
      TrimHashSuffix(name, Find(labels, "rollouts-pod-template-hash"));
    }
  } else if (pod.controller_kind == "ReplicationController") {
    if (const std::string* config = Find(labels, "deploymentconfig"); config && !config->empty()) {
      name = *config;  // OpenShift DeploymentConfig
    }
  } else if (pod.controller_kind == "Job") {
    TrimCronJobSuffix(name);
  }
  return name;
}

WorkloadIdentity PodIdentity(const Pod& pod, std::string_view trust_domain) {
  WorkloadIdentity out;
  out.name = PodWorkloadName(pod);
  FillCommon(pod.meta.labels, pod.meta.ns, pod.service_account, trust_domain, out);
  return out;
}

WorkloadIdentity EntryIdentity(std::string_view name, std::string_view ns, const Labels& annotations,
                               const LabelSet& labels, std::string_view service_account,
                               std::string_view trust_domain) {
  WorkloadIdentity out;
  if (const std::string* group = Find(annotations, kAutoRegistrationGroup)) {
    out.name = *group;
  } else if (const std::string* label = Find(labels, kWorkloadNameLabel)) {
    out.name = *label;
  } else {
    out.name = std::string(name);
  }
  FillCommon(labels, ns, service_account, trust_domain, out);
  return out;
}

}  // namespace meshgate::config::internal
