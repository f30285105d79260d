// meshgatectl serve's answers: one request in, one HttpResponse out, or
// (a long poll) held on a timer until the document changes.
#include "control/serve_http.h"

#include <algorithm>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/duration.h"
#include "config/kube/kube_source.h"
#include "control/publisher.h"

namespace meshgate::control {

namespace asio = boost::asio;

namespace {

constexpr auto kDefaultWatch = std::chrono::seconds(30);
constexpr size_t kMaxWaiters = 10000;
constexpr char kIndex[] =
    "GET /v1/routes?cluster=NAME, /v1/serviceentries?cluster=NAME, /v1/ca/root-cert.pem[?cluster=NAME], "
    "/v1/ca/cert-chain.pem?cluster=NAME, /v1/kubernetes, /healthz; add &watch=1&version=N[&timeout=SECONDS] to wait for a "
    "newer version\n";

io::HttpResponse Text(int status, std::string body) { return {status, "text/plain; charset=utf-8", std::move(body)}; }

// The kind of document a path asks for ("routes/", ...), "" for none.
std::string KindOf(const std::string& path) {
  if (path == "/v1/routes") return "routes/";
  if (path == "/v1/serviceentries") return "serviceentries/";
  if (path == "/v1/ca/root-cert.pem") return "root-cert/";
  if (path == "/v1/ca/cert-chain.pem") return "cert-chain/";
  return "";
}

io::HttpResponse Answer(const Resource& r, int status = 200) {
  io::HttpResponse response{status, r.content_type, status == 200 ? r.body : ""};
  response.headers = {{"ETag", r.etag}, {"X-Meshgate-Version", std::to_string(r.version)}, {"Cache-Control", "no-cache"}};
  return response;
}

}  // namespace

struct ServeHttp::Waiter {
  std::string key;
  uint64_t version;
  io::HttpResponder respond;
  std::unique_ptr<asio::steady_timer> timer;
};

ServeHttp::ServeHttp(asio::io_context& io, const Publisher& publisher, const ServeSources* sources)
    : io_(io), publisher_(publisher), sources_(sources) {}

ServeHttp::~ServeHttp() = default;

void ServeHttp::Handle(const io::HttpRequest& request, io::HttpResponder respond) {
  if (request.method != "GET") return respond(Text(405, "use GET\n"));
  if (request.path == "/healthz") return respond(Health());
  if (request.path == "/v1/kubernetes") return respond(KubernetesJson());
  const std::string kind = KindOf(request.path);
  // Fixed names only: no part of a request ever becomes a file path.
  if (kind.empty()) return respond(Text(404, absl::StrCat("not found; ", kIndex)));
  std::string cluster = io::QueryValue(request.query, "cluster");
  if (auto refusal = CheckCluster(kind, cluster)) return respond(*std::move(refusal));
  const Resource* r = publisher_.Find(kind + cluster);
  if (r == nullptr && (kind == "routes/" || kind == "serviceentries/")) {
    if (auto syncing = SyncingAnswer(kind, cluster)) return respond(*std::move(syncing));
  }
  if (r == nullptr) {
    const bool ca = kind == "root-cert/" || kind == "cert-chain/";
    return respond(Text(ca ? 404 : 503, ca ? absl::StrCat("cluster ", cluster, " has no CA configured\n")
                                           : absl::StrCat(kind, cluster, " has no valid version yet; see /healthz\n")));
  }
  const std::string watch = io::QueryValue(request.query, "watch");
  if (watch != "1" && watch != "true") {
    const bool same = io::HeaderValue(request.headers, "If-None-Match") == r->etag;
    return respond(Answer(*r, same ? 304 : 200));
  }
  HandleWatch(request, kind + cluster, *r, std::move(respond));
}

void ServeHttp::Wake(const std::string& key) {
  const Resource* r = publisher_.Find(key);
  for (auto it = waiters_.begin(); it != waiters_.end();) {
    if (it->key == key && r->version != it->version) {
      it->timer->cancel();
      it->respond(Answer(*r));
      it = waiters_.erase(it);
    } else {
      ++it;
    }
  }
}

void ServeHttp::ExpireWatches() {
  // Taken out first: a `respond` never sees a half-emptied list.
  std::list<Waiter> expired;
  expired.swap(waiters_);
  for (Waiter& w : expired) {
    w.timer->cancel();
    w.respond(Answer(*publisher_.Find(w.key), 304));
  }
}

// Nothing when `cluster` names a known cluster, else the answer. The root
// is shared, so without ?cluster= any cluster's copy will do.
std::optional<io::HttpResponse> ServeHttp::CheckCluster(const std::string& kind, std::string& cluster) const {
  const auto names = publisher_.cluster_names();
  if (cluster.empty() && kind == "root-cert/") {
    for (const auto& name : names) {
      if (publisher_.Find(kind + name)) {
        cluster = name;
        break;
      }
    }
    if (cluster.empty()) return Text(404, "no cluster has a CA configured (clusters[].ca)\n");
  }
  if (cluster.empty()) return Text(400, "missing ?cluster=NAME\n");
  if (std::find(names.begin(), names.end(), cluster) == names.end()) {
    return Text(404, absl::StrCat("unknown cluster \"", io::EchoForBody(cluster), "\"; known: ",
                                  absl::StrJoin(names, ", "), "\n"));
  }
  return std::nullopt;
}

// watch=1&version=N: answered at once unless N is the current version;
// then held until a change or the timeout.
void ServeHttp::HandleWatch(const io::HttpRequest& request, const std::string& key, const Resource& r,
                            io::HttpResponder respond) {
  uint64_t version = 0;
  if (!absl::SimpleAtoi(io::QueryValue(request.query, "version"), &version)) {
    return respond(Text(400, "watch=1 needs version=N (the X-Meshgate-Version you have)\n"));
  }
  if (version != r.version) return respond(Answer(r));
  auto timeout = WatchTimeout(io::QueryValue(request.query, "timeout"));
  if (!timeout.ok()) return respond(Text(400, std::string(timeout.status().message()) + "\n"));
  if (waiters_.size() >= kMaxWaiters) return respond(Text(503, "too many watchers; retry later\n"));
  Park(key, version, std::move(respond), *timeout);
}

absl::StatusOr<std::chrono::milliseconds> ServeHttp::WatchTimeout(const std::string& text) const {
  const std::chrono::milliseconds cap = publisher_.config().max_watch;
  std::chrono::milliseconds timeout = kDefaultWatch;
  if (!text.empty()) {
    int64_t seconds = 0;
    if (absl::SimpleAtoi(text, &seconds) && seconds > 0) {
      // Capped before the conversion to milliseconds, which overflows int64
      // past 9.2e15 s (serve_http_fuzz: ?timeout=333333333333300000).
      const int64_t cap_seconds = std::chrono::ceil<std::chrono::seconds>(cap).count();
      timeout = seconds >= cap_seconds ? cap : std::chrono::milliseconds(std::chrono::seconds(seconds));
    } else if (auto d = base::ParseDuration(text); d.ok() && d->count() > 0) {
      timeout = *d;
    } else {
      return absl::InvalidArgumentError("timeout must be seconds (30) or a duration (30s)");
    }
  }
  return std::min(timeout, cap);
}

void ServeHttp::Park(const std::string& key, uint64_t version, io::HttpResponder respond,
                     std::chrono::milliseconds timeout) {
  waiters_.push_back({key, version, std::move(respond), std::make_unique<asio::steady_timer>(io_)});
  auto it = std::prev(waiters_.end());
  it->timer->expires_after(timeout);
  it->timer->async_wait([this, it](const boost::system::error_code& ec) {
    if (ec) return;  // woken by a change, and already answered
    it->respond(Answer(*publisher_.Find(it->key), 304));
    waiters_.erase(it);
  });
}

io::HttpResponse ServeHttp::Health() const {
  std::vector<std::string> problems = publisher_.problems();
  const std::vector<std::string> kube = KubeProblems();
  problems.insert(problems.end(), kube.begin(), kube.end());
  std::string body = problems.empty() ? "ok\n" : "ok, serving the last good versions; problems:\n";
  for (const auto& p : problems) absl::StrAppend(&body, "  ", p, "\n");
  if (sources_ != nullptr) {
    for (const auto& [name, s] : sources_->Followed()) {
      if (!s->synced) {
        absl::StrAppend(&body, "cluster ", name, ": kubernetes syncing, nothing published from it yet; pending: ",
                        s->Pending(), "\n");
      } else {
        absl::StrAppend(&body, "cluster ", name, ": kubernetes synced, ", s->objects, " object(s), ",
                        s->rejected.size(), " rejected\n");
      }
    }
  }
  for (const auto& name : publisher_.cluster_names()) {
    for (const char* kind : {"routes/", "serviceentries/", "root-cert/", "cert-chain/"}) {
      if (const Resource* r = publisher_.Find(kind + name)) {
        absl::StrAppend(&body, kind, name, " version ", r->version, " etag ", r->etag, "\n");
      }
    }
  }
  absl::StrAppend(&body, "watchers ", waiters_.size(), "\n");
  if (sources_ != nullptr) {
    if (const std::string dns = sources_->DnsLine(); !dns.empty()) absl::StrAppend(&body, "dns ", dns, "\n");
  }
  return Text(200, std::move(body));
}

// The problems of the API servers followed: sources that could not start,
// objects rejected alone ("Kind ns/name: field: what"), sets refused.
std::vector<std::string> ServeHttp::KubeProblems() const {
  std::vector<std::string> out;
  if (sources_ == nullptr) return out;
  for (const auto& [name, error] : sources_->FollowErrors()) out.push_back(error);
  for (const auto& [name, s] : sources_->Followed()) {
    for (const kubemesh::KubeRejected& r : s->rejected) {
      for (const std::string& e : r.errors) out.push_back(absl::StrCat("cluster ", name, ": kubernetes: rejected ", e));
    }
    if (!s->last_error.empty()) out.push_back(absl::StrCat("cluster ", name, ": kubernetes: ", s->last_error));
  }
  return out;
}

// routes/ and serviceentries/ never published because a cluster they come
// from is still in its first sync: 503 "syncing", with what is pending.
std::optional<io::HttpResponse> ServeHttp::SyncingAnswer(const std::string& kind, const std::string& cluster) const {
  const std::map<std::string, const kubemesh::KubeStatus*> followed =
      sources_ != nullptr ? sources_->Followed() : std::map<std::string, const kubemesh::KubeStatus*>{};
  std::string waiting;
  for (const auto& name : publisher_.cluster_names()) {
    const bool input = kind == "routes/" ? name == cluster : name != cluster;
    if (!input || !publisher_.Syncing(name)) continue;
    auto it = followed.find(name);
    const std::string pending = it == followed.end() ? "its source did not start" : it->second->Pending();
    absl::StrAppend(&waiting, waiting.empty() ? "" : "; ", "cluster ", name, " (pending: ", pending, ")");
  }
  if (waiting.empty()) return std::nullopt;
  return Text(503, absl::StrCat(kind, cluster, " is syncing: waiting for the first complete list of the "
                                "Kubernetes API server of ", waiting, "; see /healthz\n"));
}

// GET /v1/kubernetes: per cluster followed, its KubeStatus exactly as
// meshgate's admin GET /kubernetes shows it; "errors": sources that did not start.
io::HttpResponse ServeHttp::KubernetesJson() const {
  boost::json::object clusters;
  boost::json::object errors;
  if (sources_ != nullptr) {
    for (const auto& [name, s] : sources_->Followed()) clusters[name] = boost::json::parse(kubemesh::KubeStatusJson(*s));
    for (const auto& [name, error] : sources_->FollowErrors()) errors[name] = error;
  }
  boost::json::object root{{"clusters", std::move(clusters)}, {"errors", std::move(errors)}};
  return {200, "application/json", boost::json::serialize(root) + "\n"};
}

}  // namespace meshgate::control
