#include "proxy/session_sweep.h"

#include <algorithm>

namespace meshgate::proxy {

std::chrono::milliseconds SweepTick(const config::RouteTable& table, const DataPathSettings& settings) {
  std::chrono::milliseconds shortest = settings.idle_timeout;
  for (const config::Cluster& cluster : table.clusters()) {
    const auto& pool = cluster.policy.connection_pool;
    if (!pool) continue;
    // 0s is "no idle timeout" for a cluster (see Session::OnConnect).
    if (pool->idle_timeout && pool->idle_timeout->count() > 0) shortest = std::min(shortest, *pool->idle_timeout);
    if (pool->max_connection_duration && pool->max_connection_duration->count() > 0) {
      shortest = std::min(shortest, *pool->max_connection_duration);
    }
  }
  return std::clamp<std::chrono::milliseconds>(shortest / 8, std::chrono::milliseconds(10),
                                               std::chrono::seconds(1));
}

void SessionSweep::Start() { reactor_.Arm(timer_, Reactor::Clock::now() + ctx_.routes->sweep_tick); }

void SessionSweep::OnTick() {
  if (ctx_.live != nullptr) {
    sessions_.assign(ctx_.live->begin(), ctx_.live->end());
    const auto now = std::chrono::steady_clock::now();
    for (Session* session : sessions_) session->CheckIdle(now);
  }
  Start();
}

}  // namespace meshgate::proxy
