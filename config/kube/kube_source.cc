#include "config/kube/kube_source.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json/serialize.hpp>

#include <algorithm>
#include <chrono>
#include <map>

#include "base/kube/discovery.h"
#include "fmt/format.h"
#include "spdlog/spdlog.h"

namespace meshgate::kubemesh {
namespace asio = boost::asio;
namespace json = boost::json;
using Clock = std::chrono::steady_clock;

namespace {

// Changes coalesce for this long after the latest one...
constexpr std::chrono::milliseconds kDebounce{50};
// ...but never delay the first by more than this.
constexpr std::chrono::milliseconds kMaxDelay{100};
// An API group that is not served (its CRDs are not installed) is looked up
// again this often, so installing Istio later is picked up.
constexpr std::chrono::seconds kMissingGroupRetry{30};

// One watched resource. `versions` lists the versions to try, preferred
// first, when the group's served versions differ between installs (Istio).
struct Kind {
  std::string group;
  std::vector<std::string> versions;
  std::string resource;
  std::string kind;
};

std::vector<Kind> WatchedKinds() {
  const std::vector<std::string> istio = kube::IstioNetworkingVersions();
  return {
      {"", {"v1"}, "services", "Service"},
      {"", {"v1"}, "pods", "Pod"},
      {"", {"v1"}, "namespaces", "Namespace"},
      {"discovery.k8s.io", {"v1"}, "endpointslices", "EndpointSlice"},
      {"networking.istio.io", istio, "serviceentries", "ServiceEntry"},
      {"networking.istio.io", istio, "workloadentries", "WorkloadEntry"},
      {"networking.istio.io", istio, "destinationrules", "DestinationRule"},
      {"networking.istio.io", istio, "gateways", "Gateway"},
      {"security.istio.io", {"v1", "v1beta1"}, "authorizationpolicies", "AuthorizationPolicy"},
  };
}

absl::StatusOr<kube::Credentials> CredentialsFor(const config::KubernetesConfig& options) {
  if (options.in_cluster) return kube::InClusterCredentials();
  return kube::LoadKubeconfig(options.kubeconfig, {.context = options.context, .allow_insecure = options.allow_insecure});
}

}  // namespace

absl::Status CheckKubeCredentials(const config::KubernetesConfig& options) {
  if (!options.enabled()) return absl::OkStatus();
  return CredentialsFor(options).status();
}

std::string KubeObjectText(json::object object, const std::string& api_version, const std::string& kind) {
  object["apiVersion"] = api_version;
  object["kind"] = kind;
  if (auto* meta = object.if_contains("metadata"); meta != nullptr && meta->is_object()) {
    meta->as_object().erase("managedFields");
  }
  return json::serialize(object);
}

std::string KubeStatus::Pending() const {
  std::string out;
  for (const kube::WatchStatus& r : resources) {
    if (r.lists > 0 || r.state == kube::SyncState::kMissing) continue;
    out += (out.empty() ? "" : ", ") + r.resource;
  }
  return out;
}

struct KubeSource::Impl : std::enable_shared_from_this<Impl> {
  struct Slot {
    Kind kind;
    std::string version;  // resolved; "" while the group is being looked up
    std::shared_ptr<kube::ResourceWatch> watch;
  };
  Impl(asio::io_context& io, Validate validate, Apply apply, ApplyEndpoints apply_endpoints)
      : io(io), timer(io), objects(std::move(validate)), apply(std::move(apply)),
        apply_endpoints(std::move(apply_endpoints)) {}

  void Start();
  void ResolveGroup(const std::string& group);
  void StartWatch(size_t i);
  void MarkGroup(const std::string& group, kube::SyncState state, const std::string& note);
  void OnStatus(size_t i, const kube::WatchStatus& s);
  void Changed(std::string why);
  void Flush();
  bool FlushEndpoints(const std::string& why);
  std::string ApiVersion(size_t i) const;

  asio::io_context& io;
  std::shared_ptr<kube::ApiClient> client;
  asio::steady_timer timer;        // the debounce
  std::map<std::string, std::unique_ptr<asio::steady_timer>> group_timers;  // API groups looked up again
  KubeObjects objects;  // every object, event by event
  Apply apply;
  ApplyEndpoints apply_endpoints;
  bool last_ok = false;  // the last apply installed
  std::vector<Slot> slots;
  KubeStatus status;
  bool armed = false;
  Clock::time_point first_change;
  std::string pending_why;
  size_t pending_changes = 0;
  bool stopped = false;
};

void KubeSource::Impl::Start() {
  std::vector<std::string> groups;
  for (size_t i = 0; i < slots.size(); ++i) {
    if (slots[i].kind.versions.size() == 1) {
      slots[i].version = slots[i].kind.versions.front();
      StartWatch(i);
    } else if (std::find(groups.begin(), groups.end(), slots[i].kind.group) == groups.end()) {
      groups.push_back(slots[i].kind.group);
    }
  }
  for (const std::string& group : groups) ResolveGroup(group);
}

// GET /apis/<group>: the first preferred version served. A group that is not
// served is a warning ("missing", counted as synced and empty), looked up
// again later; a transport failure is retried sooner.
void KubeSource::Impl::ResolveGroup(const std::string& group) {
  std::vector<std::string> preferred;
  for (const Slot& s : slots) {
    if (s.kind.group == group) preferred = s.kind.versions;
  }
  MarkGroup(group, kube::SyncState::kSyncing, "");
  std::weak_ptr<Impl> weak = weak_from_this();
  kube::ResolveGroupVersion(client, group, preferred, [weak, group](absl::StatusOr<std::string> version) {
    auto self = weak.lock();
    if (!self || self->stopped) return;
    if (version.ok()) {
      spdlog::info("kubernetes: {} served as {}", group, *version);
      for (size_t i = 0; i < self->slots.size(); ++i) {
        if (self->slots[i].kind.group != group) continue;
        self->slots[i].version = *version;
        self->StartWatch(i);
      }
      return;
    }
    const bool missing = absl::IsNotFound(version.status());
    const std::string why = std::string(version.status().message());
    spdlog::warn("kubernetes: API group {} {}: {}", group, missing ? "not served (CRDs not installed?)" : "unavailable",
                 why);
    self->MarkGroup(group, missing ? kube::SyncState::kMissing : kube::SyncState::kBackoff, why);
    auto& timer = self->group_timers[group];
    if (!timer) timer = std::make_unique<asio::steady_timer>(self->io);
    timer->expires_after(missing ? std::chrono::milliseconds(kMissingGroupRetry) : std::chrono::seconds(2));
    timer->async_wait([weak, group](const boost::system::error_code& ec) {
      auto again = weak.lock();
      if (!ec && again && !again->stopped) again->ResolveGroup(group);
    });
  });
}

void KubeSource::Impl::MarkGroup(const std::string& group, kube::SyncState state, const std::string& note) {
  const bool was_synced = status.synced;
  for (size_t i = 0; i < slots.size(); ++i) {
    if (slots[i].kind.group != group || slots[i].watch) continue;
    kube::WatchStatus& s = status.resources[i];
    s.state = state;
    if (state == kube::SyncState::kMissing) s.warning = "API group " + group + " not served: " + note;
    if (state == kube::SyncState::kBackoff) s.last_error = "resolving the version of " + group + ": " + note;
  }
  status.synced = status.Pending().empty();
  if (status.synced && !was_synced) Changed("kubernetes: first sync");
}

void KubeSource::Impl::StartWatch(size_t i) {
  Slot& slot = slots[i];
  kube::ResourceRef ref{slot.kind.group, slot.version, slot.kind.resource, ""};
  std::weak_ptr<Impl> weak = weak_from_this();
  const std::string kind = slot.kind.kind;
  kube::WatchCallbacks callbacks;
  callbacks.on_sync = [weak, i](const kube::ObjectMap& objects) {
    if (auto self = weak.lock()) {
      self->objects.Replace(self->slots[i].kind.kind, self->ApiVersion(i), objects);
      self->Changed(fmt::format("kubernetes: {} listed ({} objects)", self->slots[i].watch->ref().Name(),
                                objects.size()));
    }
  };
  callbacks.on_event = [weak, kind, i](kube::EventType type, const std::string& key, const json::object& object) {
    if (auto self = weak.lock()) {
      if (type == kube::EventType::kDeleted) {
        self->objects.Erase(kind, key);
      } else {
        self->objects.Put(kind, self->ApiVersion(i), key, object);
      }
      self->Changed(fmt::format("kubernetes: {} {} {}", kube::EventTypeName(type), kind, key));
    }
  };
  callbacks.on_status = [weak, i](const kube::WatchStatus& s) {
    if (auto self = weak.lock()) self->OnStatus(i, s);
  };
  slot.watch = kube::ResourceWatch::Create(client, ref, kube::WatchOptions{}, std::move(callbacks));
  status.resources[i] = slot.watch->status();
  slot.watch->Start();
}

void KubeSource::Impl::OnStatus(size_t i, const kube::WatchStatus& s) {
  kube::WatchStatus& mine = status.resources[i];
  if (s.state != mine.state) {
    const bool why = !s.last_error.empty() && s.state != kube::SyncState::kSynced;
    spdlog::info("kubernetes: {} {}{}{}", s.resource, kube::SyncStateName(s.state), why ? ": " : "",
                 why ? s.last_error : "");
  }
  const bool went_missing = s.state == kube::SyncState::kMissing && mine.state != kube::SyncState::kMissing;
  if (went_missing) spdlog::warn("kubernetes: {} is not served: {}", s.resource, s.warning);
  mine = s;
  const bool was_synced = status.synced;
  status.synced = status.Pending().empty();
  if (status.synced && !was_synced) {
    Changed("kubernetes: first sync");
  } else if (went_missing && status.synced) {
    objects.Replace(slots[i].kind.kind, "", {});
    Changed("kubernetes: " + s.resource + " no longer served");  // its objects are gone
  }
}

// Coalesces changes: the set is applied 50 ms after the latest change, or
// 100 ms after the first one not yet applied, whichever is sooner.
void KubeSource::Impl::Changed(std::string why) {
  if (stopped) return;
  const Clock::time_point now = Clock::now();
  if (!armed) {
    armed = true;
    first_change = now;
    pending_why = std::move(why);
    pending_changes = 1;
  } else {
    ++pending_changes;
  }
  timer.expires_at(std::min(now + kDebounce, first_change + kMaxDelay));
  std::weak_ptr<Impl> weak = weak_from_this();
  timer.async_wait([weak](const boost::system::error_code& ec) {
    auto self = weak.lock();
    if (ec || !self || self->stopped) return;
    self->Flush();
  });
}

std::string KubeSource::Impl::ApiVersion(size_t i) const {
  const Slot& slot = slots[i];
  return slot.kind.group.empty() ? slot.version : slot.kind.group + "/" + slot.version;
}

void KubeSource::Impl::Flush() {
  armed = false;
  std::string why = pending_why;
  if (pending_changes > 1) why += fmt::format(" (+{} more)", pending_changes - 1);
  // Nothing applies before every resource has its first list: a table with
  // Services but not yet their EndpointSlices would route nowhere.
  if (!status.synced) return;
  ++status.applies;
  status.rejected = objects.Rejected();
  status.objects_rejected = objects.objects_rejected();
  if (FlushEndpoints(why)) return;
  const std::vector<config::MeshSource> sources = objects.Sources();
  status.objects = sources.size();
  ++status.full_rebuilds;
  std::string error = apply(sources, why);
  last_ok = error.empty();
  if (!last_ok) {
    ++status.applies_failed;
    spdlog::error("kubernetes: the cluster's objects do not load together; the last good set keeps serving");
  }
  status.last_error = std::move(error);
}

// The fast path: a batch of EndpointSlice and Pod changes after a good apply
// goes to the runtime as what it changed; true when the runtime installed it.
bool KubeSource::Impl::FlushEndpoints(const std::string& why) {
  if (!apply_endpoints || !last_ok) {
    objects.EndBatch();
    return false;
  }
  std::optional<EndpointChange> change = objects.TakeEndpointChange();
  if (!change) return false;
  if (!apply_endpoints(*change, why)) {
    ++status.endpoint_fallbacks;
    return false;
  }
  ++status.endpoint_updates;
  status.objects = objects.accepted();
  status.last_error.clear();
  return true;
}

absl::StatusOr<std::unique_ptr<KubeSource>> KubeSource::Create(asio::io_context& io,
                                                               const config::KubernetesConfig& options,
                                                               Validate validate, Apply apply,
                                                               ApplyEndpoints apply_endpoints) {
  auto credentials = CredentialsFor(options);
  if (!credentials.ok()) return credentials.status();
  const std::string source = credentials->source;
  auto client = kube::ApiClient::Create(io.get_executor(), *std::move(credentials));
  if (!client.ok()) return client.status();
  auto impl = std::make_shared<Impl>(io, std::move(validate), std::move(apply), std::move(apply_endpoints));
  impl->client = *std::move(client);
  impl->status.source = source;
  for (Kind& kind : WatchedKinds()) {
    kube::WatchStatus s;
    // "pods.v1"; an Istio resource is named without its version until resolved.
    s.resource = kind.versions.size() == 1
                     ? kube::ResourceRef{kind.group, kind.versions.front(), kind.resource, ""}.Name()
                     : kind.resource + "." + kind.group;
    impl->status.resources.push_back(std::move(s));
    impl->slots.push_back({std::move(kind), "", nullptr});
  }
  return std::unique_ptr<KubeSource>(new KubeSource(std::move(impl)));
}

KubeSource::KubeSource(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

KubeSource::~KubeSource() {
  impl_->stopped = true;
  impl_->timer.cancel();
  for (auto& [group, timer] : impl_->group_timers) timer->cancel();
  for (auto& slot : impl_->slots) {
    if (slot.watch) slot.watch->Stop();
  }
}

void KubeSource::Start() { impl_->Start(); }
const KubeStatus& KubeSource::status() const { return impl_->status; }

}  // namespace meshgate::kubemesh
