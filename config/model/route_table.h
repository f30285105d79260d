// The immutable route table: (host, port, subset) -> cluster of endpoints,
// and the one place that maps a client's SNI to a cluster.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "config/model/authorization.h"
#include "config/model/endpoint.h"
#include "config/model/traffic_policy.h"

namespace meshgate::config {

// How a cluster's endpoints are found (ServiceEntry resolution; Kubernetes
// Services are kStatic, ExternalName ones kDns).
enum class Resolution : uint8_t {
  kStatic,         // IP endpoints, as listed
  kDns,            // every address of every dns_endpoints name is an endpoint (Envoy STRICT_DNS)
  kDnsRoundRobin,  // one dns_endpoints name; connect to one of its addresses (Envoy LOGICAL_DNS)
};
std::string_view ToString(Resolution resolution);

struct Cluster {
  uint32_t id = 0;      // dense index into RouteTable::clusters()
  std::string name;     // Envoy style: outbound|8000|v1|httpbin.bar.svc.cluster.local
  std::string host;     // FQDN, lowercase
  uint16_t port = 0;    // service port (the one in the SNI)
  std::string subset;   // empty for the whole service
  // Dialable endpoints only: IP literals. Empty is valid: a DNS cluster before
  // its names resolve, or a subset that selects nothing (sessions then end as
  // no_endpoints).
  std::vector<Endpoint> endpoints;
  std::string source;   // "file.yaml:12 ServiceEntry ns/name" (several joined by "; ")

  std::string service_namespace;  // namespace of the resource(s) defining the host
  Resolution resolution = Resolution::kStatic;
  // Names still to resolve (address empty, hostname set); a resolver adds what
  // they resolve to as `endpoints` with `hostname` kept. Empty for kStatic.
  std::vector<Endpoint> dns_endpoints;
  std::map<std::string, std::string> subset_labels;  // the subset's selector
  TrafficPolicy policy;       // effective DestinationRule policy for this cluster
  std::string policy_source;  // the DestinationRule(s) it came from; empty if none
  // False when Gateways restrict what is served and none exports this host:
  // Route() then misses with kNotExported. The same for every cluster of a host.
  bool exported = true;
  // Why not exported, for --check and /clusters: "MESH_EXTERNAL", "UDP port",
  // "no Gateway host matches", "no Gateway selects this gateway". Empty when exported.
  std::string export_detail;
  // Endpoints on a network outside the gateway's view (Istio's network view):
  // never dialled, kept only to be shown by --check and /clusters.
  std::vector<Endpoint> out_of_view;
};

// Everything but the id: whether a new version of a cluster can keep the
// previous object (RouteTable::Reuse).
bool SameContent(const Cluster& a, const Cluster& b);

// A persistent vector of shared_ptr<T>: the elements live in fixed chunks
// held by shared_ptr, so a copy shares every chunk and Set() copies only the
// chunk it changes (size/kChunk pointers plus kChunk elements, not the whole
// vector). The route table, the health table and the cluster stats use it so
// that one changed cluster costs one chunk, and versions share the rest.
template <typename T>
class PersistentVector {
 public:
  static constexpr size_t kChunk = 64;
  using Chunk = std::vector<std::shared_ptr<T>>;

  PersistentVector() = default;
  explicit PersistentVector(std::vector<std::shared_ptr<T>> items) : size_(items.size()) {
    chunks_.reserve((items.size() + kChunk - 1) / kChunk);
    for (size_t i = 0; i < items.size(); i += kChunk) {
      const size_t end = std::min(items.size(), i + kChunk);
      chunks_.push_back(std::make_shared<const Chunk>(std::make_move_iterator(items.begin() + i),
                                                      std::make_move_iterator(items.begin() + end)));
    }
  }

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  const std::shared_ptr<T>& operator[](size_t i) const { return (*chunks_[i / kChunk])[i % kChunk]; }
  // Replaces element i, copying only its chunk; other copies keep the old one.
  void Set(size_t i, std::shared_ptr<T> value) {
    auto chunk = std::make_shared<Chunk>(*chunks_[i / kChunk]);
    (*chunk)[i % kChunk] = std::move(value);
    chunks_[i / kChunk] = std::move(chunk);
  }
  // Replaces several elements, copying each chunk they touch once.
  void SetMany(std::vector<std::pair<size_t, std::shared_ptr<T>>> values) {
    std::vector<bool> copied(chunks_.size(), false);
    for (auto& [i, value] : values) {
      const size_t c = i / kChunk;
      if (!copied[c]) {
        chunks_[c] = std::make_shared<Chunk>(*chunks_[c]);
        copied[c] = true;
      }
      // Only this vector holds the fresh copy: writing it in place is safe.
      (*std::const_pointer_cast<Chunk>(chunks_[c]))[i % kChunk] = std::move(value);
    }
  }
  // True when element i of both is in the very same chunk object (so both
  // hold the same kChunk elements there): lets a walk skip shared chunks.
  bool SharesChunk(size_t i, const PersistentVector& other) const {
    return i < size_ && i < other.size_ && chunks_[i / kChunk] == other.chunks_[i / kChunk];
  }

  class Iterator {
   public:
    using iterator_category = std::forward_iterator_tag;
    using value_type = std::shared_ptr<T>;
    using difference_type = std::ptrdiff_t;
    using pointer = const std::shared_ptr<T>*;
    using reference = const std::shared_ptr<T>&;
    Iterator() = default;
    Iterator(const PersistentVector* v, size_t i) : v_(v), i_(i) {}
    reference operator*() const { return (*v_)[i_]; }
    pointer operator->() const { return &(*v_)[i_]; }
    Iterator& operator++() {
      ++i_;
      return *this;
    }
    Iterator operator++(int) {
      Iterator old = *this;
      ++i_;
      return old;
    }
    bool operator==(const Iterator& o) const { return i_ == o.i_; }

   private:
    const PersistentVector* v_ = nullptr;
    size_t i_ = 0;
  };
  Iterator begin() const { return Iterator(this, 0); }
  Iterator end() const { return Iterator(this, size_); }

 private:
  std::vector<std::shared_ptr<const Chunk>> chunks_;
  size_t size_ = 0;
};

// RouteTable::clusters(): every cluster by id, iterated as `const Cluster&`.
class ClusterList {
 public:
  class Iterator {
   public:
    using iterator_category = std::forward_iterator_tag;
    using value_type = Cluster;
    using difference_type = std::ptrdiff_t;
    using pointer = const Cluster*;
    using reference = const Cluster&;
    Iterator() = default;
    explicit Iterator(PersistentVector<const Cluster>::Iterator it) : it_(it) {}
    reference operator*() const { return **it_; }
    pointer operator->() const { return it_->get(); }
    Iterator& operator++() {
      ++it_;
      return *this;
    }
    Iterator operator++(int) {
      Iterator old = *this;
      ++it_;
      return old;
    }
    bool operator==(const Iterator& o) const { return it_ == o.it_; }

   private:
    PersistentVector<const Cluster>::Iterator it_;
  };

  explicit ClusterList(const PersistentVector<const Cluster>& clusters) : clusters_(&clusters) {}
  size_t size() const { return clusters_->size(); }
  bool empty() const { return clusters_->empty(); }
  const Cluster& operator[](size_t i) const { return *(*clusters_)[i]; }
  const Cluster& front() const { return (*this)[0]; }
  const Cluster& back() const { return (*this)[size() - 1]; }
  Iterator begin() const { return Iterator(clusters_->begin()); }
  Iterator end() const { return Iterator(clusters_->end()); }

 private:
  const PersistentVector<const Cluster>* clusters_;
};

// Suffix rewrite applied to the SNI host before lookup; first match wins.
struct SniRewrite {
  std::string from;  // e.g. ".global"
  std::string to;    // e.g. ".svc.cluster.local"
};

#define MESHGATE_ROUTE_MISSES(X)                                        \
  X(kNoSni, "no_sni")                 /* hello carried no server_name */ \
  X(kBadSni, "bad_sni")               /* outbound_ form that won't parse */ \
  X(kUnknownHost, "unknown_host")                                       \
  X(kUnknownPort, "unknown_port")                                       \
  X(kUnknownSubset, "unknown_subset")                                   \
  X(kAmbiguousPort, "ambiguous_port") /* plain host with several ports */ \
  X(kNotExported, "not_exported")     /* known host no Gateway exports */ \
  X(kPlainHostSni, "plain_host_sni")  /* plain host SNI, plainHostSni off */

enum class RouteMiss : uint8_t {
  kNone,
#define MESHGATE_ROUTE_ENUM(name, str) name,
  MESHGATE_ROUTE_MISSES(MESHGATE_ROUTE_ENUM)
#undef MESHGATE_ROUTE_ENUM
};
#define MESHGATE_ROUTE_COUNT(name, str) +1
inline constexpr size_t kRouteMissCount = 1 MESHGATE_ROUTE_MISSES(MESHGATE_ROUTE_COUNT);
#undef MESHGATE_ROUTE_COUNT
std::string_view ToString(RouteMiss miss);

struct RouteResult {
  const Cluster* cluster = nullptr;  // set iff miss == kNone
  RouteMiss miss = RouteMiss::kNone;
  std::string host;                  // the host looked up, after rewriting
};

// Parsed SNI in either of its two forms.
struct SniTarget {
  std::string host;
  uint16_t port = 0;       // 0 for the plain-host form
  std::string subset;      // empty for no subset ("_" in Istio's form)
};
// "outbound_.8000_.v1_.reviews.default.global" or a plain host.
// Returns false when the outbound_ form is malformed (bad port, empty host...).
bool ParseSni(std::string_view sni, SniTarget& out);

// What the mesh decided about this gateway as a whole: which Gateways select
// it, its network view, and (when nothing is served) why.
struct GatewayView {
  // Non-empty when no Gateway selecting this gateway has an AUTO_PASSTHROUGH
  // server on its port: every connection then misses as not_exported, and
  // readiness reports this text.
  std::string closed_reason;
  std::vector<std::string> gateways;  // "ns/name" of the Gateways that select it
  std::string network;                // the gateway's network; empty: unset
  std::vector<std::string> network_view;  // networks in view; empty: all
};

struct RouteOptions {
  // Accept the plain-host SNI form ("httpbin.bar.svc.cluster.local"). Istio's
  // AUTO_PASSTHROUGH matches only the outbound_ form (pilot
  // builtAutoPassthroughFilterChains uses cluster names as SNI hosts).
  bool allow_plain_host = false;
};

class RouteTable {
 public:
  RouteTable(std::vector<Cluster> clusters, std::vector<SniRewrite> rewrites,
             GatewayView view = {}, AuthorizationPolicies authorization = {});
  // The same from clusters already on the heap one by one (the loader's): the
  // table takes each object as it is, so no second copy of the clusters is
  // ever held beside the first.
  static std::shared_ptr<const RouteTable> FromOwned(std::vector<std::unique_ptr<Cluster>> clusters,
                                                     std::vector<SniRewrite> rewrites, GatewayView view = {},
                                                     AuthorizationPolicies authorization = {});

  // Incremental updates. Every version is immutable; these build the next one
  // and share with this one every cluster object they do not change, so the
  // per-cluster state built on a cluster (health, stats, the workers'
  // balancers) can be carried over by comparing pointers.
  //
  // The next version with `cluster` in place of the cluster of the same name
  // (its host, port and subset must not change; it takes that cluster's id).
  // Shares the host index, rewrites, view and authorization: the work is the
  // cluster plus one chunk of pointers, whatever the table's size. Throws
  // std::invalid_argument when no cluster has that name or its identity changed.
  std::shared_ptr<const RouteTable> WithCluster(Cluster cluster) const;
  // The same with an object another version already holds (its id must be
  // the one its name has here): the two versions then share it.
  std::shared_ptr<const RouteTable> WithCluster(std::shared_ptr<const Cluster> cluster) const;
  // Several clusters replaced at once, each as WithCluster would (same rules,
  // same exception; a name listed twice: the last wins): one new version,
  // each touched chunk copied once, the index rebuilt at most once.
  std::shared_ptr<const RouteTable> WithClusters(std::vector<Cluster> clusters) const;
  std::shared_ptr<const RouteTable> WithClusters(std::vector<std::shared_ptr<const Cluster>> clusters) const;
  // `next` (say, the files loaded again) rebuilt so that every cluster equal
  // to one of `previous`'s (same name, SameContent) is `previous`'s object,
  // with its id. Clusters keep their ids where they can: a changed cluster
  // takes the id it had, a new one fills an id left free. The index is built
  // again (the set of clusters may have changed); no cluster is copied but a
  // changed or new one whose id differs from its position in `next`.
  static std::shared_ptr<const RouteTable> Reuse(const RouteTable& previous, const RouteTable& next);

  // SNI -> cluster: parse, rewrite the host suffix, look up. Never allocates
  // more than the returned host string. A host with no exact entry matches the
  // most specific wildcard host ("*.example.com" covers "a.example.com" and
  // "a.b.example.com", as Istio matches hosts, but not "example.com").
  RouteResult Route(std::string_view sni, RouteOptions options = {}) const;

  const GatewayView& view() const { return shared_->view; }
  const AuthorizationPolicies& authorization() const { return shared_->authorization; }

  const Cluster* Find(std::string_view host, uint16_t port, std::string_view subset) const;
  const Cluster* FindByName(std::string_view name) const;
  // How many clusters (ports and subsets) the exact host has.
  size_t ClustersOfHost(std::string_view host) const;
  ClusterList clusters() const { return ClusterList(clusters_); }
  // The object behind clusters()[id], to share or compare across versions.
  const std::shared_ptr<const Cluster>& cluster_ptr(uint32_t id) const { return clusters_[id]; }
  const PersistentVector<const Cluster>& cluster_ptrs() const { return clusters_; }
  std::span<const SniRewrite> rewrites() const { return shared_->rewrites; }

  // Human-readable listing, one cluster and its endpoints per block, for --check:
  // subsets, resolution, policy and export status included.
  std::string Describe() const;

 private:
  // What versions share unless the set of clusters changes.
  struct Index;
  // What versions share always (one per load).
  struct Shared {
    std::vector<SniRewrite> rewrites;
    GatewayView view;
    AuthorizationPolicies authorization;
  };
  RouteTable(PersistentVector<const Cluster> clusters, std::shared_ptr<const Shared> shared,
             std::shared_ptr<const Index> index);
  // Numbers and normalises `cluster` as clusters()[id] (the constructors' shared step).
  static void Prepare(Cluster& cluster, size_t id);
  void Init(std::vector<std::shared_ptr<const Cluster>> owned, std::vector<SniRewrite> rewrites, GatewayView view,
            AuthorizationPolicies authorization);
  static std::shared_ptr<const Index> BuildIndex(const PersistentVector<const Cluster>& clusters);
  std::string RewriteHost(std::string_view host) const;

  PersistentVector<const Cluster> clusters_;
  std::shared_ptr<const Shared> shared_;
  std::shared_ptr<const Index> index_;
};

}  // namespace meshgate::config
