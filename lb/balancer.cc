#include "lb/balancer.h"
#include "lb/balancer_internal.h"

#include <algorithm>
#include <bit>
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
// To keep a pick O(1) at any size, endpoints are scheduled by weight class
// (weights within a factor of two: [1], [2,3], [4..7], ...): the EDF heap has
// one entry per class, of the class's total weight, and a class's turn goes to
// its members in rotation, each collecting weight/heaviest-in-class credit per
// visit and taking the turn once it has a whole one (at most two visits, since
// a class spans a factor of two). With equal weights (the common case) that is
// one class and a plain rotation.
class RoundRobinBalancer final : public Balancer {
 public:
  explicit RoundRobinBalancer(Members members) : members_(std::move(members)), n_(members_.index.size()) {
    std::vector<std::pair<int, uint32_t>> by_class;  // (weight class, endpoint)
    for (uint32_t i : members_.index) {
      by_class.emplace_back(std::bit_width(Weight(members_.cluster->endpoints[i])), i);
    }
    std::stable_sort(by_class.begin(), by_class.end(),
                     [](const auto& a, const auto& b) { return a.first > b.first; });
    for (size_t k = 0; k < by_class.size(); ++k) {
      if (k == 0 || by_class[k].first != by_class[k - 1].first) groups_.emplace_back();
      groups_.back().members.push_back(by_class[k].second);
    }
    for (size_t g = 0; g < groups_.size(); ++g) {
      Group& group = groups_[g];
      uint32_t heaviest = 0;
      double total = 0;
      for (uint32_t i : group.members) {
        heaviest = std::max(heaviest, Weight(members_.cluster->endpoints[i]));
        total += Weight(members_.cluster->endpoints[i]);
      }
      for (uint32_t i : group.members) {
        group.share.push_back(static_cast<double>(Weight(members_.cluster->endpoints[i])) / heaviest);
      }
      group.credit.assign(group.members.size(), 0);
      group.step = 1.0 / total;
      // Staggered first deadlines, so classes don't all come due together.
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
      // With one class of equal weights its order is the members' order.
      return Scan(state, panic, ctx.tried, members_, groups_.size() == 1 ? groups_[0].next : 0);
    }
    for (size_t step = 0; step < n_; ++step) {
      Group& group = groups_[heap_[0].group];
      heap_[0].deadline += group.step;
      if (heap_.size() > 1) SiftDown();
      const uint32_t i = group.Take();
      // An endpoint that can't be used loses its turn.
      if (Eligible(state, panic, ctx.tried, i)) return static_cast<int>(i);
    }
    return kNoEndpoint;
  }

 private:
  struct Group {
    double step = 1;  // 1 / the class's total weight
    size_t next = 0;
    std::vector<uint32_t> members;
    std::vector<double> share;   // weight / heaviest in the class, in (1/2, 1]
    std::vector<double> credit;

    uint32_t Take() {
      for (;;) {
        const size_t k = next;
        next = next + 1 == members.size() ? 0 : next + 1;
        credit[k] += share[k];
        if (credit[k] >= 1) {
          credit[k] -= 1;
          return members[k];
        }
      }
    }
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
    // Bucket index over the top bits of the hash, about two buckets per point:
    // a lookup searches one bucket's few points instead of the whole ring.
    bits_ = std::min(24, std::max(1, static_cast<int>(std::bit_width(ring_.size())) + 1));
    first_.assign((size_t{1} << bits_) + 1, static_cast<uint32_t>(ring_.size()));
    for (size_t k = ring_.size(); k-- > 0;) first_[ring_[k].hash >> (64 - bits_)] = static_cast<uint32_t>(k);
    for (size_t b = first_.size() - 1; b-- > 0;) first_[b] = std::min(first_[b], first_[b + 1]);
  }

  int Pick(const ClusterState& state, const PickContext& ctx) override {
    if (ring_.empty()) return kNoEndpoint;
    const bool panic = state.Panic();
    const size_t bucket = ctx.hash >> (64 - bits_);
    size_t at = std::lower_bound(ring_.begin() + first_[bucket], ring_.begin() + first_[bucket + 1],
                                 ctx.hash, [](const Point& p, uint64_t h) { return p.hash < h; }) -
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
  int bits_ = 1;
  std::vector<uint32_t> first_;  // first ring index of each bucket; one extra at the end
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
