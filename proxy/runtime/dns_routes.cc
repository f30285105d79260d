#include "proxy/runtime/dns_routes.h"

#include <algorithm>

#include "spdlog/spdlog.h"

namespace meshgate::proxy {
namespace asio = boost::asio;

namespace {
// A burst of answers (startup, a TTL shared by many names) is one rebuild.
constexpr auto kCoalesce = std::chrono::milliseconds(50);

// Every DNS cluster of `base` resolved, the rest shared with it; null when
// `base` has no DNS cluster.
std::shared_ptr<const config::RouteTable> ResolveShared(const config::RouteTable& base,
                                                       const DnsRoutes::Answers& answers) {
  std::shared_ptr<const config::RouteTable> out;
  for (const config::Cluster& c : base.clusters()) {
    if (c.dns_endpoints.empty()) continue;
    out = (out ? *out : base).WithCluster(DnsRoutes::ResolveCluster(c, answers));
  }
  return out;
}
}  // namespace

DnsRoutes::DnsRoutes(asio::io_context& io, DnsResolver& resolver, Publish publish)
    : timer_(io), resolver_(resolver), publish_(std::move(publish)) {}

void DnsRoutes::Track(const config::Cluster& c) {
  for (const config::Endpoint& e : c.dns_endpoints) {
    const std::string name(e.hostname());
    std::vector<std::string>& users = users_[name];
    if (std::find(users.begin(), users.end(), c.name) == users.end()) users.push_back(c.name);
    if (watches_.contains(name)) continue;
    watches_[name] = resolver_.Track(name, [this, name](const std::vector<std::string>& addresses) {
      spdlog::info("dns: {} resolved to {} address(es)", name, addresses.size());
      answers_[name] = addresses;
      answered_.insert(name);
      ScheduleRebuild();
    });
  }
}

void DnsRoutes::SetBase(std::shared_ptr<const config::RouteTable> base) {
  base_ = std::move(base);
  users_.clear();
  for (const config::Cluster& c : base_->clusters()) {
    for (const config::Endpoint& e : c.dns_endpoints) users_[std::string(e.hostname())];
  }
  // Names no longer needed stop; their answers go with them.
  for (auto it = watches_.begin(); it != watches_.end();) {
    if (users_.contains(it->first)) {
      ++it;
      continue;
    }
    answers_.erase(it->first);
    watches_.erase(it++);
  }
  for (const config::Cluster& c : base_->clusters()) Track(c);
  Rebuild();
}

void DnsRoutes::UpdateBase(std::shared_ptr<const config::RouteTable> base, const std::string& name) {
  UpdateBase(std::move(base), std::vector<std::string>{name});
}

void DnsRoutes::UpdateBase(std::shared_ptr<const config::RouteTable> base, const std::vector<std::string>& names) {
  base_ = std::move(base);
  if (!resolved_) return SetBase(base_);
  std::vector<std::shared_ptr<const config::Cluster>> next;
  std::vector<uint32_t> ids;
  next.reserve(names.size());
  ids.reserve(names.size());
  for (const std::string& name : names) {
    const config::Cluster* cluster = base_->FindByName(name);
    if (cluster == nullptr) return SetBase(base_);
    Track(*cluster);  // a name it did not list before starts now; an old one stays until the next base
    // Without DNS names the resolved table holds the base's very object.
    next.push_back(cluster->dns_endpoints.empty()
                       ? base_->cluster_ptr(cluster->id)
                       : std::make_shared<const config::Cluster>(ResolveCluster(*cluster, answers_)));
    ids.push_back(cluster->id);
  }
  if (ids.empty()) return;
  resolved_ = resolved_->WithClusters(std::move(next));
  publish_(resolved_, std::move(ids));
}

void DnsRoutes::ScheduleRebuild() {
  if (rebuild_pending_) return;
  rebuild_pending_ = true;
  timer_.expires_after(kCoalesce);
  timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    rebuild_pending_ = false;
    ApplyAnswers();
  });
}

void DnsRoutes::Rebuild() {
  if (!base_) return;
  answered_.clear();
  std::shared_ptr<const config::RouteTable> next = ResolveShared(*base_, answers_);
  if (!next) {
    resolved_ = base_;
    return publish_(base_, std::nullopt);
  }
  // Clusters whose answers did not change keep the previous object.
  resolved_ = resolved_ ? config::RouteTable::Reuse(*resolved_, *next) : next;
  publish_(resolved_, std::nullopt);
  spdlog::info("dns: route table updated ({} of {} name(s) resolved)", answers_.size(), watches_.size());
}

void DnsRoutes::ApplyAnswers() {
  if (!base_ || !resolved_) return;
  std::vector<uint32_t> changed;
  for (const std::string& name : answered_) {
    const auto users = users_.find(name);
    if (users == users_.end()) continue;
    for (const std::string& cluster_name : users->second) {
      const config::Cluster* base = base_->FindByName(cluster_name);
      const config::Cluster* current = resolved_->FindByName(cluster_name);
      if (base == nullptr || current == nullptr) continue;
      if (std::find(changed.begin(), changed.end(), current->id) != changed.end()) continue;
      config::Cluster next = ResolveCluster(*base, answers_);
      next.id = current->id;
      if (config::SameContent(next, *current)) continue;  // the same answer again
      resolved_ = resolved_->WithCluster(std::move(next));
      changed.push_back(current->id);
    }
  }
  answered_.clear();
  if (changed.empty()) return;  // the same answers again: nothing to publish
  const size_t count = changed.size();
  publish_(resolved_, std::move(changed));
  // Logged once the table is posted to the workers: tests wait on this line.
  spdlog::info("dns: route table updated ({} of {} name(s) resolved; {} cluster(s) changed)", answers_.size(),
               watches_.size(), count);
}

std::shared_ptr<const config::RouteTable> DnsRoutes::Resolve(const config::RouteTable& base,
                                                             const Answers& answers) {
  auto out = ResolveShared(base, answers);
  return out ? out : config::RouteTable::Reuse(base, base);
}

config::Cluster DnsRoutes::ResolveCluster(const config::Cluster& base, const Answers& answers) {
  config::Cluster c = base;
  for (const config::Endpoint& name : base.dns_endpoints) {
    const auto it = answers.find(std::string(name.hostname()));
    if (it == answers.end()) continue;
    // DNS_ROUND_ROBIN is Envoy's LOGICAL_DNS: new connections go to the first
    // address of the latest answer (the resolver's own rotation spreads them).
    const size_t take = c.resolution == config::Resolution::kDnsRoundRobin ? std::min<size_t>(1, it->second.size())
                                                                           : it->second.size();
    for (size_t i = 0; i < take; ++i) {
      config::Endpoint resolved = name;  // port, labels, weight, locality carry over
      resolved.address = it->second[i];
      c.endpoints.push_back(std::move(resolved));
    }
  }
  return c;
}

}  // namespace meshgate::proxy
