#include "proxy/runtime/dns_routes.h"

#include <algorithm>

#include "absl/container/flat_hash_set.h"
#include "spdlog/spdlog.h"

namespace meshgate::proxy {
namespace asio = boost::asio;

namespace {
// A burst of answers (startup, a TTL shared by many names) is one rebuild.
constexpr auto kCoalesce = std::chrono::milliseconds(50);

bool HasDns(const config::RouteTable& table) {
  for (const config::Cluster& c : table.clusters()) {
    if (!c.dns_endpoints.empty()) return true;
  }
  return false;
}
}  // namespace

DnsRoutes::DnsRoutes(asio::io_context& io, DnsResolver& resolver, Publish publish)
    : timer_(io), resolver_(resolver), publish_(std::move(publish)) {}

void DnsRoutes::SetBase(std::shared_ptr<const config::RouteTable> base) {
  base_ = std::move(base);
  absl::flat_hash_set<std::string> wanted;
  for (const config::Cluster& c : base_->clusters()) {
    for (const config::Endpoint& e : c.dns_endpoints) wanted.insert(e.hostname);
  }
  // Names no longer needed stop; their answers go with them.
  for (auto it = watches_.begin(); it != watches_.end();) {
    if (wanted.contains(it->first)) {
      ++it;
      continue;
    }
    answers_.erase(it->first);
    watches_.erase(it++);
  }
  for (const std::string& name : wanted) {
    if (watches_.contains(name)) continue;
    watches_[name] = resolver_.Track(name, [this, name](const std::vector<std::string>& addresses) {
      spdlog::info("dns: {} resolved to {} address(es)", name, addresses.size());
      answers_[name] = addresses;
      ScheduleRebuild();
    });
  }
  Rebuild();
}

void DnsRoutes::ScheduleRebuild() {
  if (rebuild_pending_) return;
  rebuild_pending_ = true;
  timer_.expires_after(kCoalesce);
  timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    rebuild_pending_ = false;
    Rebuild();
  });
}

void DnsRoutes::Rebuild() {
  if (!base_) return;
  if (!HasDns(*base_)) return publish_(base_);
  publish_(Resolve(*base_, answers_));
  spdlog::info("dns: route table updated ({} of {} name(s) resolved)", answers_.size(), watches_.size());
}

std::shared_ptr<const config::RouteTable> DnsRoutes::Resolve(
    const config::RouteTable& base,
    const absl::flat_hash_map<std::string, std::vector<std::string>>& answers) {
  std::vector<config::Cluster> clusters(base.clusters().begin(), base.clusters().end());
  for (config::Cluster& c : clusters) {
    for (const config::Endpoint& name : c.dns_endpoints) {
      const auto it = answers.find(name.hostname);
      if (it == answers.end()) continue;
      // DNS_ROUND_ROBIN is Envoy's LOGICAL_DNS: new connections go to the first
      // address of the latest answer (the resolver's own rotation spreads them).
      const size_t take = c.resolution == config::Resolution::kDnsRoundRobin
                              ? std::min<size_t>(1, it->second.size())
                              : it->second.size();
      for (size_t i = 0; i < take; ++i) {
        config::Endpoint resolved = name;  // port, labels, weight, locality carry over
        resolved.address = it->second[i];
        c.endpoints.push_back(std::move(resolved));
      }
    }
  }
  std::vector<config::SniRewrite> rewrites(base.rewrites().begin(), base.rewrites().end());
  return std::make_shared<const config::RouteTable>(std::move(clusters), std::move(rewrites));
}

}  // namespace meshgate::proxy
