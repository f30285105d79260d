// One endpoint of a cluster, kept compact: a route table holds one per
// address and port (100,000 at the 10,000-service scale), so what endpoints
// share (label sets, rare fields) is held once and what each owns is packed
// into one allocation. 64 bytes inline (was 448 with a label map each).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"

namespace meshgate::config {

// An immutable label set, sorted by key (so dumps are stable, as with the
// std::map it replaces), shared by every copy. Endpoints of one resource, and
// the endpoints a load interns (LabelInterner), hold the same object.
class LabelSet {
 public:
  using value_type = std::pair<std::string, std::string>;
  using Items = std::vector<value_type>;
  using const_iterator = Items::const_iterator;
  using iterator = const_iterator;

  LabelSet() = default;
  LabelSet(const std::map<std::string, std::string>& labels);  // NOLINT(google-explicit-constructor)
  // As a std::map would be built from the list: a repeated key keeps its first value.
  LabelSet(std::initializer_list<value_type> labels);  // NOLINT(google-explicit-constructor)

  const_iterator begin() const { return items().begin(); }
  const_iterator end() const { return items().end(); }
  size_t size() const { return items_ ? items_->size() : 0; }
  bool empty() const { return size() == 0; }
  const_iterator find(std::string_view key) const;
  bool contains(std::string_view key) const { return find(key) != end(); }
  // Throws std::out_of_range when the key is absent, as std::map::at.
  const std::string& at(std::string_view key) const;
  // Kubernetes equality-based selector: every selector label present with the same value.
  bool Matches(const std::map<std::string, std::string>& selector) const;
  std::map<std::string, std::string> ToMap() const { return {begin(), end()}; }
  bool operator==(const LabelSet& other) const;
  // True when both hold the very same set object (what interning achieves).
  bool SharesWith(const LabelSet& other) const { return items_ == other.items_; }

 private:
  static const Items& Empty();
  const Items& items() const { return items_ ? *items_ : Empty(); }
  std::shared_ptr<const Items> items_;  // null: no labels
};

// Hands out one LabelSet per distinct set during a load, so endpoints written
// with the same labels share them. One thread at a time.
class LabelInterner {
 public:
  LabelSet Intern(const std::map<std::string, std::string>& labels);
  LabelSet Intern(const LabelSet& labels);

 private:
  absl::flat_hash_map<std::string, LabelSet> sets_;  // keyed by "k\0v\0k\0v\0..."
};

// Who an endpoint is, for Istio's destination_* metric labels. Derived from
// the labels of its Pod or WorkloadEntry the way Istio derives them (see
// config/mesh/workload_identity.cc); empty means "unknown".
struct WorkloadIdentity {
  std::string name;                // destination_workload (Deployment name for a Pod)
  std::string ns;                  // destination_workload_namespace
  std::string app;                 // destination_app: label "app"
  std::string version;             // destination_version: label "version"
  std::string canonical_service;   // destination_canonical_service
  std::string canonical_revision;  // destination_canonical_revision
  std::string principal;           // destination_principal: spiffe://<td>/ns/<ns>/sa/<sa>
  bool operator==(const WorkloadIdentity&) const = default;
};

// An endpoint's string fields other than its address, most of them empty for
// most endpoints: packed into one immutable, reference-counted allocation
// (one word inline; none at all when every field is empty). Copies share it.
class EndpointDetails {
 public:
  enum Field : uint8_t {
    kHostname,
    kNetwork,
    kLocality,
    kServiceAccount,
    kWorkloadName,
    kWorkloadNamespace,
    kApp,
    kVersion,
    kCanonicalService,
    kCanonicalRevision,
    kPrincipal,
    kFieldCount
  };
  using Values = std::array<std::string_view, kFieldCount>;

  EndpointDetails() = default;
  explicit EndpointDetails(const Values& values);
  EndpointDetails(const EndpointDetails& other) noexcept;
  EndpointDetails(EndpointDetails&& other) noexcept : block_(std::exchange(other.block_, nullptr)) {}
  EndpointDetails& operator=(const EndpointDetails& other) noexcept;
  EndpointDetails& operator=(EndpointDetails&& other) noexcept;
  ~EndpointDetails();

  std::string_view Get(Field field) const;
  Values All() const;
  // A copy with one field changed (the others shared by value, not by object).
  EndpointDetails With(Field field, std::string_view value) const;
  bool operator==(const EndpointDetails& other) const;

 private:
  struct Block;
  Block* block_ = nullptr;  // null: every field empty
};

struct Endpoint {
  std::string address;  // IP literal (v4 or v6, no brackets); never empty in Cluster::endpoints
  uint16_t port = 0;
  // Kubernetes readiness. A not-ready endpoint keeps its index (sessions and
  // balancer state refer to it) but must not be picked for new connections.
  bool ready = true;
  uint32_t weight = 1;
  LabelSet labels;
  EndpointDetails details;  // read and set through the accessors below

  // The DNS name to resolve, for an entry of Cluster::dns_endpoints (address
  // empty); or the name an IP endpoint was resolved from.
  std::string_view hostname() const { return details.Get(EndpointDetails::kHostname); }
  std::string_view network() const { return details.Get(EndpointDetails::kNetwork); }  // e.g. "network1"
  std::string_view locality() const { return details.Get(EndpointDetails::kLocality); }  // "region/zone/subzone"
  // Kubernetes service account of the workload.
  std::string_view service_account() const { return details.Get(EndpointDetails::kServiceAccount); }
  WorkloadIdentity workload() const;
  bool HasWorkloadName() const { return !details.Get(EndpointDetails::kWorkloadName).empty(); }

  void set_hostname(std::string_view v) { Set(EndpointDetails::kHostname, v); }
  void set_network(std::string_view v) { Set(EndpointDetails::kNetwork, v); }
  void set_locality(std::string_view v) { Set(EndpointDetails::kLocality, v); }
  void set_service_account(std::string_view v) { Set(EndpointDetails::kServiceAccount, v); }
  void set_workload(const WorkloadIdentity& workload);

  bool operator==(const Endpoint&) const = default;

 private:
  void Set(EndpointDetails::Field field, std::string_view value) {
    if (details.Get(field) != value) details = details.With(field, value);
  }
};

}  // namespace meshgate::config
