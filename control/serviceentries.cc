#include "control/serviceentries.h"

#include <arpa/inet.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "config/settings/serve_config.h"
#include "base/names.h"

namespace meshgate::control {

namespace {

constexpr uint32_t kBase = 0xF0000000;  // 240.0.0.0
constexpr uint32_t kSize = 1u << 28;    // /4

std::string Dotted(uint32_t ip) {
  return absl::StrCat(ip >> 24, ".", (ip >> 16) & 255, ".", (ip >> 8) & 255, ".", ip & 255);
}

bool ParseIpv4(const std::string& text, uint32_t& out) {
  in_addr addr{};
  if (inet_pton(AF_INET, text.c_str(), &addr) != 1) return false;
  out = ntohl(addr.s_addr);
  return true;
}

uint32_t Fnv1a(const std::string& s) {
  uint32_t h = 2166136261u;
  for (unsigned char c : s) h = (h ^ c) * 16777619u;
  return h;
}

// Istio derives the protocol from the port name's prefix when unset.
std::string Protocol(const config::ServiceSummary::Port& port) {
  if (!port.protocol.empty() && port.protocol != "TCP") return port.protocol;
  const std::pair<const char*, const char*> prefixes[] = {
      {"http2", "HTTP2"}, {"https", "HTTPS"}, {"http", "HTTP"}, {"grpc", "GRPC"},
      {"tls", "TLS"},     {"mongo", "MONGO"}, {"redis", "REDIS"}, {"mysql", "MYSQL"}};
  for (const auto& [prefix, protocol] : prefixes) {
    const std::string p = prefix;
    if (port.name == p || port.name.rfind(p + "-", 0) == 0) return protocol;
  }
  return "TCP";
}

// The ServiceEntry port name: the Service's, or one made from the number.
std::string PortName(const config::ServiceSummary::Port& port) {
  return port.name.empty() ? absl::StrCat("tcp-", port.number) : port.name;
}

}  // namespace

absl::StatusOr<VipAllocations> VipAllocations::Load(const std::string& path) {
  VipAllocations out;
  std::ifstream in(path);
  if (!in) return out;  // none yet
  std::string line;
  int number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (line.empty() || line[0] == '#') continue;
    std::istringstream fields(line);
    std::string host, vip;
    uint32_t ip = 0;
    if (!(fields >> host >> vip) || !ParseIpv4(vip, ip) || (ip & 0xF0000000) != kBase) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ":", number, ": expected \"HOST VIP\" with a VIP in 240.0.0.0/4"));
    }
    if (out.by_vip_.count(ip) && out.by_vip_[ip] != host) {
      return absl::InvalidArgumentError(absl::StrCat(path, ":", number, ": VIP ", vip, " is given to both ",
                                                     out.by_vip_[ip], " and ", host));
    }
    out.by_host_[host] = vip;
    out.by_vip_[ip] = host;
  }
  return out;
}

absl::Status VipAllocations::Save(const std::string& path) const {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp);
    out << "# meshgatectl VIP allocations for one consuming cluster: HOST VIP\n";
    for (const auto& [host, vip] : by_host_) out << host << " " << vip << "\n";
    if (!out) return absl::UnavailableError(tmp + ": cannot write");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) return absl::UnavailableError(path + ": cannot replace");
  return absl::OkStatus();
}

std::string VipAllocations::For(const std::string& host) {
  if (auto it = by_host_.find(host); it != by_host_.end()) return it->second;
  // Skip .0 and .255 addresses, which some tooling treats as special.
  uint32_t offset = Fnv1a(host) % kSize;
  for (;;) {
    const uint32_t ip = kBase + offset;
    const uint32_t last = ip & 255;
    if (last != 0 && last != 255 && !by_vip_.count(ip)) {
      by_vip_[ip] = host;
      return by_host_[host] = Dotted(ip);
    }
    offset = (offset + 1) % kSize;
  }
}

absl::Status ParseGateway(const std::string& text, ServiceEntryOptions& options) {
  auto address = config::ParseGatewayAddress(text);
  if (!address.ok()) return address.status();
  options.gateway = std::move(address->host);
  options.gateway_port = address->port;
  return absl::OkStatus();
}

std::string ServiceEntries(const std::vector<config::ServiceSummary>& services,
                           const ServiceEntryOptions& options, VipAllocations& vips,
                           std::map<std::string, std::string>* published) {
  const bool ip = base::CanonicalIp(options.gateway).has_value();
  std::string out;
  for (const config::ServiceSummary& service : services) {
    if (service.ports.empty()) continue;  // nothing to reach
    const std::string host = absl::StrCat(service.name, ".", service.ns, ".", options.suffix);
    if (published != nullptr) (*published)[host] = vips.For(host);
    absl::StrAppend(&out, "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n",
                    "  name: ", service.name, "-", service.ns, "-", options.suffix, "\n",
                    "  namespace: ", options.ns, "\n",
                    "  labels: {app.kubernetes.io/managed-by: meshgatectl}\n",
                    "spec:\n  hosts: [", host, "]\n  location: MESH_INTERNAL\n  ports:\n");
    for (const auto& port : service.ports) {
      absl::StrAppend(&out, "  - {name: ", PortName(port), ", number: ", port.number, ", protocol: ", Protocol(port), "}\n");
    }
    absl::StrAppend(&out, "  resolution: ", ip ? "STATIC" : "DNS", "\n  addresses: [", vips.For(host),
                    "]\n  endpoints:\n  - address: ", options.gateway, "\n");
    if (!options.network.empty()) absl::StrAppend(&out, "    network: ", options.network, "\n");
    absl::StrAppend(&out, "    ports: {");
    for (size_t i = 0; i < service.ports.size(); ++i) {
      absl::StrAppend(&out, i ? ", " : "", PortName(service.ports[i]), ": ", options.gateway_port);
    }
    absl::StrAppend(&out, "}\n");
  }
  return out;
}

// `cache 30` keeps positive answers at most their TTL (30 s) and negative
// ones their SOA minimum (5 s, RFC 2308), so a new service is seen quickly.
std::string CorednsStanza(const std::string& server, const std::string& suffix) {
  return absl::StrCat(suffix, ":53 {\n    errors\n    cache 30\n    forward . ", server, "\n}\n");
}

}  // namespace meshgate::control
