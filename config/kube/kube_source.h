// Follows one Kubernetes API server (meshgate.yaml `kubernetes:` or
// --kubeconfig / --in-cluster for the gateway's own cluster; serve.yaml's
// clusters[].kubernetes for each cluster meshgatectl serve watches): lists
// then watches every
// resource the mesh loader reads (core Services, Pods, Namespaces;
// discovery.k8s.io EndpointSlices; Istio's ServiceEntries, WorkloadEntries,
// DestinationRules, Gateways and AuthorizationPolicies) and hands the whole
// set to its owner (the runtime, or serve) as mesh sources, one per object, named
// "kubernetes Kind ns/name", its text the object's JSON (JSON is YAML, so the
// same readers check it as a file).
//
// Changes are coalesced (an event waits 50 ms for company, never more than
// 100 ms after the first) and nothing is applied before every resource has
// completed its first list ("API Concepts", "Efficient detection of
// changes": the list's resourceVersion is the consistent starting point).
// Each object is loaded alone first; one with errors is rejected by name
// and the rest apply. Runs on the control loop.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "base/kube/resource_watch.h"
#include "config/kube/kube_objects.h"
#include "config/mesh/mesh_loader.h"
#include "config/settings/kubernetes_config.h"

namespace boost::asio {
class io_context;
}

namespace meshgate::kubemesh {

struct KubeStatus {
  std::string source;  // "in-cluster" or "kubeconfig PATH (context NAME)"
  // One per resource, in a fixed order; an Istio resource whose group
  // version is still being resolved shows as syncing with that note.
  std::vector<kube::WatchStatus> resources;
  bool synced = false;  // every resource listed once (missing counts as listed, empty)
  uint64_t applies = 0;          // sets handed to the runtime
  uint64_t applies_failed = 0;   // ... that it refused (the last good set keeps serving)
  uint64_t objects = 0;          // objects in the last set applied
  uint64_t objects_rejected = 0; // objects rejected alone, counted once per version
  std::string last_error;        // the runtime's last refusal, "" after a good apply
  // Which path each apply took: EndpointSlice/Pod-only batches handed over
  // as an EndpointChange the runtime installed cluster by cluster, against
  // whole sets (first sync, other kinds, relists, and the fast path's
  // fallbacks, also counted in endpoint_fallbacks).
  uint64_t endpoint_updates = 0;
  uint64_t full_rebuilds = 0;
  uint64_t endpoint_fallbacks = 0;
  std::vector<KubeRejected> rejected;  // in the current state
  // Resource names not yet synced ("pods.v1, endpointslices.v1.discovery.k8s.io").
  std::string Pending() const;
  // Readiness: every resource listed and that state handed to the runtime.
  bool ready() const { return synced && applies > 0; }
};

class KubeSource {
 public:
  // Errors of one object loaded alone (the runtime's loader and settings).
  using Validate = std::function<std::vector<std::string>(const config::MeshSource& source)>;
  // Builds and installs a table from the objects; "" or why not.
  using Apply = std::function<std::string(const std::vector<config::MeshSource>& sources, const std::string& why)>;
  // Installs an EndpointSlice/Pod-only batch's clusters; false (nothing
  // changed) when it cannot, and the whole set goes to Apply instead.
  using ApplyEndpoints = std::function<bool(const EndpointChange& change, const std::string& why)>;

  // Fails when the credentials or the CA do not load.
  static absl::StatusOr<std::unique_ptr<KubeSource>> Create(boost::asio::io_context& io,
                                                            const config::KubernetesConfig& options,
                                                            Validate validate, Apply apply,
                                                            ApplyEndpoints apply_endpoints = nullptr);
  ~KubeSource();
  KubeSource(const KubeSource&) = delete;
  KubeSource& operator=(const KubeSource&) = delete;

  void Start();
  const KubeStatus& status() const;

 private:
  struct Impl;
  explicit KubeSource(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

// Whether the credentials `options` name load (off: OK), for a clear error at startup.
absl::Status CheckKubeCredentials(const config::KubernetesConfig& options);

// The JSON of one object as the loader reads it: apiVersion and kind set
// (list items lack them), metadata.managedFields dropped.
std::string KubeObjectText(boost::json::object object, const std::string& api_version, const std::string& kind);

// The status as JSON, as meshgate's admin GET /kubernetes and serve's GET
// /v1/kubernetes show it: per watched resource its state, last
// resourceVersion, list/relist/event counts, last error and warning; the
// objects rejected.
std::string KubeStatusJson(const KubeStatus& status);

}  // namespace meshgate::kubemesh
