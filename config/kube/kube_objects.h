// The API server's objects as mesh sources, kept event by event, and what
// each batch of events changed (KubeSource's state, without the network, so
// tests and benches drive it directly).
//
// Each object becomes one source, "kubernetes Kind ns/name", its text the
// object's JSON (KubeObjectText), checked alone once per version; one that
// does not load alone is left out and listed as rejected. The full set comes
// out in source-name order.
//
// A batch that touched only EndpointSlices and Pods (after a good apply)
// yields an EndpointChange: the Services whose endpoints may have moved, and
// the few objects to load them from. Which Services: an EndpointSlice names
// its Service with the label kubernetes.io/service-name ("EndpointSlices",
// https://kubernetes.io/docs/concepts/services-networking/endpoint-slices/);
// a Pod reaches a Service through the slices whose endpoints name it in
// targetRef or carry its IP (the loader matches a slice address to a Pod by
// targetRef, else by IP: config/mesh/service_registry.cc FindPod). Anything
// else (a Service, DestinationRule, Gateway, ServiceEntry, ... changed, a
// relist, a resource gone missing) asks for the full path.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/object.hpp>

#include "base/kube/resource_watch.h"
#include "config/mesh/mesh_loader.h"

namespace meshgate::kubemesh {

struct KubeRejected {
  std::string name;  // "kubernetes EndpointSlice bar/httpbin-x"
  std::string resource_version;
  std::vector<std::string> errors;
};

// What an EndpointSlice/Pod-only batch changed.
struct EndpointChange {
  // "ns/name" of every Service whose endpoints may have changed, sorted.
  std::vector<std::string> services;
  // The sources to load those Services' clusters from, in name order: the
  // Services, all their EndpointSlices, the Pods these reference (by
  // targetRef or IP), and every DestinationRule, Gateway and Namespace
  // (subsets, export and networks depend on them). Accepted objects only.
  std::vector<config::MeshSource> sources;
  // The full set's changes: sources added or changed, names removed (or
  // now rejected).
  std::vector<config::MeshSource> upserted;
  std::vector<std::string> removed;
  // Pods changed: a ServiceEntry's workloadSelector may select them.
  bool pods_changed = false;
  // Whether a ServiceEntry (from the API server) lists this host, lowercase:
  // its endpoints merge with the Service's, so the change takes the full path.
  std::function<bool(std::string_view host)> service_entry_host;
};

class KubeObjects {
 public:
  // Errors of one object loaded alone.
  using Validate = std::function<std::vector<std::string>(const config::MeshSource& source)>;
  explicit KubeObjects(Validate validate);

  // A watch event: an object of `kind` ("Pod") added or modified, or deleted.
  void Put(const std::string& kind, const std::string& api_version, const std::string& key,
           const boost::json::object& object);
  void Erase(const std::string& kind, const std::string& key);
  // Every object of `kind` is now `objects` (a list, or {} when the resource
  // is not served); the next batch takes the full path.
  void Replace(const std::string& kind, const std::string& api_version, const kube::ObjectMap& objects);
  // The next batch takes the full path (the first sync, a failed apply).
  void RequireFull() { full_ = true; }

  // Every accepted object, in source-name order.
  std::vector<config::MeshSource> Sources() const;
  size_t accepted() const { return accepted_; }
  // What the batch since the last Take* changed when only EndpointSlices and
  // Pods did; nullopt when it needs the full path. Either way the batch ends.
  std::optional<EndpointChange> TakeEndpointChange();
  void EndBatch();

  std::vector<KubeRejected> Rejected() const;
  uint64_t objects_rejected() const { return objects_rejected_; }  // once per version

 private:
  struct Entry {
    std::string kind;
    std::string key;
    config::MeshSource source;
    std::string resource_version;
    std::vector<std::string> errors;  // empty: accepted
  };
  // What the indexes know of an EndpointSlice or Pod.
  struct SliceInfo {
    std::string service;            // "ns/name"; "" without the label
    std::vector<std::string> pods;  // targetRef Pods, "ns/name"
    std::vector<std::string> ips;
  };
  void Index(const Entry& entry, const boost::json::object& object);
  void Unindex(const Entry& entry);
  void Touch(const std::string& kind, const std::string& key, const std::string& name);
  void TouchSlice(const std::string& key);
  void TouchPod(const std::string& key);
  bool PodsReachSelectors() const;
  void AddMiniSources(EndpointChange& change) const;
  const Entry* Accepted(const std::string& kind, const std::string& key) const;

  Validate validate_;
  std::map<std::string, Entry> by_name_;  // by source name
  size_t accepted_ = 0;
  std::set<std::string> rejected_;  // source names
  uint64_t objects_rejected_ = 0;
  // Indexes, over every object (accepted or not).
  std::map<std::string, SliceInfo> slices_;                     // slice "ns/name"
  std::map<std::string, std::set<std::string>> slices_of_service_;
  std::map<std::string, std::set<std::string>> slices_of_pod_;
  std::map<std::string, std::set<std::string>> slices_of_ip_;
  std::map<std::string, std::vector<std::string>> pod_ips_;     // pod "ns/name"
  std::map<std::string, std::set<std::string>> pods_of_ip_;
  std::map<std::string, std::set<std::string>> services_of_ns_;  // with a selector
  std::map<std::string, int> service_entry_hosts_;               // lowercase
  std::map<std::string, int> selector_entry_ns_;  // namespaces with a workloadSelector ServiceEntry
  // The batch.
  bool full_ = true;
  std::set<std::string> touched_;           // source names
  std::set<std::string> services_;          // affected "ns/name"
  std::set<std::string> pod_namespaces_;    // of changed Pods
};

}  // namespace meshgate::kubemesh
