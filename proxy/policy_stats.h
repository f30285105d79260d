// Connections refused by AuthorizationPolicy, counted by policy name and kept
// across route table versions, as ClusterStatsRegistry keeps clusters'.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "base/stats.h"
#include "config/model/route_table.h"

namespace meshgate::proxy {

// The name counted when ALLOW policies exist and none matched (Envoy logs
// such a denial as "matched_policy[none]").
inline constexpr std::string_view kNoAllowPolicyMatched = "none";

// Control thread only. Policies come from configuration, so the set of names
// is bounded by it; a name once seen keeps its count.
class PolicyStatsRegistry {
 public:
  // By index into table.authorization().policies(), plus one last entry for
  // kNoAllowPolicyMatched.
  std::vector<std::shared_ptr<base::SharedCounter>> ForTable(const config::RouteTable& table) {
    std::vector<std::shared_ptr<base::SharedCounter>> out;
    for (const config::AuthorizationPolicy& policy : table.authorization().policies()) {
      out.push_back(Get(policy.name));
    }
    out.push_back(Get(std::string(kNoAllowPolicyMatched)));
    return out;
  }
  // (policy name, refusals), sorted by name; "none" only once it counted.
  std::vector<std::pair<std::string, uint64_t>> All() const {
    std::vector<std::pair<std::string, uint64_t>> out;
    for (const auto& [name, counter] : by_name_) {
      if (name == kNoAllowPolicyMatched && counter->value() == 0) continue;
      out.emplace_back(name, counter->value());
    }
    std::sort(out.begin(), out.end());
    return out;
  }

 private:
  std::shared_ptr<base::SharedCounter> Get(const std::string& name) {
    auto& slot = by_name_[name];
    if (!slot) slot = std::make_shared<base::SharedCounter>();
    return slot;
  }
  absl::flat_hash_map<std::string, std::shared_ptr<base::SharedCounter>> by_name_;
};

}  // namespace meshgate::proxy
