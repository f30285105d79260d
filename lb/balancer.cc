#include "lb/balancer.h"
#include "lb/balancer_internal.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <utility>
#include <vector>

namespace meshgate::lb {

namespace {

using Simple = config::LoadBalancerPolicy::Simple;
using Algorithm = config::ConsistentHashLb::Algorithm;

uint64_t Mix(uint64_t x) {  // 64-bit finalizer (splitmix64)
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

// The endpoints a balancer chooses among: all of a cluster's, or one locality's.
struct Members {
  const config::Cluster* cluster;
  std::vector<uint32_t> index;  // into cluster->endpoints
};

bool Tried(std::span<const uint32_t> tried, size_t i) {
  return std::find(tried.begin(), tried.end(), static_cast<uint32_t>(i)) != tried.end();
}

bool Eligible(const ClusterState& state, bool panic, std::span<const uint32_t> tried, size_t i) {
  return state.Usable(i, panic) && !Tried(tried, i);
}

// Per-balancer random stream: the worker's own, no shared state.
class Random {
 public:
  explicit Random(uint64_t seed) : state_(seed) {}
  uint64_t Next() { return Mix(state_ += 0x9e3779b97f4a7c15ULL); }
  // Uniform in [0, n) (Lemire's multiply-shift; the tiny bias is irrelevant here).
  uint64_t Below(uint64_t n) {
    return static_cast<uint64_t>((static_cast<unsigned __int128>(Next()) * n) >> 64);
  }

 private:
  uint64_t state_;
};

bool EqualWeights(const Members& m) {
  for (uint32_t i : m.index) {
    if (m.cluster->endpoints[i].weight != m.cluster->endpoints[m.index.front()].weight) return false;
  }
  return true;
}

uint32_t Weight(const config::Endpoint& e) { return std::max<uint32_t>(e.weight, 1); }

std::string EndpointKey(const config::Endpoint& e) {
  return e.address + ":" + std::to_string(e.port);
}

// When no eligible endpoint was found the fast way: one linear pass over the
// members from a given position (taken only in rare states).
int Scan(const ClusterState& state, bool panic, std::span<const uint32_t> tried, const Members& m,
         size_t start) {
  const size_t n = m.index.size();
  for (size_t step = 0; step < n; ++step) {
    const uint32_t i = m.index[(start + step) % n];
    if (Eligible(state, panic, tried, i)) return static_cast<int>(i);
  }
  return kNoEndpoint;
}

// --- ROUND_ROBIN ----------------------------------------------------------------------
// Smooth weighted round robin as earliest-deadline-first (Envoy's approach):
// each pick goes to the earliest deadline, which then advances by 1/weight, so
// heavy and light endpoints interleave instead of running in bursts.
//
// Endpoints of equal weight are one group: a group of k endpoints of weight w
// is scheduled as one entry of weight k*w that rotates through its members.
// The schedule is the same, and the heap holds one entry per distinct weight
// (one entry in all when weights are equal, the common case), so a pick costs
// O(log d) for d distinct weights instead of O(log n).
class RoundRobinBalancer final : public Balancer {
 public:
  explicit RoundRobinBalancer(Members members) : members_(std::move(members)), n_(members_.index.size()) {
    std::vector<std::pair<uint32_t, uint32_t>> by_weight;  // (weight, endpoint)
    for (uint32_t i : members_.index) {
      by_weight.emplace_back(Weight(members_.cluster->endpoints[i]), i);
    }
    std::stable_sort(by_weight.begin(), by_weight.end(),
                     [](const auto& a, const auto& b) { return a.first > b.first; });
    for (size_t i = 0; i < by_weight.size(); ++i) {
      if (i == 0 || by_weight[i].first != by_weight[i - 1].first) groups_.emplace_back();
      groups_.back().members.push_back(by_weight[i].second);
      groups_.back().weight = by_weight[i].first;
    }
    for (size_t g = 0; g < groups_.size(); ++g) {
      Group& group = groups_[g];
      group.step = 1.0 / (static_cast<double>(group.weight) * group.members.size());
      // Staggered first deadlines, so groups don't all come due together.
      const double phase = (static_cast<double>(g) + 0.5) / static_cast<double>(groups_.size());
      heap_.push_back({group.step * phase, static_cast<uint32_t>(g)});
    }
    std::sort(heap_.begin(), heap_.end(), Earlier);  // a sorted array is a valid heap
  }

  int Pick(const ClusterState& state, const PickContext& ctx) override {
    if (n_ == 0) return kNoEndpoint;
    const bool panic = state.Panic();
    if (!ctx.tried.empty()) {
      // A retry leaves the schedule alone: it must not pull the next
      // connection back onto the endpoint that just failed, nor skip anyone.
      // With one group (equal weights) its order is the members' order.
      return Scan(state, panic, ctx.tried, members_, groups_.size() == 1 ? groups_[0].next : 0);
    }
    for (size_t step = 0; step < n_; ++step) {
      Group& group = groups_[heap_[0].group];
      const uint32_t i = group.members[group.next];
      group.next = group.next + 1 == group.members.size() ? 0 : group.next + 1;
      heap_[0].deadline += group.step;
      if (heap_.size() > 1) SiftDown();
      // An endpoint that can't be used loses its turn.
      if (Eligible(state, panic, ctx.tried, i)) return static_cast<int>(i);
    }
    return kNoEndpoint;
  }

 private:
  struct Group {
    uint32_t weight = 1;
    double step = 1;
    size_t next = 0;
    std::vector<uint32_t> members;
  };
  struct Entry {
    double deadline;
    uint32_t group;
  };
  static bool Earlier(const Entry& a, const Entry& b) {
    return a.deadline < b.deadline || (a.deadline == b.deadline && a.group < b.group);
  }

  // 4-ary min-heap: the root moved later, sift it down.
  void SiftDown() {
    const size_t n = heap_.size();
    const Entry moving = heap_[0];
    size_t at = 0;
    for (;;) {
      const size_t first = 4 * at + 1;
      if (first >= n) break;
      size_t best = first;
      const size_t last = std::min(first + 4, n);
      for (size_t c = first + 1; c < last; ++c) {
        if (Earlier(heap_[c], heap_[best])) best = c;
      }
      if (!Earlier(heap_[best], moving)) break;
      heap_[at] = heap_[best];
      at = best;
    }
    heap_[at] = moving;
  }

  Members members_;
  size_t n_;
  std::vector<Group> groups_;
  std::vector<Entry> heap_;
};

// --- RANDOM and LEAST_REQUEST ----------------------------------------------------------
// Weighted draws by binary search over cumulative weights (a plain index when
// weights are equal).
class WeightedDraw {
 public:
  explicit WeightedDraw(Members members) : members_(std::move(members)), equal_(EqualWeights(members_)) {
    if (equal_) return;
    uint64_t sum = 0;
    for (uint32_t i : members_.index) cumulative_.push_back(sum += Weight(members_.cluster->endpoints[i]));
  }
  // An endpoint index, drawn by weight.
  uint32_t Draw(Random& rng) const {
    if (equal_) return members_.index[rng.Below(members_.index.size())];
    const uint64_t x = rng.Below(cumulative_.back());
    return members_.index[std::upper_bound(cumulative_.begin(), cumulative_.end(), x) -
                          cumulative_.begin()];
  }
  size_t size() const { return members_.index.size(); }
  const Members& members() const { return members_; }

 private:
  Members members_;
  bool equal_;
  std::vector<uint64_t> cumulative_;
};

// A few draws find an eligible endpoint unless most are out, and then the
// cluster is in panic or nearly empty: fall back to a scan.
constexpr int kDraws = 8;

class RandomBalancer final : public Balancer {
 public:
  explicit RandomBalancer(Members members)
      : draw_(std::move(members)), rng_(reinterpret_cast<uintptr_t>(this)) {}

  int Pick(const ClusterState& state, const PickContext& ctx) override {
    if (draw_.size() == 0) return kNoEndpoint;
    const bool panic = state.Panic();
    for (int attempt = 0; attempt < kDraws; ++attempt) {
      const uint32_t i = draw_.Draw(rng_);
      if (Eligible(state, panic, ctx.tried, i)) return static_cast<int>(i);
    }
    return Scan(state, panic, ctx.tried, draw_.members(), rng_.Below(draw_.size()));
  }

 private:
  WeightedDraw draw_;
  Random rng_;
};

// Power of two choices: of two weighted draws, the one with fewer active
// connections per unit of weight.
class LeastRequestBalancer final : public Balancer {
 public:
  explicit LeastRequestBalancer(Members members)
      : cluster_(*members.cluster), draw_(std::move(members)), rng_(reinterpret_cast<uintptr_t>(this)) {}

  int Pick(const ClusterState& state, const PickContext& ctx) override {
    if (draw_.size() == 0) return kNoEndpoint;
    const bool panic = state.Panic();
    int first = kNoEndpoint;
    for (int attempt = 0; attempt < 2 * kDraws; ++attempt) {
      const uint32_t i = draw_.Draw(rng_);
      if (!Eligible(state, panic, ctx.tried, i)) continue;
      if (first == kNoEndpoint) {
        first = static_cast<int>(i);
        continue;
      }
      return Lighter(state, static_cast<size_t>(first), i);
    }
    if (first != kNoEndpoint) return first;
    return Scan(state, panic, ctx.tried, draw_.members(), rng_.Below(draw_.size()));
  }

 private:
  int Lighter(const ClusterState& state, size_t a, size_t b) const {
    // active_a / w_a <= active_b / w_b, without division.
    const uint64_t load_a = uint64_t{state.endpoint(a).active.load(std::memory_order_relaxed)} *
                            Weight(cluster_.endpoints[b]);
    const uint64_t load_b = uint64_t{state.endpoint(b).active.load(std::memory_order_relaxed)} *
                            Weight(cluster_.endpoints[a]);
    return static_cast<int>(load_a <= load_b ? a : b);
  }

  const config::Cluster& cluster_;
  WeightedDraw draw_;
  Random rng_;
};

// --- consistentHash ----------------------------------------------------------------------
// Both tables map a key to an endpoint; when that endpoint can't be used the
// next entries are tried, so the keys of healthy endpoints never move.
class RingHashBalancer final : public Balancer {
 public:
  // Envoy's bounds for the ring size.
  static constexpr uint64_t kMaxRing = 8 * 1024 * 1024;

  RingHashBalancer(const Members& members, uint64_t minimum_ring_size) {
    const config::Cluster& cluster = *members.cluster;
    if (members.index.empty()) return;
    uint64_t total_weight = 0;
    for (uint32_t i : members.index) total_weight += Weight(cluster.endpoints[i]);
    // Points per unit of weight, rounded up to a power of two: adding or
    // removing an endpoint then rarely changes anyone else's points, so only
    // its own keys move (Envoy rescales every endpoint instead).
    uint64_t per_weight = 1;
    while (per_weight * total_weight < minimum_ring_size && per_weight * total_weight < kMaxRing) {
      per_weight *= 2;
    }
    per_weight = std::max<uint64_t>(1, std::min(per_weight, kMaxRing / total_weight));
    for (uint32_t i : members.index) {
      const std::string key = EndpointKey(cluster.endpoints[i]);
      const uint64_t copies = per_weight * Weight(cluster.endpoints[i]);
      for (uint64_t c = 0; c < copies; ++c) ring_.push_back({Hash64(key, c), i});
    }
    std::sort(ring_.begin(), ring_.end(), [](const Point& a, const Point& b) {
      return a.hash < b.hash || (a.hash == b.hash && a.index < b.index);
    });
  }

  int Pick(const ClusterState& state, const PickContext& ctx) override {
    if (ring_.empty()) return kNoEndpoint;
    const bool panic = state.Panic();
    size_t at = std::lower_bound(ring_.begin(), ring_.end(), ctx.hash,
                                 [](const Point& p, uint64_t h) { return p.hash < h; }) -
                ring_.begin();
    for (size_t step = 0; step < ring_.size(); ++step, ++at) {
      const uint32_t i = ring_[at % ring_.size()].index;
      if (Eligible(state, panic, ctx.tried, i)) return static_cast<int>(i);
    }
    return kNoEndpoint;
  }

  size_t ring_size() const { return ring_.size(); }

 private:
  struct Point {
    uint64_t hash;
    uint32_t index;
  };
  std::vector<Point> ring_;
};

// Maglev (Eisenbud et al., NSDI 2016), weighted: each endpoint walks its own
// permutation of the table and claims free slots, endpoints taking turns in
// proportion to their weights, until the table is full.
class MaglevBalancer final : public Balancer {
 public:
  MaglevBalancer(const Members& members, uint64_t table_size) {
    const config::Cluster& cluster = *members.cluster;
    const size_t n = members.index.size();
    if (n == 0) return;
    const uint64_t m = table_size;
    table_.assign(m, std::numeric_limits<uint32_t>::max());
    std::vector<uint64_t> offset(n), skip(n), next(n, 0);
    uint32_t max_weight = 0;
    for (size_t i = 0; i < n; ++i) {
      const config::Endpoint& e = cluster.endpoints[members.index[i]];
      const std::string key = EndpointKey(e);
      offset[i] = Hash64(key, 0x6d61676c6576) % m;              // "maglev"
      skip[i] = Hash64(key, 0x736b6970) % (m - 1) + 1;           // "skip"
      max_weight = std::max(max_weight, Weight(e));
    }
    std::vector<double> credit(n, 0);
    uint64_t filled = 0;
    while (filled < m) {
      for (size_t i = 0; i < n && filled < m; ++i) {
        // An endpoint of weight w claims a slot in w/max_weight of the rounds.
        credit[i] += static_cast<double>(Weight(cluster.endpoints[members.index[i]])) / max_weight;
        if (credit[i] < 1.0) continue;
        credit[i] -= 1.0;
        uint64_t slot;
        do {
          slot = (offset[i] + next[i] * skip[i]) % m;
          ++next[i];
        } while (table_[slot] != std::numeric_limits<uint32_t>::max());
        table_[slot] = members.index[i];
        ++filled;
      }
    }
  }

  int Pick(const ClusterState& state, const PickContext& ctx) override {
    if (table_.empty()) return kNoEndpoint;
    const bool panic = state.Panic();
    const size_t m = table_.size();
    size_t at = ctx.hash % m;
    for (size_t step = 0; step < m; ++step, ++at) {
      const uint32_t i = table_[at % m];
      if (Eligible(state, panic, ctx.tried, i)) return static_cast<int>(i);
    }
    return kNoEndpoint;
  }

 private:
  std::vector<uint32_t> table_;
};

uint64_t NextPrime(uint64_t n) {
  auto prime = [](uint64_t x) {
    if (x < 2) return false;
    for (uint64_t d = 2; d * d <= x; ++d) {
      if (x % d == 0) return false;
    }
    return true;
  };
  while (!prime(n)) ++n;
  return n;
}

}  // namespace

uint64_t Hash64(std::string_view bytes, uint64_t seed) {
  uint64_t h = 0xcbf29ce484222325ULL ^ Mix(seed);  // FNV-1a, then a full mix
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return Mix(h);
}

std::string_view PolicyName(const config::Cluster& cluster) {
  const auto& lb = cluster.policy.load_balancer;
  if (!lb) return "ROUND_ROBIN";
  if (lb->consistent_hash) {
    return lb->consistent_hash->algorithm == Algorithm::kMaglev ? "MAGLEV" : "RING_HASH";
  }
  switch (lb->simple) {
    case Simple::kLeastRequest:
      return "LEAST_REQUEST";
    case Simple::kRandom:
      return "RANDOM";
    default:
      return "ROUND_ROBIN";
  }
}

std::unique_ptr<Balancer> MakeMemberBalancer(const config::Cluster& cluster,
                                             std::vector<uint32_t> index) {
  Members members{&cluster, std::move(index)};
  const auto& lb = cluster.policy.load_balancer;
  if (lb && lb->consistent_hash) {
    const config::ConsistentHashLb& hash = *lb->consistent_hash;
    if (hash.algorithm == Algorithm::kMaglev) {
      // The table must be a prime larger than the endpoint count.
      const uint64_t size = NextPrime(std::max<uint64_t>(hash.maglev_table_size,
                                                         members.index.size() * 2 + 1));
      return std::make_unique<MaglevBalancer>(members, size);
    }
    return std::make_unique<RingHashBalancer>(members, hash.minimum_ring_size);
  }
  const Simple simple = lb ? lb->simple : Simple::kUnspecified;
  if (simple == Simple::kLeastRequest) return std::make_unique<LeastRequestBalancer>(std::move(members));
  if (simple == Simple::kRandom) return std::make_unique<RandomBalancer>(std::move(members));
  return std::make_unique<RoundRobinBalancer>(std::move(members));
}

std::unique_ptr<Balancer> MakeBalancer(const config::Cluster& cluster, const BalancerOptions& options) {
  if (auto locality = MakeLocalityBalancer(cluster, options)) return locality;
  std::vector<uint32_t> all(cluster.endpoints.size());
  for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<uint32_t>(i);
  return MakeMemberBalancer(cluster, std::move(all));
}

}  // namespace meshgate::lb
