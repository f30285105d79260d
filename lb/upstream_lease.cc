#include "lb/upstream_lease.h"

#include <utility>

namespace meshgate::lb {

UpstreamLease UpstreamLease::TryAcquire(ClusterState& cluster, uint32_t max_connections) {
  UpstreamLease lease;
  if (cluster.TryAcquire(max_connections)) lease.cluster_ = &cluster;
  return lease;
}

UpstreamLease& UpstreamLease::operator=(UpstreamLease&& other) noexcept {
  if (this != &other) {
    Reset();
    cluster_ = std::exchange(other.cluster_, nullptr);
    endpoint_ = std::exchange(other.endpoint_, -1);
  }
  return *this;
}

void UpstreamLease::Pick(uint32_t i) {
  ReleaseEndpoint();
  cluster_->endpoint(i).active.fetch_add(1, std::memory_order_relaxed);
  endpoint_ = static_cast<int>(i);
}

void UpstreamLease::OnConnected() {
  cluster_->OnConnectSuccess(endpoint_);
  cluster_->endpoint(endpoint_).total.fetch_add(1, std::memory_order_relaxed);
}

bool UpstreamLease::OnConnectFailed(const config::OutlierDetection* od, int64_t now_ns) {
  const int i = endpoint_;
  ReleaseEndpoint();
  return od != nullptr && cluster_->OnConnectFailure(i, *od, now_ns) == HealthChange::kEjected;
}

void UpstreamLease::ReleaseEndpoint() {
  if (endpoint_ < 0) return;
  cluster_->endpoint(endpoint_).active.fetch_sub(1, std::memory_order_relaxed);
  endpoint_ = -1;
}

void UpstreamLease::Reset() {
  if (cluster_ == nullptr) return;
  ReleaseEndpoint();
  cluster_->Release();
  cluster_ = nullptr;
}

}  // namespace meshgate::lb
