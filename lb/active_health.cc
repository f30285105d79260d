#include "lb/active_health.h"

#include "base/names.h"

namespace meshgate::lb {

ActiveHealthChecks::~ActiveHealthChecks() { ReleaseVerdicts(); }

void ActiveHealthChecks::ReleaseVerdicts() {
  for (const auto& target : targets_) {
    if (!target->failed_) continue;
    for (auto& [state, index] : target->endpoints_) state->SetCheckFailed(index, false);
  }
}

void ActiveHealthChecks::SetSpecs(std::vector<HealthCheckSpec> specs) {
  ReleaseVerdicts();
  specs_ = std::move(specs);
}

const HealthCheckSpec* ActiveHealthChecks::SpecFor(const config::Cluster& cluster) const {
  for (const HealthCheckSpec& spec : specs_) {
    if ((spec.port == 0 || spec.port == cluster.port) && base::HostMatches(spec.host, cluster.host)) {
      return &spec;
    }
  }
  return nullptr;
}

void ActiveHealthChecks::SetTable(const config::RouteTable& table, std::shared_ptr<HealthTable> health) {
  absl::flat_hash_map<std::string, std::shared_ptr<HealthCheckTarget>> next;
  std::vector<std::shared_ptr<HealthCheckTarget>> order;
  for (const config::Cluster& cluster : table.clusters()) {
    const HealthCheckSpec* spec = SpecFor(cluster);
    if (spec == nullptr) continue;
    ClusterState& state = health->cluster(cluster.id);
    for (size_t i = 0; i < cluster.endpoints.size(); ++i) {
      const config::Endpoint& e = cluster.endpoints[i];
      auto& target = next[e.address + ":" + std::to_string(e.port)];
      if (!target) {
        target = std::make_shared<HealthCheckTarget>();
        target->address_ = e.address;
        target->port_ = e.port;
        target->spec_ = *spec;  // the first cluster listing it decides
        target->health_ = health;
        order.push_back(target);
      }
      const bool same_cluster = !target->endpoints_.empty() && target->endpoints_.back().first == &state;
      if (!same_cluster) target->clusters_ += (target->clusters_.empty() ? "" : ", ") + cluster.name;
      target->endpoints_.emplace_back(&state, static_cast<uint32_t>(i));
    }
  }
  for (auto& [key, target] : next) {
    // A verdict outlives the table version it was reached on.
    const auto old = by_key_.find(key);
    if (old == by_key_.end()) continue;
    target->failed_ = old->second->failed_;
    target->successes_ = old->second->successes_;
    target->failures_ = old->second->failures_;
    for (auto& [state, index] : target->endpoints_) state->SetCheckFailed(index, target->failed_);
  }
  by_key_ = std::move(next);
  targets_ = std::move(order);
}

CheckTransition ActiveHealthChecks::OnProbeResult(HealthCheckTarget& target, bool ok) {
  if (!ok) {
    stats_.failures.Inc();
    target.successes_ = 0;
    if (!target.failed_ && ++target.failures_ >= target.spec_.unhealthy_threshold) {
      Apply(target, true);
      return CheckTransition::kFailed;
    }
    return CheckTransition::kNone;
  }
  target.failures_ = 0;
  if (target.failed_ && ++target.successes_ >= target.spec_.healthy_threshold) {
    Apply(target, false);
    return CheckTransition::kPassed;
  }
  return CheckTransition::kNone;
}

void ActiveHealthChecks::Apply(HealthCheckTarget& target, bool failed) {
  target.failed_ = failed;
  target.successes_ = target.failures_ = 0;
  stats_.transitions.Inc();
  for (auto& [state, index] : target.endpoints_) state->SetCheckFailed(index, failed);
}

}  // namespace meshgate::lb
