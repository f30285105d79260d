// A connection's claim on its upstream cluster, as one handle (Envoy's
// resource manager): a slot of connectionPool.tcp.maxConnections from
// creation, plus the picked endpoint's active count while it is tried or
// used; the connect outcome goes to outlier detection through it, and the
// destructor gives back whatever is still held. Nothing for the caller to
// undo by hand.
#pragma once

#include <cstdint>

#include "config/model/traffic_policy.h"
#include "lb/cluster_state.h"

namespace meshgate::lb {

class UpstreamLease {
 public:
  // Holds nothing.
  UpstreamLease() = default;
  // A slot in `cluster` unless `max_connections` are open: an empty lease then.
  static UpstreamLease TryAcquire(ClusterState& cluster, uint32_t max_connections);

  UpstreamLease(UpstreamLease&& other) noexcept { *this = std::move(other); }
  UpstreamLease& operator=(UpstreamLease&& other) noexcept;
  UpstreamLease(const UpstreamLease&) = delete;
  UpstreamLease& operator=(const UpstreamLease&) = delete;
  ~UpstreamLease() { Reset(); }

  // Holds a cluster slot.
  explicit operator bool() const { return cluster_ != nullptr; }
  // The endpoint counted as this connection's, or -1.
  int endpoint() const { return endpoint_; }

  // Counts endpoint `i` as this connection's (giving back the one before, as
  // on a retry). Needs a slot.
  void Pick(uint32_t i);
  // The connect to the picked endpoint succeeded: its failure streak ends,
  // and it counts one more connection opened. The endpoint stays counted.
  void OnConnected();
  // The connect failed or timed out: the endpoint is given back and, when
  // the cluster has outlier detection (`od` not null), the failure counts
  // towards ejecting it. True when this failure ejected it (log it once).
  bool OnConnectFailed(const config::OutlierDetection* od, int64_t now_ns);
  // Gives back the endpoint without a verdict (it was never tried).
  void ReleaseEndpoint();
  // Gives back the endpoint, then the slot.
  void Reset();

 private:

  ClusterState* cluster_ = nullptr;  // null: no slot held
  int endpoint_ = -1;                // counted in endpoint(i).active
};

}  // namespace meshgate::lb
