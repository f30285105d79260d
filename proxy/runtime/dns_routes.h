// Keeps DNS-resolved endpoints in the route table. Tracks every name the
// table's DNS clusters need and republishes a resolved table, built on the
// control loop, whenever a base table arrives or an answer changes. Until a
// name first resolves its cluster has no endpoints (sessions end as
// no_endpoints); after that, a failing name keeps its last good answer.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "absl/container/flat_hash_map.h"
#include "config/model/route_table.h"
#include "proxy/runtime/dns_resolver.h"

namespace meshgate::proxy {

class DnsRoutes {
 public:
  using Publish = std::function<void(std::shared_ptr<const config::RouteTable>)>;

  DnsRoutes(boost::asio::io_context& io, DnsResolver& resolver, Publish publish);

  // A new table from config (startup or reload). Publishes it resolved with
  // the answers already known, and tracks exactly the names it needs.
  void SetBase(std::shared_ptr<const config::RouteTable> base);

  // The base table with every DNS cluster's names replaced by their current
  // addresses. Pure; exposed for tests.
  static std::shared_ptr<const config::RouteTable> Resolve(
      const config::RouteTable& base,
      const absl::flat_hash_map<std::string, std::vector<std::string>>& answers);

 private:
  void ScheduleRebuild();
  void Rebuild();

  boost::asio::steady_timer timer_;
  DnsResolver& resolver_;
  Publish publish_;
  std::shared_ptr<const config::RouteTable> base_;
  absl::flat_hash_map<std::string, std::vector<std::string>> answers_;
  absl::flat_hash_map<std::string, DnsResolver::Watch> watches_;
  bool rebuild_pending_ = false;
};

}  // namespace meshgate::proxy
