#include "config/kube/kube_objects.h"

#include <arpa/inet.h>

#include <algorithm>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include "absl/strings/ascii.h"
#include "config/kube/kube_source.h"
#include "fmt/format.h"
#include "spdlog/spdlog.h"

namespace meshgate::kubemesh {
namespace json = boost::json;

namespace {

const json::object* ObjectAt(const json::object& o, std::string_view field) {
  const json::value* v = o.if_contains(field);
  return v != nullptr && v->is_object() ? &v->as_object() : nullptr;
}
const json::array* ArrayAt(const json::object* o, std::string_view field) {
  if (o == nullptr) return nullptr;
  const json::value* v = o->if_contains(field);
  return v != nullptr && v->is_array() ? &v->as_array() : nullptr;
}
std::string StringAt(const json::object* o, std::string_view field) {
  if (o == nullptr) return "";
  const json::value* v = o->if_contains(field);
  return v != nullptr && v->is_string() ? std::string(v->as_string()) : "";
}

// The IP in the loader's canonical form (inet_ntop), so a Pod's and a
// slice's spelling of one address meet in the index.
std::string CanonicalIp(const std::string& text) {
  unsigned char buf[16];
  char out[INET6_ADDRSTRLEN];
  const int family = text.find(':') != std::string::npos ? AF_INET6 : AF_INET;
  if (inet_pton(family, text.c_str(), buf) != 1 || inet_ntop(family, buf, out, sizeof out) == nullptr) return text;
  return out;
}

std::string NamespaceOf(const std::string& key) {
  const size_t slash = key.find('/');
  return slash == std::string::npos ? "" : key.substr(0, slash);
}


template <typename Map>
void AddTo(Map& map, const std::string& key, const std::string& value) {
  map[key].insert(value);
}
template <typename Map>
void RemoveFrom(Map& map, const std::string& key, const std::string& value) {
  auto it = map.find(key);
  if (it == map.end()) return;
  it->second.erase(value);
  if (it->second.empty()) map.erase(it);
}
void Count(std::map<std::string, int>& counts, const std::string& key, int delta) {
  if ((counts[key] += delta) <= 0) counts.erase(key);
}

}  // namespace

KubeObjects::KubeObjects(Validate validate) : validate_(std::move(validate)) {}

void KubeObjects::Put(const std::string& kind, const std::string& api_version, const std::string& key,
                      const json::object& object) {
  const std::string name = fmt::format("kubernetes {} {}", kind, key);
  std::string text = KubeObjectText(object, api_version, kind);
  auto it = by_name_.find(name);
  if (it != by_name_.end() && it->second.source.text == text) return;  // nothing the loader reads changed
  Touch(kind, key, name);  // before: the old version's Services count too
  if (it != by_name_.end()) {
    Unindex(it->second);
    if (it->second.errors.empty()) --accepted_;
    rejected_.erase(name);
  } else {
    it = by_name_.emplace(name, Entry{kind, key, {}, "", {}}).first;
  }
  Entry& entry = it->second;
  entry.source = config::MeshSource{name, std::move(text), "", /*positions=*/false};
  entry.resource_version = StringAt(ObjectAt(object, "metadata"), "resourceVersion");
  entry.errors = validate_(entry.source);
  if (entry.errors.empty()) {
    ++accepted_;
  } else {
    ++objects_rejected_;
    rejected_.insert(name);
    for (const std::string& e : entry.errors) spdlog::error("kubernetes: rejected {}: {}", name, e);
  }
  Index(entry, object);
  Touch(kind, key, name);  // after: the new version's Services
}

void KubeObjects::Erase(const std::string& kind, const std::string& key) {
  const std::string name = fmt::format("kubernetes {} {}", kind, key);
  auto it = by_name_.find(name);
  if (it == by_name_.end()) return;
  Touch(kind, key, name);
  Unindex(it->second);
  if (it->second.errors.empty()) --accepted_;
  rejected_.erase(name);
  by_name_.erase(it);
}

void KubeObjects::Replace(const std::string& kind, const std::string& api_version, const kube::ObjectMap& objects) {
  const std::string prefix = fmt::format("kubernetes {} ", kind);
  std::vector<std::string> gone;
  for (auto it = by_name_.lower_bound(prefix); it != by_name_.end() && it->first.starts_with(prefix); ++it) {
    if (it->second.kind == kind && !objects.contains(it->second.key)) gone.push_back(it->second.key);
  }
  for (const std::string& key : gone) Erase(kind, key);
  for (const auto& [key, object] : objects) Put(kind, api_version, key, object);
  full_ = true;
}

// Which Services a change of this object reaches; any other kind needs the full path.
void KubeObjects::Touch(const std::string& kind, const std::string& key, const std::string& name) {
  touched_.insert(name);
  if (kind == "EndpointSlice") return TouchSlice(key);
  if (kind == "Pod") return TouchPod(key);
  full_ = true;
}

void KubeObjects::TouchSlice(const std::string& key) {
  auto it = slices_.find(key);
  if (it != slices_.end() && !it->second.service.empty()) services_.insert(it->second.service);
}

void KubeObjects::TouchPod(const std::string& key) {
  pod_namespaces_.insert(NamespaceOf(key));
  std::set<std::string> slices;
  if (auto it = slices_of_pod_.find(key); it != slices_of_pod_.end()) slices = it->second;
  if (auto ips = pod_ips_.find(key); ips != pod_ips_.end()) {
    for (const std::string& ip : ips->second) {
      if (auto it = slices_of_ip_.find(ip); it != slices_of_ip_.end()) slices.insert(it->second.begin(), it->second.end());
    }
  }
  for (const std::string& slice : slices) TouchSlice(slice);
}

void KubeObjects::Index(const Entry& entry, const json::object& object) {
  const json::object* meta = ObjectAt(object, "metadata");
  const json::object* spec = ObjectAt(object, "spec");
  const std::string ns = NamespaceOf(entry.key);
  if (entry.kind == "EndpointSlice") {
    SliceInfo info;
    const std::string service = StringAt(meta != nullptr ? ObjectAt(*meta, "labels") : nullptr, "kubernetes.io/service-name");
    if (!service.empty()) info.service = ns + "/" + service;
    if (const json::array* endpoints = ArrayAt(&object, "endpoints")) {
      for (const json::value& e : *endpoints) {
        if (!e.is_object()) continue;
        const json::object* ref = ObjectAt(e.as_object(), "targetRef");
        if (ref != nullptr && StringAt(ref, "kind") == "Pod" && !StringAt(ref, "name").empty()) {
          info.pods.push_back(ns + "/" + StringAt(ref, "name"));  // the loader reads targetRef in the slice's namespace
        }
        if (const json::array* addresses = ArrayAt(&e.as_object(), "addresses")) {
          for (const json::value& a : *addresses) {
            if (a.is_string()) info.ips.push_back(CanonicalIp(std::string(a.as_string())));
          }
        }
      }
    }
    if (!info.service.empty()) AddTo(slices_of_service_, info.service, entry.key);
    for (const std::string& pod : info.pods) AddTo(slices_of_pod_, pod, entry.key);
    for (const std::string& ip : info.ips) AddTo(slices_of_ip_, ip, entry.key);
    slices_[entry.key] = std::move(info);
  } else if (entry.kind == "Pod") {
    const json::object* status = ObjectAt(object, "status");
    std::vector<std::string> ips;
    if (const std::string ip = StringAt(status, "podIP"); !ip.empty()) ips.push_back(CanonicalIp(ip));
    for (const std::string& ip : ips) AddTo(pods_of_ip_, ip, entry.key);
    pod_ips_[entry.key] = std::move(ips);
  } else if (entry.kind == "Service") {
    if (spec != nullptr && spec->contains("selector")) AddTo(services_of_ns_, ns, entry.key);
  } else if (entry.kind == "ServiceEntry") {
    if (const json::array* hosts = ArrayAt(spec, "hosts")) {
      for (const json::value& h : *hosts) {
        if (h.is_string()) Count(service_entry_hosts_, absl::AsciiStrToLower(std::string(h.as_string())), 1);
      }
    }
    if (spec != nullptr && spec->contains("workloadSelector")) Count(selector_entry_ns_, ns, 1);
  }
}

void KubeObjects::Unindex(const Entry& entry) {
  const std::string ns = NamespaceOf(entry.key);
  if (entry.kind == "EndpointSlice") {
    auto it = slices_.find(entry.key);
    if (it == slices_.end()) return;
    if (!it->second.service.empty()) RemoveFrom(slices_of_service_, it->second.service, entry.key);
    for (const std::string& pod : it->second.pods) RemoveFrom(slices_of_pod_, pod, entry.key);
    for (const std::string& ip : it->second.ips) RemoveFrom(slices_of_ip_, ip, entry.key);
    slices_.erase(it);
  } else if (entry.kind == "Pod") {
    auto it = pod_ips_.find(entry.key);
    if (it == pod_ips_.end()) return;
    for (const std::string& ip : it->second) RemoveFrom(pods_of_ip_, ip, entry.key);
    pod_ips_.erase(it);
  } else if (entry.kind == "Service") {
    RemoveFrom(services_of_ns_, ns, entry.key);
  } else if (entry.kind == "ServiceEntry") {
    // Indexed from the text the entry holds (what Index read).
    boost::system::error_code ec;
    const json::value v = json::parse(entry.source.text, ec);
    if (ec || !v.is_object()) return;
    const json::object* spec = ObjectAt(v.as_object(), "spec");
    if (const json::array* hosts = ArrayAt(spec, "hosts")) {
      for (const json::value& h : *hosts) {
        if (h.is_string()) Count(service_entry_hosts_, absl::AsciiStrToLower(std::string(h.as_string())), -1);
      }
    }
    if (spec != nullptr && spec->contains("workloadSelector")) Count(selector_entry_ns_, ns, -1);
  }
}

std::vector<config::MeshSource> KubeObjects::Sources() const {
  std::vector<config::MeshSource> out;
  out.reserve(accepted_);
  for (const auto& [name, entry] : by_name_) {
    if (entry.errors.empty()) out.push_back(entry.source);
  }
  return out;
}

const KubeObjects::Entry* KubeObjects::Accepted(const std::string& kind, const std::string& key) const {
  auto it = by_name_.find(fmt::format("kubernetes {} {}", kind, key));
  return it != by_name_.end() && it->second.errors.empty() ? &it->second : nullptr;
}

// A changed Pod also reaches, without any slice, a Service of its namespace
// that has a selector but no accepted EndpointSlice (the loader then selects
// Pods itself), and ServiceEntries whose workloadSelector may select it.
bool KubeObjects::PodsReachSelectors() const {
  for (const std::string& ns : pod_namespaces_) {
    if (selector_entry_ns_.contains(ns)) return true;
    auto services = services_of_ns_.find(ns);
    if (services == services_of_ns_.end()) continue;
    for (const std::string& service : services->second) {
      auto slices = slices_of_service_.find(service);
      const bool has_slice = slices != slices_of_service_.end() &&
                             std::any_of(slices->second.begin(), slices->second.end(),
                                         [&](const std::string& s) { return Accepted("EndpointSlice", s) != nullptr; });
      if (!has_slice) return true;
    }
  }
  return false;
}

void KubeObjects::AddMiniSources(EndpointChange& change) const {
  std::set<std::string> names;
  auto add = [&](const Entry* e) {
    if (e != nullptr) names.insert(e->source.name);
  };
  for (const std::string& service : change.services) {
    add(Accepted("Service", service));
    auto slices = slices_of_service_.find(service);
    if (slices == slices_of_service_.end()) continue;
    for (const std::string& slice : slices->second) {
      add(Accepted("EndpointSlice", slice));
      const SliceInfo& info = slices_.at(slice);
      for (const std::string& pod : info.pods) add(Accepted("Pod", pod));
      for (const std::string& ip : info.ips) {
        if (auto pods = pods_of_ip_.find(ip); pods != pods_of_ip_.end()) {
          for (const std::string& pod : pods->second) add(Accepted("Pod", pod));
        }
      }
    }
  }
  for (const char* kind : {"DestinationRule", "Gateway", "Namespace"}) {
    const std::string prefix = fmt::format("kubernetes {} ", kind);
    for (auto it = by_name_.lower_bound(prefix); it != by_name_.end() && it->first.starts_with(prefix); ++it) {
      if (it->second.kind == kind && it->second.errors.empty()) names.insert(it->first);
    }
  }
  for (const std::string& name : names) change.sources.push_back(by_name_.at(name).source);
}

std::optional<EndpointChange> KubeObjects::TakeEndpointChange() {
  const bool pods_changed = !pod_namespaces_.empty();
  if (full_ || (pods_changed && PodsReachSelectors())) {
    EndBatch();
    return std::nullopt;
  }
  EndpointChange change;
  change.services.assign(services_.begin(), services_.end());
  change.pods_changed = pods_changed;
  for (const std::string& name : touched_) {
    auto it = by_name_.find(name);
    if (it != by_name_.end() && it->second.errors.empty()) {
      change.upserted.push_back(it->second.source);
    } else {
      change.removed.push_back(name);
    }
  }
  AddMiniSources(change);
  change.service_entry_host = [this](std::string_view host) {
    return service_entry_hosts_.contains(std::string(host));
  };
  EndBatch();
  return change;
}

void KubeObjects::EndBatch() {
  full_ = false;
  touched_.clear();
  services_.clear();
  pod_namespaces_.clear();
}

std::vector<KubeRejected> KubeObjects::Rejected() const {
  std::vector<KubeRejected> out;
  for (const std::string& name : rejected_) {
    const Entry& entry = by_name_.at(name);
    out.push_back({name, entry.resource_version, entry.errors});
  }
  return out;
}

}  // namespace meshgate::kubemesh
