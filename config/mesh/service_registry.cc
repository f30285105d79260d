// Hosts -> services with per-port endpoints, merged across resources (rules in
// the header). Pods give Kubernetes endpoints their labels, readiness, service
// account, network and locality: the Pod named by the endpoint's targetRef, else
// the Pod with the endpoint's IP, both in the files loaded.
#include "config/mesh/service_registry.h"

#include <algorithm>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "base/names.h"
#include "config/mesh/workload.h"
#include "config/mesh/workload_identity.h"

namespace meshgate::config::internal {

void Reporter::Error(const ResourceMeta& meta, const FieldRef& field, std::string_view message) {
  ErrorSink sink(meta.file, &errors_, &warnings_);
  sink.SetSubject(meta.Subject(), meta.at);
  sink.AddAt(field.at, field.path, message);
}

void Reporter::Warn(const ResourceMeta& meta, const FieldRef& field, std::string_view message) {
  ErrorSink sink(meta.file, &errors_, &warnings_);
  sink.SetSubject(meta.Subject(), meta.at);
  sink.WarnAt(field.at, field.path, message);
}

namespace {

constexpr std::string_view kNetworkLabel = "topology.istio.io/network";
constexpr std::string_view kLocalityLabel = "istio-locality";  // "region.zone.subzone"

std::string Key(std::string_view ns, std::string_view name) {
  return absl::StrCat(AbslView(ns), "/", AbslView(name));
}

// Istio: resolution is a property of the service; Kubernetes Services are
// STATIC, ExternalName ones DNS.
Resolution ToResolution(SeResolution resolution) {
  switch (resolution) {
    case SeResolution::kDns:
      return Resolution::kDns;
    case SeResolution::kDnsRoundRobin:
      return Resolution::kDnsRoundRobin;
    default:
      return Resolution::kStatic;
  }
}

// The Pod's labels are interned: every endpoint of one Pod (one per port and
// service) shares them.
Endpoint FromPod(const Pod& pod, uint16_t port, std::string_view trust_domain, LabelInterner& interner) {
  Endpoint endpoint;
  endpoint.address = pod.ip;
  endpoint.port = port;
  endpoint.labels = interner.Intern(pod.meta.labels);
  endpoint.ready = pod.ready;
  const WorkloadIdentity identity = PodIdentity(pod, trust_domain);
  std::string locality;
  EndpointDetails::Values values{};
  if (auto it = pod.meta.labels.find(std::string(kNetworkLabel)); it != pod.meta.labels.end()) {
    values[EndpointDetails::kNetwork] = it->second;
  }
  if (auto it = pod.meta.labels.find(std::string(kLocalityLabel)); it != pod.meta.labels.end()) {
    locality = absl::StrReplaceAll(it->second, {{".", "/"}});
    values[EndpointDetails::kLocality] = locality;
  }
  values[EndpointDetails::kServiceAccount] = pod.service_account;
  endpoint.details = EndpointDetails(values);
  endpoint.set_workload(identity);
  return endpoint;
}

// Copies, or moves when this is the workload's last use (its last host and port).
Endpoint FromWorkload(WorkloadEndpoint& workload, uint16_t port, bool last,
                      const WorkloadIdentity& identity) {
  Endpoint endpoint = last ? std::move(workload.fields) : workload.fields;
  endpoint.port = port;
  endpoint.set_workload(identity);
  return endpoint;
}

// A resource's exportTo joins the service's; unset means everywhere ("*").
void AddExportTo(const std::vector<std::string>& export_to, MeshService& service) {
  static const std::vector<std::string> kEverywhere = {"*"};
  for (const std::string& ns : export_to.empty() ? kEverywhere : export_to) {
    if (std::find(service.export_to.begin(), service.export_to.end(), ns) ==
        service.export_to.end()) {
      service.export_to.push_back(ns);
    }
  }
}

void AddEndpoint(Endpoint endpoint, MeshService::Port& port) {
  (endpoint.address.empty() ? port.dns_endpoints : port.endpoints).push_back(std::move(endpoint));
}

class Registry {
 public:
  Registry(const MeshResources& resources, const RegistryOptions& options, Reporter& report);
  void Add(ServiceEntry& entry);
  void Add(const KubeService& service);
  std::vector<MeshService> Take() && { return std::move(services_); }
  // About one service per resource: growing by doubling would hold two copies.
  void Reserve(size_t services) { services_.reserve(services); }

 private:
  MeshService* Define(const std::string& host, const ResourceMeta& meta, const FieldRef& host_ref,
                      Resolution resolution, const FieldRef& resolution_ref);
  MeshService::Port* DeclarePort(MeshService& service, const ServicePort& port,
                                 const ResourceMeta& meta);
  void WarnUnroutableHost(const ServiceEntry& entry, const ServiceEntry::Host& host);
  const Pod* FindPod(std::string_view ns, const EndpointGroup::Address& address) const;
  std::vector<const Pod*> SelectPods(std::string_view ns, const Labels& selector) const;
  std::vector<const WorkloadEntry*> SelectEntries(const ServiceEntry& entry);
  void AddGroupEndpoints(const KubeService& service, const ServicePort& port,
                         const std::vector<const EndpointGroup*>& groups, MeshService::Port& out);

  const RegistryOptions& options_;
  Reporter& report_;
  std::vector<MeshService> services_;
  absl::flat_hash_map<std::string, size_t> by_host_;
  absl::flat_hash_map<std::string, std::vector<const Pod*>> pods_by_ns_;
  absl::flat_hash_map<std::string, const Pod*> pod_by_name_;  // "ns/name"
  absl::flat_hash_map<std::string, const Pod*> pod_by_ip_;
  absl::flat_hash_map<std::string, std::vector<const WorkloadEntry*>> entries_by_ns_;
  absl::flat_hash_map<std::string, std::vector<const EndpointGroup*>> slices_;  // "ns/service"
  absl::flat_hash_map<std::string, std::vector<const EndpointGroup*>> legacy_;  // "ns/service"
  LabelInterner labels_;  // Pod labels and Service selectors given to endpoints
};

Registry::Registry(const MeshResources& resources, const RegistryOptions& options,
                   Reporter& report)
    : options_(options), report_(report) {
  for (const Pod& pod : resources.pods) {
    pods_by_ns_[pod.meta.ns].push_back(&pod);
    pod_by_name_.emplace(Key(pod.meta.ns, pod.meta.name), &pod);
    if (!pod.ip.empty()) pod_by_ip_.emplace(pod.ip, &pod);
  }
  for (const WorkloadEntry& entry : resources.workload_entries) {
    entries_by_ns_[entry.meta.ns].push_back(&entry);
  }
  for (const EndpointGroup& group : resources.endpoint_groups) {
    if (group.service.empty()) continue;
    (group.legacy ? legacy_ : slices_)[Key(group.meta.ns, group.service)].push_back(&group);
  }
}

MeshService* Registry::Define(const std::string& host, const ResourceMeta& meta,
                              const FieldRef& host_ref, Resolution resolution,
                              const FieldRef& resolution_ref) {
  auto [it, added] = by_host_.emplace(host, services_.size());
  if (added) {
    MeshService& service = services_.emplace_back();
    service.host = host;
    service.ns = meta.ns;
    service.resolution = resolution;
    service.defined_by.push_back(&meta);
    return &service;
  }
  MeshService& service = services_[it->second];
  const ResourceMeta& first = *service.defined_by.front();
  if (service.ns != meta.ns) {
    report_.Error(meta, host_ref,
                  absl::StrCat("host \"", host, "\" is already defined in namespace ", service.ns,
                               " by ", first.Source(),
                               " (a host can come from one namespace only)"));
    return nullptr;
  }
  if (service.resolution != resolution) {
    report_.Error(meta, resolution_ref,
                  absl::StrCat("resolution ", AbslView(ToString(resolution)),
                               " conflicts with resolution ",
                               AbslView(ToString(service.resolution)), " of host \"", host,
                               "\" in ", first.Source()));
    return nullptr;
  }
  service.defined_by.push_back(&meta);
  return &service;
}

MeshService::Port* Registry::DeclarePort(MeshService& service, const ServicePort& port,
                                         const ResourceMeta& meta) {
  for (MeshService::Port& existing : service.ports) {
    const bool same_number = existing.port.number == port.number;
    const bool same_name = existing.port.name == port.name;
    if (same_number && same_name) return &existing;
    if (same_number) {
      report_.Error(meta, port.ref,
                    absl::StrCat("port ", port.number, " of host \"", service.host,
                                 "\" is named \"", port.name, "\" here but \"", existing.port.name,
                                 "\" in ", existing.declared_by->Source()));
      return nullptr;
    }
    if (same_name) {
      report_.Error(meta, port.ref,
                    absl::StrCat("port name \"", port.name, "\" of host \"", service.host,
                                 "\" is port ", port.number, " here but port ",
                                 existing.port.number, " in ", existing.declared_by->Source()));
      return nullptr;
    }
  }
  return &service.ports.emplace_back(MeshService::Port{port, &meta, {}, {}});
}

// SNI hosts are rewritten before lookup, so a host that a rewrite rule would
// change can never be looked up: usually the client-side ".global" entry was
// deployed to the gateway instead of the local service name.
void Registry::WarnUnroutableHost(const ServiceEntry& entry, const ServiceEntry::Host& host) {
  if (options_.rewrites == nullptr) return;
  for (const SniRewrite& rewrite : *options_.rewrites) {
    if (!HasLabelSuffix(host.name, rewrite.from)) continue;
    const std::string target =
        absl::StrCat(host.name.substr(0, host.name.size() - rewrite.from.size()), rewrite.to);
    report_.Warn(entry.meta, host.ref,
                 absl::StrCat("host \"", host.name, "\" is never routed: SNI rewrite ",
                              rewrite.from, " -> ", rewrite.to, " turns it into \"", target,
                              "\" before lookup"));
    return;
  }
}

std::vector<const Pod*> Registry::SelectPods(std::string_view ns, const Labels& selector) const {
  std::vector<const Pod*> out;
  if (selector.empty()) return out;
  const auto it = pods_by_ns_.find(AbslView(ns));
  if (it == pods_by_ns_.end()) return out;
  for (const Pod* pod : it->second) {
    if (!pod->ip.empty() && SelectorMatches(selector, pod->meta.labels)) out.push_back(pod);
  }
  return out;
}

// WorkloadEntries in the entry's namespace that its selector matches. A STATIC
// entry can't use one whose address is a host name: reported at the WorkloadEntry.
std::vector<const WorkloadEntry*> Registry::SelectEntries(const ServiceEntry& entry) {
  std::vector<const WorkloadEntry*> out;
  const auto it = entries_by_ns_.find(entry.meta.ns);
  if (it == entries_by_ns_.end()) return out;
  for (const WorkloadEntry* workload : it->second) {
    if (!workload->endpoint.fields.labels.Matches(*entry.workload_selector)) continue;
    if (entry.resolution == SeResolution::kStatic && !workload->endpoint.fields.hostname().empty()) {
      report_.Error(workload->meta, {"spec.address", workload->endpoint.at},
                    absl::StrCat("\"", AbslView(workload->endpoint.fields.hostname()),
                                 "\" is a host name, but resolution STATIC of ", entry.meta.Source(),
                                 " (which selects this workload) needs an IP address"));
      continue;
    }
    out.push_back(workload);
  }
  return out;
}

void Registry::Add(ServiceEntry& entry) {
  std::vector<const WorkloadEntry*> workloads;
  std::vector<const Pod*> pods;
  if (entry.workload_selector) {
    workloads = SelectEntries(entry);
    pods = SelectPods(entry.meta.ns, *entry.workload_selector);
  }
  // Computed before the last use moves the endpoints' labels out.
  std::vector<WorkloadIdentity> identities;
  for (size_t e = 0; e < entry.endpoints.size(); ++e) {
    const WorkloadEndpoint& workload = entry.endpoints[e];
    identities.push_back(EntryIdentity(absl::StrCat(entry.meta.name, "-", e), entry.meta.ns, {},
                                       workload.fields.labels, workload.fields.service_account(),
                                       options_.trust_domain));
  }
  std::vector<WorkloadIdentity> entry_identities;
  for (const WorkloadEntry* workload : workloads) {
    entry_identities.push_back(EntryIdentity(workload->meta.name, workload->meta.ns,
                                             workload->meta.annotations, workload->endpoint.fields.labels,
                                             workload->endpoint.fields.service_account(),
                                             options_.trust_domain));
  }
  const Resolution resolution = ToResolution(entry.resolution);
  const bool host_is_endpoint = resolution != Resolution::kStatic && entry.endpoints.empty() &&
                                !entry.workload_selector;
  for (size_t h = 0; h < entry.hosts.size(); ++h) {
    const ServiceEntry::Host& host = entry.hosts[h];
    WarnUnroutableHost(entry, host);
    MeshService* service =
        Define(host.name, entry.meta, host.ref, resolution, entry.resolution_ref);
    if (service == nullptr) continue;
    AddExportTo(entry.export_to, *service);
    service->mesh_external = service->mesh_external || entry.mesh_external;
    for (size_t p = 0; p < entry.ports.size(); ++p) {
      const ServicePort& port = entry.ports[p];
      MeshService::Port* out = DeclarePort(*service, port, entry.meta);
      if (out == nullptr) continue;
      const bool last = h + 1 == entry.hosts.size() && p + 1 == entry.ports.size();
      const uint16_t target = port.target_port.value_or(port.number);
      if (host_is_endpoint) {
        Endpoint endpoint;
        endpoint.set_hostname(host.name);
        endpoint.port = target;
        out->dns_endpoints.push_back(std::move(endpoint));
      }
      out->endpoints.reserve(out->endpoints.size() + entry.endpoints.size());
      for (size_t e = 0; e < entry.endpoints.size(); ++e) {
        WorkloadEndpoint& workload = entry.endpoints[e];
        const uint16_t number = EndpointPort(workload, port);
        AddEndpoint(FromWorkload(workload, number, last, identities[e]), *out);
      }
      // WorkloadEntries may be selected by several ServiceEntries: always copied.
      for (size_t w = 0; w < workloads.size(); ++w) {
        WorkloadEndpoint copy = workloads[w]->endpoint;
        AddEndpoint(FromWorkload(copy, EndpointPort(copy, port), true, entry_identities[w]), *out);
      }
      for (const Pod* pod : pods) {
        out->endpoints.push_back(FromPod(*pod, target, options_.trust_domain, labels_));
      }
    }
  }
}

const Pod* Registry::FindPod(std::string_view ns, const EndpointGroup::Address& address) const {
  if (!address.pod.empty()) {
    if (auto it = pod_by_name_.find(Key(ns, address.pod)); it != pod_by_name_.end()) {
      return it->second;
    }
  }
  if (auto it = pod_by_ip_.find(address.ip); it != pod_by_ip_.end()) return it->second;
  return nullptr;
}

// Kubernetes matches a Service port to an endpoint port by name; the endpoint
// port number is already the resolved targetPort.
void Registry::AddGroupEndpoints(const KubeService& service, const ServicePort& port,
                                 const std::vector<const EndpointGroup*>& groups,
                                 MeshService::Port& out) {
  for (const EndpointGroup* group : groups) {
    const EndpointGroup::Port* match = nullptr;
    for (const EndpointGroup::Port& candidate : group->ports) {
      if (candidate.name == port.name) match = &candidate;
    }
    if (match == nullptr) continue;
    // A slice port without a number: fall back to a numeric targetPort.
    if (!match->number && !port.target_name.empty()) continue;
    const uint16_t number = match->number.value_or(port.target_port.value_or(port.number));
    for (const EndpointGroup::Address& address : group->addresses) {
      const Pod* pod = FindPod(group->meta.ns, address);
      Endpoint endpoint =
          pod != nullptr ? FromPod(*pod, number, options_.trust_domain, labels_) : Endpoint{};
      endpoint.address = address.ip;
      endpoint.port = number;
      if (pod == nullptr && service.selector) endpoint.labels = labels_.Intern(*service.selector);
      endpoint.ready = address.ready || service.publish_not_ready;
      out.endpoints.push_back(std::move(endpoint));
    }
  }
}

void Registry::Add(const KubeService& service) {
  const std::string host =
      absl::StrCat(service.meta.name, ".", service.meta.ns, ".svc.", AbslView(options_.cluster_domain));
  const bool external = !service.external_name.empty();
  MeshService* out = Define(host, service.meta, {"metadata.name", {}},
                            external ? Resolution::kDns : Resolution::kStatic, {"spec.type", {}});
  if (out == nullptr) return;
  AddExportTo(service.export_to, *out);
  const std::string key = Key(service.meta.ns, service.meta.name);
  const auto slices = slices_.find(key);
  const auto legacy = legacy_.find(key);
  // EndpointSlices win: the mirroring controller would otherwise double them.
  const std::vector<const EndpointGroup*>* groups =
      slices != slices_.end() ? &slices->second
                              : (legacy != legacy_.end() ? &legacy->second : nullptr);
  const std::vector<const Pod*> pods =
      groups == nullptr && service.selector ? SelectPods(service.meta.ns, *service.selector)
                                            : std::vector<const Pod*>{};
  if (!external && groups == nullptr && pods.empty() && !service.ports.empty()) {
    report_.Warn(service.meta, {},
                 "no EndpointSlice, Endpoints or Pods for this Service were loaded: its "
                 "clusters have no endpoints");
  }
  for (const ServicePort& port : service.ports) {
    MeshService::Port* declared = DeclarePort(*out, port, service.meta);
    if (declared == nullptr) continue;
    if (external) {
      Endpoint endpoint;
      endpoint.set_hostname(service.external_name);
      endpoint.port = port.number;
      declared->dns_endpoints.push_back(std::move(endpoint));
    } else if (groups != nullptr) {
      AddGroupEndpoints(service, port, *groups, *declared);
    }
    // What the endpoints controller would build: targetPort by number or by
    // the Pod's container port name.
    for (const Pod* pod : pods) {
      uint16_t number = port.target_port.value_or(port.number);
      if (!port.target_name.empty()) {
        const auto it = pod->container_ports.find(port.target_name);
        if (it == pod->container_ports.end()) continue;
        number = it->second;
      }
      Endpoint endpoint = FromPod(*pod, number, options_.trust_domain, labels_);
      endpoint.ready = pod->ready || service.publish_not_ready;
      declared->endpoints.push_back(std::move(endpoint));
    }
  }
}

}  // namespace

std::vector<MeshService> CollectServices(MeshResources& resources, const RegistryOptions& options,
                                         Reporter& report) {
  Registry registry(resources, options, report);
  registry.Reserve(resources.service_entries.size() + resources.services.size());
  // Both kinds in load order, so hosts keep the order they appear in.
  size_t se = 0;
  size_t ks = 0;
  while (se < resources.service_entries.size() || ks < resources.services.size()) {
    const bool take_se =
        ks == resources.services.size() ||
        (se < resources.service_entries.size() &&
         resources.service_entries[se].meta.sequence < resources.services[ks].meta.sequence);
    if (take_se) {
      ServiceEntry& entry = resources.service_entries[se++];
      registry.Add(entry);
      // Read for the last time (the services keep copies and point only at
      // entry.meta): give the memory back before the clusters are built.
      std::vector<WorkloadEndpoint>().swap(entry.endpoints);
      std::vector<ServiceEntry::Host>().swap(entry.hosts);
      std::vector<ServicePort>().swap(entry.ports);
    } else {
      registry.Add(resources.services[ks++]);
    }
  }
  std::vector<MeshService> services = std::move(registry).Take();
  for (MeshService& service : services) {
    std::vector<std::string> sources;
    for (const ResourceMeta* meta : service.defined_by) sources.push_back(meta->Source());
    service.source = absl::StrJoin(sources, "; ");
  }
  return services;
}

}  // namespace meshgate::config::internal
