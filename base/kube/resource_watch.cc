// List then watch; see resource_watch.h for the API documentation followed.
#include "base/kube/resource_watch.h"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <algorithm>
#include <random>

#include "absl/strings/str_cat.h"

namespace meshgate::kube {

namespace json = boost::json;
using boost::system::error_code;

namespace {

// RFC 3986 section 2.3: everything but unreserved characters is escaped.
std::string QueryEscape(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char ch : text) {
    if (std::isalnum(ch) || ch == '-' || ch == '.' || ch == '_' || ch == '~') {
      out += static_cast<char>(ch);
    } else {
      out += '%';
      out += kHex[ch >> 4];
      out += kHex[ch & 15];
    }
  }
  return out;
}

const json::object* ObjectAt(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  return v != nullptr ? v->if_object() : nullptr;
}

std::string StringAt(const json::object* o, std::string_view key) {
  if (o == nullptr) return "";
  const json::value* v = o->if_contains(key);
  return v != nullptr && v->is_string() ? std::string(v->get_string()) : "";
}

// A metav1.Status: 410 with reason Expired or Gone means "too old".
bool IsGoneStatus(const json::object& status) {
  const json::value* code = status.if_contains("code");
  const std::string reason = StringAt(&status, "reason");
  return (code != nullptr && code->is_int64() && code->get_int64() == 410) || reason == "Expired" ||
         reason == "Gone";
}

// "410 Gone: too old resource version" from a Status body, else the raw code.
std::string DescribeStatus(unsigned code, const std::string& body) {
  error_code ec;
  json::value v = json::parse(body, ec);
  std::string message = !ec && v.is_object() ? StringAt(&v.get_object(), "message") : "";
  if (message.empty()) message = body.substr(0, 200);
  return absl::StrCat("HTTP ", code, message.empty() ? "" : ": ", message);
}

}  // namespace

std::string ResourceRef::Path() const {
  std::string path = group.empty() ? absl::StrCat("/api/", version) : absl::StrCat("/apis/", group, "/", version);
  if (!ns.empty()) absl::StrAppend(&path, "/namespaces/", ns);
  absl::StrAppend(&path, "/", resource);
  return path;
}

std::string ResourceRef::Name() const {
  std::string name = absl::StrCat(resource, ".", version, group.empty() ? "" : ".", group);
  if (!ns.empty()) absl::StrAppend(&name, " in ", ns);
  return name;
}

std::string ObjectKey(const json::object& object) {
  const json::object* meta = ObjectAt(object, "metadata");
  const std::string ns = StringAt(meta, "namespace");
  const std::string name = StringAt(meta, "name");
  return ns.empty() ? name : absl::StrCat(ns, "/", name);
}

std::string_view SyncStateName(SyncState state) {
  switch (state) {
    case SyncState::kSyncing: return "syncing";
    case SyncState::kSynced: return "synced";
    case SyncState::kBackoff: return "backoff";
    case SyncState::kMissing: return "missing";
  }
  return "?";
}

std::string_view EventTypeName(EventType type) {
  switch (type) {
    case EventType::kAdded: return "ADDED";
    case EventType::kModified: return "MODIFIED";
    case EventType::kDeleted: return "DELETED";
  }
  return "?";
}

ResourceWatch::ResourceWatch(std::shared_ptr<ApiClient> client, ResourceRef ref, WatchOptions options,
                             WatchCallbacks callbacks)
    : client_(std::move(client)),
      ref_(std::move(ref)),
      options_(std::move(options)),
      callbacks_(std::move(callbacks)),
      timer_(client_->executor()),
      jitter_(std::random_device{}()) {
  status_.resource = ref_.Name();
}

std::shared_ptr<ResourceWatch> ResourceWatch::Create(std::shared_ptr<ApiClient> client, ResourceRef ref,
                                                     WatchOptions options, WatchCallbacks callbacks) {
  return std::shared_ptr<ResourceWatch>(
      new ResourceWatch(std::move(client), std::move(ref), std::move(options), std::move(callbacks)));
}

void ResourceWatch::Start() { DoList(); }

void ResourceWatch::Stop() {
  stopped_ = true;
  timer_.cancel();
  if (request_) request_->Cancel();
  request_.reset();
}

std::string ResourceWatch::ListTarget() const {
  std::string target = absl::StrCat(ref_.Path(), "?limit=", options_.page_size);
  if (!continue_.empty()) absl::StrAppend(&target, "&continue=", QueryEscape(continue_));
  if (!options_.label_selector.empty()) {
    absl::StrAppend(&target, "&labelSelector=", QueryEscape(options_.label_selector));
  }
  if (!options_.field_selector.empty()) {
    absl::StrAppend(&target, "&fieldSelector=", QueryEscape(options_.field_selector));
  }
  return target;
}

std::string ResourceWatch::WatchTarget() const {
  std::string target = absl::StrCat(ref_.Path(), "?watch=1&allowWatchBookmarks=true&resourceVersion=",
                                    QueryEscape(status_.resource_version),
                                    "&timeoutSeconds=", options_.watch_timeout_seconds);
  if (!options_.label_selector.empty()) {
    absl::StrAppend(&target, "&labelSelector=", QueryEscape(options_.label_selector));
  }
  if (!options_.field_selector.empty()) {
    absl::StrAppend(&target, "&fieldSelector=", QueryEscape(options_.field_selector));
  }
  return target;
}

void ResourceWatch::DoList() {
  if (stopped_) return;
  if (status_.state != SyncState::kMissing) SetState(SyncState::kSyncing);
  request_ = client_->Get(ListTarget(), [self = shared_from_this()](Response r) { self->OnListPage(std::move(r)); });
}

void ResourceWatch::OnListPage(Response response) {
  request_.reset();
  if (stopped_) return;
  if (!response.ok()) return HandleFailure(response, "list");
  error_code ec;
  json::value page = json::parse(response.body, ec);
  const json::array* items = nullptr;
  if (!ec && page.is_object()) {
    const json::value* v = page.get_object().if_contains("items");
    items = v != nullptr ? v->if_array() : nullptr;
  }
  if (items == nullptr) {
    Response bad;
    bad.error = ec ? absl::StrCat("list: malformed JSON: ", ec.message()) : "list: no items array";
    return HandleFailure(bad, "list");
  }
  for (const json::value& item : *items) {
    if (item.is_object() && !ObjectKey(item.get_object()).empty()) listing_[ObjectKey(item.get_object())] = item.get_object();
  }
  const json::object* meta = ObjectAt(page.get_object(), "metadata");
  continue_ = StringAt(meta, "continue");
  if (!continue_.empty()) return DoList();  // the next page
  status_.resource_version = StringAt(meta, "resourceVersion");
  objects_ = std::move(listing_);
  listing_.clear();
  if (status_.lists++ > 0) ++status_.relists;
  status_.objects = objects_.size();
  status_.consecutive_failures = 0;
  status_.warning.clear();
  expired_ = false;
  SetState(SyncState::kSynced);
  if (callbacks_.on_sync) callbacks_.on_sync(objects_);
  DoWatch();
}

void ResourceWatch::DoWatch() {
  if (stopped_) return;
  ++status_.watches;
  lines_this_watch_ = 0;
  const auto idle = std::chrono::seconds(options_.watch_timeout_seconds) + options_.idle_slack;
  auto self = shared_from_this();
  request_ = client_->Watch(
      WatchTarget(), std::chrono::duration_cast<std::chrono::milliseconds>(idle),
      [self](std::string_view line, std::string* why) { return self->OnWatchLine(line, why); },
      [self](Response r) { self->OnWatchEnd(std::move(r)); });
  Report();
}

bool ResourceWatch::OnWatchLine(std::string_view line, std::string* why) {
  if (stopped_) return false;
  if (line.empty()) {  // the stream is open: the watch is established
    status_.watching = true;
    SetState(SyncState::kSynced);
    return true;
  }
  ++lines_this_watch_;
  error_code ec;
  json::value event = json::parse(line, ec);
  json::object* object = nullptr;
  std::string type;
  if (!ec && event.is_object()) {
    type = StringAt(&event.get_object(), "type");
    json::value* o = event.get_object().if_contains("object");
    object = o != nullptr ? o->if_object() : nullptr;
  }
  if (object == nullptr || type.empty()) {
    *why = ec ? absl::StrCat("watch: malformed event line: ", ec.message())
              : "watch: event without a type or an object";
    return false;
  }
  return ApplyEvent(type, *object, why);
}

bool ResourceWatch::ApplyEvent(std::string_view type, json::object& object, std::string* why) {
  if (type == "ERROR") {
    if (IsGoneStatus(object)) expired_ = true;
    *why = absl::StrCat("watch: ERROR event: ", StringAt(&object, "reason"), " ",
                        StringAt(&object, "message"));
    return false;
  }
  const std::string rv = StringAt(ObjectAt(object, "metadata"), "resourceVersion");
  if (type == "BOOKMARK") {
    // "Watch bookmarks": only metadata.resourceVersion is meaningful.
    if (!rv.empty()) status_.resource_version = rv;
    ++status_.bookmarks;
    Report();
    return true;
  }
  EventType t;
  if (type == "ADDED") t = EventType::kAdded;
  else if (type == "MODIFIED") t = EventType::kModified;
  else if (type == "DELETED") t = EventType::kDeleted;
  else {
    *why = absl::StrCat("watch: unknown event type \"", std::string(type), "\"");
    return false;
  }
  const std::string key = ObjectKey(object);
  if (key.empty()) {
    *why = absl::StrCat("watch: ", std::string(type), " event object without metadata.name");
    return false;
  }
  if (t == EventType::kDeleted) objects_.erase(key);
  else objects_[key] = object;
  if (!rv.empty()) status_.resource_version = rv;
  ++status_.events;
  status_.objects = objects_.size();
  status_.consecutive_failures = 0;
  if (callbacks_.on_event) callbacks_.on_event(t, key, object);
  if (!stopped_) Report();
  return !stopped_;
}

void ResourceWatch::OnWatchEnd(Response response) {
  request_.reset();
  status_.watching = false;
  if (stopped_) return;
  if (expired_ || response.status == 410) {
    // "410 Gone": the version we hold is compacted away; start from a list.
    expired_ = false;
    status_.last_error = response.error.empty() ? DescribeStatus(response.status, response.body) : response.error;
    ++status_.errors;
    return DoList();
  }
  if (response.timed_out && response.status == 200) {
    ++status_.watch_timeouts;
    status_.last_error = absl::StrCat("watch silent past its timeout; re-established");
    return DoWatch();
  }
  if (response.ok()) {
    // The server ended the stream (timeoutSeconds, or it went away cleanly):
    // resume from the last version seen. An empty stream counts as a failure
    // so that a server closing at once is not hammered.
    if (lines_this_watch_ > 0) return DoWatch();
    response.error = "watch ended without any event";
  }
  HandleFailure(response, "watch");
}

void ResourceWatch::HandleFailure(const Response& response, const std::string& what) {
  const std::string why = response.error.empty() ? DescribeStatus(response.status, response.body) : response.error;
  status_.last_error = absl::StrCat(what, ": ", why);
  ++status_.errors;
  ++status_.consecutive_failures;
  if (response.status == 401) client_->TokenRejected();
  const bool listing = what == "list" || status_.lists == 0;
  if (listing) {
    listing_.clear();
    continue_.clear();  // an expired continue token (410) restarts the list
  }
  if (response.status == 410) return DoList();
  if (listing && response.status == 404) {
    // A CRD that is not installed: a warning, looked for again now and then.
    status_.warning = absl::StrCat("the server has no ", ref_.Name(), " (", ref_.Path(),
                                   " is 404; CRD not installed?)");
    SetState(SyncState::kMissing);
    return Retry(options_.backoff_max, &ResourceWatch::DoList);
  }
  SetState(SyncState::kBackoff);
  Retry(NextBackoff(), listing ? &ResourceWatch::DoList : &ResourceWatch::DoWatch);
}

// Capped exponential backoff with "equal jitter": half the step fixed, half random.
std::chrono::milliseconds ResourceWatch::NextBackoff() {
  const uint32_t shift = std::min<uint32_t>(status_.consecutive_failures > 0 ? status_.consecutive_failures - 1 : 0, 20);
  const auto step = std::min<int64_t>(options_.backoff_initial.count() << shift, options_.backoff_max.count());
  std::uniform_int_distribution<int64_t> half(0, std::max<int64_t>(step / 2, 0));
  return std::chrono::milliseconds(step - step / 2 + half(jitter_));
}

void ResourceWatch::Retry(std::chrono::milliseconds delay, void (ResourceWatch::*next)()) {
  timer_.expires_after(delay);
  timer_.async_wait([self = shared_from_this(), next](error_code ec) {
    if (ec || self->stopped_) return;
    (self.get()->*next)();
  });
}

void ResourceWatch::SetState(SyncState state) {
  status_.state = state;
  Report();
}

void ResourceWatch::Report() {
  if (callbacks_.on_status && !stopped_) callbacks_.on_status(status_);
}

}  // namespace meshgate::kube
