// Keeps DNS-resolved endpoints in the route table. Tracks every name the
// table's DNS clusters need and republishes a resolved table, built on the
// control loop, whenever a base table arrives or an answer changes. Until a
// name first resolves its cluster has no endpoints (sessions end as
// no_endpoints); after that, a failing name keeps its last good answer.
//
// An answer changes only the clusters that use its name: the next table is
// RouteTable::WithCluster of the one before, so every other cluster, its
// health, stats and balancers, carries over untouched.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "config/model/route_table.h"
#include "proxy/runtime/dns_resolver.h"

namespace meshgate::proxy {

class DnsRoutes {
 public:
  using Answers = absl::flat_hash_map<std::string, std::vector<std::string>>;
  // `changed`: the ids of the only clusters that differ from the table
  // published before; nullopt when any may (a new base).
  using Publish =
      std::function<void(std::shared_ptr<const config::RouteTable>, std::optional<std::vector<uint32_t>> changed)>;

  DnsRoutes(boost::asio::io_context& io, DnsResolver& resolver, Publish publish);

  // A new table from config (startup or reload). Publishes it resolved with
  // the answers already known, and tracks exactly the names it needs.
  void SetBase(std::shared_ptr<const config::RouteTable> base);
  // `base` is the current base with cluster `name` alone changed
  // (RouteTable::WithCluster): re-resolves and publishes that cluster only.
  void UpdateBase(std::shared_ptr<const config::RouteTable> base, const std::string& name);
  // The same for several clusters (RouteTable::WithClusters): one table
  // published for all of them, whatever their number.
  void UpdateBase(std::shared_ptr<const config::RouteTable> base, const std::vector<std::string>& names);

  // The base table with every DNS cluster's names replaced by their current
  // addresses. Pure; exposed for tests.
  static std::shared_ptr<const config::RouteTable> Resolve(const config::RouteTable& base, const Answers& answers);
  // One cluster of the base table with its names replaced by their addresses.
  static config::Cluster ResolveCluster(const config::Cluster& base, const Answers& answers);

 private:
  void Track(const config::Cluster& cluster);
  void ScheduleRebuild();
  void Rebuild();
  // Re-resolves the clusters using the names answered since the last rebuild.
  void ApplyAnswers();

  boost::asio::steady_timer timer_;
  DnsResolver& resolver_;
  Publish publish_;
  std::shared_ptr<const config::RouteTable> base_;
  std::shared_ptr<const config::RouteTable> resolved_;  // published last
  Answers answers_;
  absl::flat_hash_map<std::string, DnsResolver::Watch> watches_;
  // DNS name -> the names of the clusters that list it.
  absl::flat_hash_map<std::string, std::vector<std::string>> users_;
  absl::flat_hash_set<std::string> answered_;  // since the last rebuild
  bool rebuild_pending_ = false;
};

}  // namespace meshgate::proxy
