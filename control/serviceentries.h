// `meshgatectl serviceentries`: the ServiceEntries a consuming cluster needs
// to reach a source cluster's services through that cluster's gateway, like
// the walkthrough's hand-written ones; and `coredns`, the `.global` stanza.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "config/mesh/mesh_loader.h"

namespace meshgate::control {

struct ServiceEntryOptions {
  std::string gateway;          // host name or IP of the source cluster's gateway
  uint16_t gateway_port = 15443;
  std::string network;          // the source cluster's network
  std::string suffix = "global";
  std::string ns = "istio-system";  // where the ServiceEntries are applied
};

// VIPs from 240.0.0.0/4, one per host, unique within a consuming cluster.
// A host's first VIP comes from a hash of its name (the same input gives the
// same VIPs), probing past taken ones; a VIP once given never changes, so
// adding a service never renumbers the others.
class VipAllocations {
 public:
  // "host vip" lines; a missing file is empty.
  static absl::StatusOr<VipAllocations> Load(const std::string& path);
  absl::Status Save(const std::string& path) const;
  std::string For(const std::string& host);  // allocates when new
  const std::map<std::string, std::string>& all() const { return by_host_; }

 private:
  std::map<std::string, std::string> by_host_;
  std::map<uint32_t, std::string> by_vip_;
};

// "HOST_OR_IP[:PORT]" -> options.gateway and gateway_port.
absl::Status ParseGateway(const std::string& text, ServiceEntryOptions& options);

// A YAML stream: one ServiceEntry per service, sorted by namespace and name.
// `published`, when given, receives each host written and its VIP (what the
// DNS server answers).
std::string ServiceEntries(const std::vector<config::ServiceSummary>& services,
                           const ServiceEntryOptions& options, VipAllocations& vips,
                           std::map<std::string, std::string>* published = nullptr);

// The CoreDNS `global:53` server block forwarding `.global` to `server`
// (meshgatectl serve's dns: listener, IP[:PORT]).
std::string CorednsStanza(const std::string& server, const std::string& suffix);

}  // namespace meshgate::control
