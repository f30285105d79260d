// Loads Istio/Kubernetes resources from YAML files or directories and builds
// the route table: ServiceEntry, WorkloadEntry, DestinationRule and Gateway
// (networking.istio.io), Service, Endpoints and Pod (v1), EndpointSlice
// (discovery.k8s.io/v1). Other kinds are skipped with a warning.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/read_file.h"
#include "config/model/route_table.h"

namespace meshgate::config {

struct MeshLoadResult {
  // Null when any error was found: a half-valid mesh is never served.
  std::shared_ptr<const RouteTable> table;
  // Each: "path:line:column: ServiceEntry ns/name: spec.endpoints[0].address: <what is wrong>"
  std::vector<std::string> errors;
  // Non-fatal notes in the same shape: unknown fields (Istio adds fields over
  // time), skipped kinds, whether Gateways restrict what is served.
  std::vector<std::string> warnings;
  size_t resources_loaded = 0;  // resources of the kinds above that were used
};

struct MeshLoadOptions {
  // Gateways export hosts through servers on this port (meshgate's listener).
  uint16_t listener_port = 15443;
  // Kubernetes Services are "<name>.<namespace>.svc.<cluster_domain>", and so
  // are DestinationRule short hosts.
  std::string cluster_domain = "cluster.local";
  // The gateway's own namespace and Istio's config root namespace. As for
  // Istio's gateway, a DestinationRule applies from the gateway's namespace,
  // else the service's namespace, else the root namespace, and only when its
  // exportTo lets the gateway see it.
  std::string gateway_namespace = "istio-system";
  std::string root_namespace = "istio-system";
  // The gateway's own labels (meshgate.yaml labels:, podInfoFile:), matched
  // by Gateway and AuthorizationPolicy selectors.
  std::map<std::string, std::string> gateway_labels;
  // The gateway's network (network:, $ISTIO_META_NETWORK, or its
  // topology.istio.io/network label) and the extra networks it may dial
  // (requestedNetworkView:, $ISTIO_META_REQUESTED_NETWORK_VIEW).
  std::string network;
  std::vector<std::string> requested_network_view;
  std::string trust_domain = "cluster.local";  // for destination_principal
};

// The text of mesh resources, with the name that stands for its file in messages.
struct MeshSource {
  std::string name;
  std::string text;
  std::string error;  // set when the path could not be read (kept in path order)
  // False for text no person wrote (an object from the Kubernetes API):
  // errors name "Kind ns/name" and the field path, not file:line:column.
  bool positions = true;
};
struct MeshSources {
  std::vector<MeshSource> sources;
  std::vector<std::string> warnings;  // e.g. a directory without YAML files
};

// paths: files (.yaml/.yml/.json) or directories (read non-recursively, sorted;
// dot files skipped). Reads only: nothing is parsed. Each file must be a
// regular file within `limits` (base/read_file.h); a refusal is that file's error.
MeshSources ReadMeshSources(const std::vector<std::string>& paths, const base::ConfigReadLimits& limits = {});

// The names a directory given as a mesh path contributes: *.yaml, *.yml,
// *.json, not dot files. The file watcher uses the same rule.
bool IsMeshFileName(std::string_view name);

// What each source read to, kept between loads of a changing set of sources
// (the API server's objects, one per source), so a load where one source's
// text changed parses only that one. Keyed by source name and text; holds
// only sources that read without an error or warning, so every message of a
// load is produced as without it. One thread at a time.
class MeshParseCache {
 public:
  MeshParseCache();
  ~MeshParseCache();
  MeshParseCache(const MeshParseCache&) = delete;
  MeshParseCache& operator=(const MeshParseCache&) = delete;
  size_t size() const;  // sources held
  struct Impl;
  Impl& impl() { return *impl_; }

 private:
  std::unique_ptr<Impl> impl_;
};

// Parses and validates the sources together, as one mesh. With `cache`,
// sources whose name and text it holds are not parsed again, and it keeps
// exactly this load's sources afterwards.
MeshLoadResult LoadMeshSources(const MeshSources& sources, const std::vector<SniRewrite>& rewrites,
                               const MeshLoadOptions& options = {}, MeshParseCache* cache = nullptr);

// The same, giving up the sources: each text is freed once it is read, so
// the load's peak does not hold the input beside the resources and clusters
// built from it (1x the input less). Messages are identical.
MeshLoadResult LoadMeshSources(MeshSources&& sources, const std::vector<SniRewrite>& rewrites,
                               const MeshLoadOptions& options = {}, MeshParseCache* cache = nullptr);

// ReadMeshSources, then LoadMeshSources (the sources given up).
MeshLoadResult LoadMesh(const std::vector<std::string>& paths,
                        const std::vector<SniRewrite>& rewrites,
                        const MeshLoadOptions& options = {});

// Same, from in-memory text; `name` stands for the file name in messages.
MeshLoadResult LoadMeshFromString(const std::string& yaml, const std::string& name,
                                  const std::vector<SniRewrite>& rewrites,
                                  const MeshLoadOptions& options = {});

// The Kubernetes Services in `paths`, read and validated exactly as LoadMesh
// reads them (for meshgatectl, which writes ServiceEntries from them).
struct ServiceSummary {
  std::string name;
  std::string ns;
  struct Port {
    std::string name;
    uint16_t number = 0;
    std::string protocol;  // as written, uppercase; empty when unset
  };
  std::vector<Port> ports;
};
struct ServiceListResult {
  std::vector<ServiceSummary> services;  // sorted by namespace, then name
  std::vector<std::string> errors;
  std::vector<std::string> warnings;
};
ServiceListResult LoadServices(const std::vector<std::string>& paths);
ServiceListResult LoadServices(const MeshSources& sources);

}  // namespace meshgate::config
