// Services by host, merged from ServiceEntries and Kubernetes Services, with
// their endpoints per port from every source (ServiceEntry endpoints,
// WorkloadEntries, EndpointSlices, Endpoints, Pods).
//
// Merging follows Istio, and says so where Istio would silently pick one:
//   - resources defining the same host must be in the same namespace (Istio
//     keeps one per namespace and shows each client namespace a different one;
//     a gateway has no client namespace to choose by);
//   - their ports are merged by number; a number with two names, or a name with
//     two numbers, is a conflict;
//   - their endpoints are kept side by side, each on the ports its resource
//     declares (Istio's endpoint index is keyed by host and namespace too);
//   - their resolutions must agree.
// Every conflict is an error at the later resource naming the earlier one.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "config/mesh/mesh_model.h"
#include "config/model/route_table.h"

namespace meshgate::config::internal {

// Messages about one resource from the cross-resource stages, in the same
// "file:line:column: Kind ns/name: field: message" shape as the readers'.
class Reporter {
 public:
  Reporter(std::vector<std::string>& errors, std::vector<std::string>& warnings)
      : errors_(errors), warnings_(warnings) {}
  void Error(const ResourceMeta& meta, const FieldRef& field, std::string_view message);
  void Warn(const ResourceMeta& meta, const FieldRef& field, std::string_view message);
  size_t errors() const { return errors_.size(); }
  std::vector<std::string>& warnings() { return warnings_; }

 private:
  std::vector<std::string>& errors_;
  std::vector<std::string>& warnings_;
};

struct MeshService {
  std::string host;
  std::string ns;
  Resolution resolution = Resolution::kStatic;
  // Union over the defining resources, each one's unset exportTo counting as "*".
  std::vector<std::string> export_to;
  std::vector<const ResourceMeta*> defined_by;  // valid while `resources` is
  std::string source;  // each defining resource's Source(), joined by "; "
  // A MESH_EXTERNAL ServiceEntry defines it: Istio's gateway never exports it.
  bool mesh_external = false;
  struct Port {
    ServicePort port;
    const ResourceMeta* declared_by = nullptr;
    std::vector<Endpoint> endpoints;
    std::vector<Endpoint> dns_endpoints;
  };
  std::vector<Port> ports;
};

struct RegistryOptions {
  std::string_view cluster_domain;
  const std::vector<SniRewrite>* rewrites = nullptr;  // for the never-routed warning
  std::string_view trust_domain = "cluster.local";     // for workload principals
};

// Services in the order their hosts first appear. Endpoint data is moved out
// of `resources` where it is used for the last time. What the services keep
// is their own (`source` instead of `defined_by`), so the ServiceEntries,
// WorkloadEntries and Kubernetes objects may be freed once this returns.
std::vector<MeshService> CollectServices(MeshResources& resources, const RegistryOptions& options,
                                         Reporter& report);

}  // namespace meshgate::config::internal
