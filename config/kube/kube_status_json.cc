// KubeStatus as JSON: meshgate's admin GET /kubernetes and meshgatectl
// serve's GET /v1/kubernetes show the same fields.
#include <boost/json.hpp>

#include "config/kube/kube_source.h"

namespace meshgate::kubemesh {
namespace json = boost::json;

namespace {

json::object WatchStatusJson(const kube::WatchStatus& w) {
  json::object out;
  out["resource"] = w.resource;
  out["state"] = kube::SyncStateName(w.state);
  out["resource_version"] = w.resource_version;
  out["lists"] = w.lists;
  out["relists"] = w.relists;
  out["watches"] = w.watches;
  out["watching"] = w.watching;
  out["events"] = w.events;
  out["bookmarks"] = w.bookmarks;
  out["watch_timeouts"] = w.watch_timeouts;
  out["errors"] = w.errors;
  out["consecutive_failures"] = w.consecutive_failures;
  out["objects"] = w.objects;
  out["last_error"] = w.last_error;
  out["warning"] = w.warning;
  return out;
}

}  // namespace

std::string KubeStatusJson(const KubeStatus& status) {
  json::object root;
  root["source"] = status.source;
  root["synced"] = status.synced;
  root["pending"] = status.Pending();
  root["applies"] = status.applies;
  root["applies_failed"] = status.applies_failed;
  root["objects"] = status.objects;
  root["objects_rejected"] = status.objects_rejected;
  root["last_error"] = status.last_error;
  root["endpoint_updates"] = status.endpoint_updates;
  root["full_rebuilds"] = status.full_rebuilds;
  root["endpoint_fallbacks"] = status.endpoint_fallbacks;
  json::array resources;
  for (const kube::WatchStatus& w : status.resources) resources.push_back(WatchStatusJson(w));
  root["resources"] = std::move(resources);
  json::array rejected;
  for (const KubeRejected& r : status.rejected) {
    json::array errors;
    for (const std::string& e : r.errors) errors.push_back(json::string(e));
    rejected.push_back(json::object{{"name", r.name}, {"resource_version", r.resource_version}, {"errors", errors}});
  }
  root["rejected"] = std::move(rejected);
  return json::serialize(root);
}

}  // namespace meshgate::kubemesh
