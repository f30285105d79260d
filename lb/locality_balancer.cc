// Locality-aware balancing, as Istio configures Envoy for a cluster:
//  - distribute: traffic from the gateway's locality is split across target
//    localities by weight;
//  - failover (the default once outlierDetection is set): endpoints get a
//    priority by how near they are (same subzone, zone, region, the failover
//    region, the rest) and traffic goes to the nearest priority, spilling to
//    the next as the nearer one loses healthy endpoints.
// Both scale a locality's share by its health with Envoy's overprovisioning
// factor of 1.4: a group 72% healthy still takes its full share.
#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include "lb/balancer_internal.h"

namespace meshgate::lb {

namespace {

constexpr double kOverprovisioning = 1.4;

struct Locality {
  std::string_view region, zone, subzone;
};

Locality Split(std::string_view text) {
  Locality l;
  const size_t a = text.find('/');
  l.region = text.substr(0, a);
  if (a == std::string_view::npos) return l;
  const size_t b = text.find('/', a + 1);
  l.zone = text.substr(a + 1, b == std::string_view::npos ? std::string_view::npos : b - a - 1);
  if (b != std::string_view::npos) l.subzone = text.substr(b + 1);
  return l;
}

// "us-east", "us-east/*", "us-east/zone1/*", "*" against "us-east/zone1/sub".
bool LocalityMatches(std::string_view pattern, std::string_view locality) {
  if (pattern == "*") return true;
  if (pattern.ends_with("/*")) {
    const std::string_view prefix = pattern.substr(0, pattern.size() - 1);  // keeps the '/'
    return locality.starts_with(prefix) || locality == pattern.substr(0, pattern.size() - 2);
  }
  // A partial locality names everything under it.
  return locality == pattern || (locality.starts_with(pattern) && locality.size() > pattern.size() &&
                                 locality[pattern.size()] == '/');
}

class LocalityBalancer final : public Balancer {
 public:
  struct Group {
    std::vector<uint32_t> members;
    double weight = 1;  // distribute weight; 1 for priorities
    std::unique_ptr<Balancer> inner;
  };

  LocalityBalancer(std::vector<Group> groups, bool priorities)
      : groups_(std::move(groups)), priorities_(priorities), load_(groups_.size(), 0),
        health_(groups_.size(), 0),
        rng_state_(reinterpret_cast<uintptr_t>(this)) {}

  int Pick(const ClusterState& state, const PickContext& ctx) override {
    const uint64_t generation = state.health_generation();
    if (!computed_ || generation != generation_) {
      ComputeLoads(state);
      generation_ = generation;
      computed_ = true;
    }
    // Draw a group by load, then let the policy pick inside it; if it has
    // nothing left for this connection, the other groups in order.
    const double x = static_cast<double>(NextRandom() >> 11) * 0x1.0p-53;
    size_t chosen = 0;
    double acc = 0;
    for (size_t g = 0; g < groups_.size(); ++g) {
      acc += load_[g];
      if (x < acc) {
        chosen = g;
        break;
      }
    }
    if (const int i = groups_[chosen].inner->Pick(state, ctx); i != kNoEndpoint) return i;
    for (size_t g = 0; g < groups_.size(); ++g) {
      if (g == chosen) continue;
      if (const int i = groups_[g].inner->Pick(state, ctx); i != kNoEndpoint) return i;
    }
    return kNoEndpoint;
  }

  const std::vector<double>& loads() const { return load_; }

 private:
  void ComputeLoads(const ClusterState& state) {
    std::vector<double>& health = health_;  // kept: no allocation on the pick path
    for (size_t g = 0; g < groups_.size(); ++g) {
      uint32_t ready = 0, healthy = 0;
      for (uint32_t i : groups_[g].members) {
        ready += state.Ready(i) ? 1 : 0;
        healthy += state.Healthy(i) ? 1 : 0;
      }
      health[g] = ready == 0 ? 0 : std::min(1.0, kOverprovisioning * healthy / ready);
    }
    double total = 0;
    if (priorities_) {
      // Envoy's priority load: each level takes what its health allows, the
      // rest spills to the next; if all together fall short, normalise.
      double sum = 0;
      for (double h : health) sum += h;
      double remaining = 1;
      for (size_t g = 0; g < groups_.size(); ++g) {
        load_[g] = sum < 1 ? (sum > 0 ? health[g] / sum : 0) : std::min(remaining, health[g]);
        remaining -= load_[g];
        total += load_[g];
      }
    } else {
      for (size_t g = 0; g < groups_.size(); ++g) total += load_[g] = groups_[g].weight * health[g];
      if (total > 0) {
        for (double& l : load_) l /= total;
      }
    }
    if (total <= 0) {  // nothing healthy anywhere: the nearest (or first) group, in panic
      std::fill(load_.begin(), load_.end(), 0);
      load_[0] = 1;
    }
  }

  uint64_t NextRandom() {
    uint64_t x = (rng_state_ += 0x9e3779b97f4a7c15ULL);
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
  }

  std::vector<Group> groups_;
  bool priorities_;
  std::vector<double> load_;
  std::vector<double> health_;
  bool computed_ = false;
  uint64_t generation_ = 0;
  uint64_t rng_state_;
};

}  // namespace

std::unique_ptr<Balancer> MakeLocalityBalancer(const config::Cluster& cluster,
                                               const BalancerOptions& options) {
  if (options.locality.empty() || cluster.endpoints.empty()) return nullptr;
  const auto& lb = cluster.policy.load_balancer;
  const config::LocalityLbSetting* setting = lb && lb->locality ? &*lb->locality : nullptr;
  if (setting != nullptr && setting->enabled == false) return nullptr;

  std::vector<LocalityBalancer::Group> groups;
  // distribute: the first rule whose `from` matches the gateway.
  if (setting != nullptr) {
    for (const config::LocalityLbSetting::Distribute& rule : setting->distribute) {
      if (!LocalityMatches(rule.from, options.locality)) continue;
      std::vector<bool> taken(cluster.endpoints.size(), false);
      for (const auto& [to, weight] : rule.to) {
        LocalityBalancer::Group group;
        group.weight = weight;
        for (size_t i = 0; i < cluster.endpoints.size(); ++i) {
          if (taken[i] || !LocalityMatches(to, cluster.endpoints[i].locality())) continue;
          taken[i] = true;
          group.members.push_back(static_cast<uint32_t>(i));
        }
        if (!group.members.empty() && weight > 0) groups.push_back(std::move(group));
      }
      if (groups.empty()) return nullptr;  // nothing matches: plain balancing
      for (auto& g : groups) g.inner = MakeMemberBalancer(cluster, g.members);
      return std::make_unique<LocalityBalancer>(std::move(groups), /*priorities=*/false);
    }
  }
  // failover: Istio applies it only to clusters with outlier detection.
  if (!cluster.policy.outlier_detection) return nullptr;
  const Locality self = Split(options.locality);
  std::string_view failover_region;
  if (setting != nullptr) {
    for (const auto& f : setting->failover) {
      if (f.from == self.region) failover_region = f.to;
    }
  }
  constexpr int kLevels = 5;
  std::vector<std::vector<uint32_t>> levels(kLevels);
  for (size_t i = 0; i < cluster.endpoints.size(); ++i) {
    const Locality l = Split(cluster.endpoints[i].locality());
    int level = 4;
    if (!l.region.empty() && l.region == self.region) {
      level = l.zone == self.zone ? (l.subzone == self.subzone ? 0 : 1) : 2;
    } else if (!failover_region.empty() && l.region == failover_region) {
      level = 3;
    }
    levels[level].push_back(static_cast<uint32_t>(i));
  }
  for (auto& members : levels) {
    if (members.empty()) continue;
    LocalityBalancer::Group group;
    group.members = std::move(members);
    group.inner = MakeMemberBalancer(cluster, group.members);
    groups.push_back(std::move(group));
  }
  if (groups.size() < 2) return nullptr;  // one level: locality changes nothing
  return std::make_unique<LocalityBalancer>(std::move(groups), /*priorities=*/true);
}

}  // namespace meshgate::lb
