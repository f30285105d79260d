// List then watch one Kubernetes resource, the way the API documents it
// ("API Concepts", https://kubernetes.io/docs/reference/using-api/api-concepts/):
// - a paginated list ("Retrieving large results sets in chunks": limit and
//   continue), whose metadata.resourceVersion starts the watch;
// - a watch ("Efficient detection of changes"): watch=1, resourceVersion,
//   allowWatchBookmarks=true ("Watch bookmarks"), timeoutSeconds; a chunked
//   stream of {"type": ADDED|MODIFIED|DELETED|BOOKMARK|ERROR, "object": ...};
// - resuming from the last resourceVersion seen, bookmarks included, when a
//   stream ends; "410 Gone" (the HTTP status, or an ERROR event whose Status
//   has code 410 / reason Expired or Gone) means the version is too old, so
//   the resource is listed again ("Resource versions", "410 Gone responses").
// Other failures back off exponentially (capped, jittered). A watch silent
// past its timeout (plus slack) is re-established. A 404 on the list (a CRD
// not installed) is a warning state, retried at the backoff cap.
//
// Runs on the ApiClient's executor (the caller's control thread); no threads.
#pragma once

#include <boost/asio/steady_timer.hpp>
#include <boost/json/object.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <string_view>

#include "base/kube/api_client.h"

namespace meshgate::kube {

// group/version/resource, optionally in one namespace.
struct ResourceRef {
  std::string group;     // "" for the core group
  std::string version;   // "v1"
  std::string resource;  // plural, lower case: "pods", "endpointslices"
  std::string ns;        // "" for all namespaces (or cluster-scoped)

  // "/api/v1/namespaces/ns/pods", "/apis/discovery.k8s.io/v1/endpointslices"
  std::string Path() const;
  // "pods.v1", "endpointslices.v1.discovery.k8s.io" (+ " in ns")
  std::string Name() const;
};

// Objects by "namespace/name" (or "name" when cluster-scoped).
using ObjectMap = std::map<std::string, boost::json::object>;
std::string ObjectKey(const boost::json::object& object);

enum class SyncState {
  kSyncing,  // listing, or watching before the first complete list
  kSynced,   // listed, watching
  kBackoff,  // waiting to retry after an error
  kMissing,  // the server has no such resource (404): a warning, retried
};
std::string_view SyncStateName(SyncState state);

// For an admin page (/kubernetes): one per resource.
struct WatchStatus {
  std::string resource;  // ResourceRef::Name()
  SyncState state = SyncState::kSyncing;
  std::string resource_version;  // the last one seen (list, event or bookmark)
  uint64_t lists = 0;            // complete lists
  uint64_t relists = 0;          // complete lists after the first
  uint64_t watches = 0;          // watch requests made
  bool watching = false;         // a watch stream is open (200 received)
  uint64_t events = 0;           // ADDED/MODIFIED/DELETED applied
  uint64_t bookmarks = 0;
  uint64_t watch_timeouts = 0;   // silent watches re-established
  uint64_t errors = 0;
  uint32_t consecutive_failures = 0;
  size_t objects = 0;
  std::string last_error;
  std::string warning;  // kMissing: why
};

enum class EventType { kAdded, kModified, kDeleted };
std::string_view EventTypeName(EventType type);

struct WatchOptions {
  uint32_t page_size = 500;  // list limit
  uint32_t watch_timeout_seconds = 300;  // the server ends a watch after this
  std::chrono::milliseconds idle_slack{15'000};  // silence allowed past it
  std::chrono::milliseconds backoff_initial{500};
  std::chrono::milliseconds backoff_max{30'000};
  std::string label_selector;
  std::string field_selector;
};

struct WatchCallbacks {
  // The whole state after each complete (re)list.
  std::function<void(const ObjectMap& objects)> on_sync;
  // One change applied to the state (DELETED carries the last object seen).
  std::function<void(EventType type, const std::string& key, const boost::json::object& object)> on_event;
  // After every state change, error and resourceVersion move.
  std::function<void(const WatchStatus& status)> on_status;
};

class ResourceWatch : public std::enable_shared_from_this<ResourceWatch> {
 public:
  static std::shared_ptr<ResourceWatch> Create(std::shared_ptr<ApiClient> client, ResourceRef ref,
                                               WatchOptions options, WatchCallbacks callbacks);
  void Start();
  // Cancels the request in flight and the timer; no callback runs after it.
  void Stop();

  const WatchStatus& status() const { return status_; }
  const ObjectMap& objects() const { return objects_; }
  const ResourceRef& ref() const { return ref_; }

 private:
  ResourceWatch(std::shared_ptr<ApiClient> client, ResourceRef ref, WatchOptions options,
                WatchCallbacks callbacks);

  void DoList();
  void OnListPage(Response response);
  void DoWatch();
  bool OnWatchLine(std::string_view line, std::string* why);
  void OnWatchEnd(Response response);
  bool ApplyEvent(std::string_view type, boost::json::object& object, std::string* why);

  // Failures: 410 → relist now; 404 on the list → missing; else back off.
  void HandleFailure(const Response& response, const std::string& what);
  void Retry(std::chrono::milliseconds delay, void (ResourceWatch::*next)());
  std::chrono::milliseconds NextBackoff();
  void SetState(SyncState state);
  void Report();
  std::string ListTarget() const;
  std::string WatchTarget() const;

  std::shared_ptr<ApiClient> client_;
  ResourceRef ref_;
  WatchOptions options_;
  WatchCallbacks callbacks_;
  boost::asio::steady_timer timer_;
  std::shared_ptr<Request> request_;
  WatchStatus status_;
  ObjectMap objects_;
  ObjectMap listing_;         // pages of the list in progress
  std::string continue_;      // the list's continue token
  bool expired_ = false;      // the watch saw 410: relist
  bool stopped_ = false;
  uint64_t lines_this_watch_ = 0;
  std::minstd_rand jitter_;
};

}  // namespace meshgate::kube
