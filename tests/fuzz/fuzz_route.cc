// libFuzzer target for the one place that maps an SNI to a cluster
// (RouteTable::Route), over a small fixed table built once. Each answer is
// checked against an independent reading of the two SNI forms: Istio's
// "outbound_.PORT_.SUBSET_.HOST" (pilot's model.BuildSubsetKey, what
// AUTO_PASSTHROUGH matches) and the plain host. A name that maps nowhere must
// miss, and a hit must be exactly the cluster the oracle picks.
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>

#include "base/names.h"
#include "config/model/route_table.h"

namespace {

using namespace meshgate::config;
using meshgate::base::AsciiLower;

void Fail(const std::string& what, std::string_view sni) {
  std::fprintf(stderr, "route_fuzz: %s (sni \"%.*s\")\n", what.c_str(), static_cast<int>(sni.size()), sni.data());
  std::abort();
}

Cluster MakeCluster(std::string host, uint16_t port, std::string subset, bool exported = true) {
  Cluster c;
  c.name = "outbound|" + std::to_string(port) + "|" + subset + "|" + host;
  c.host = std::move(host);
  c.port = port;
  c.subset = std::move(subset);
  c.exported = exported;
  c.endpoints.push_back({.address = "10.0.0.1", .port = port});
  return c;
}

const RouteTable& Table() {
  static const RouteTable table(
      {MakeCluster("httpbin.bar.svc.cluster.local", 8000, ""), MakeCluster("httpbin.bar.svc.cluster.local", 8000, "v1"),
       MakeCluster("httpbin.bar.svc.cluster.local", 8000, "v2"), MakeCluster("reviews.default.svc.cluster.local", 9080, ""),
       MakeCluster("reviews.default.svc.cluster.local", 9081, ""), MakeCluster("*.example.com", 443, ""),
       MakeCluster("a.b.example.com", 443, "blue"), MakeCluster("hidden.foo.svc.cluster.local", 80, "", false),
       MakeCluster("mixed.foo.svc.cluster.local", 80, ""), MakeCluster("mixed.foo.svc.cluster.local", 53, "", false)},
      {{".global", ".svc.cluster.local"}});
  return table;
}

struct Parsed {
  std::string host;
  uint16_t port = 0;  // 0: plain host
  std::string subset;
};

bool StartsWithIgnoreCase(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && AsciiLower(s.substr(0, prefix.size())) == prefix;
}

// The outbound_ form read independently of route_table.cc; nullopt: malformed.
std::optional<Parsed> ParseOracle(std::string_view sni) {
  if (!StartsWithIgnoreCase(sni, "outbound_.")) return Parsed{std::string(sni), 0, ""};
  std::string_view rest = sni.substr(10);
  const size_t port_end = rest.find("_.");
  if (port_end == std::string_view::npos || port_end == 0 || port_end > 5) return std::nullopt;
  // Istio builds the SNI with the port's decimal form, and matches it as a
  // string: "09000" is no port (issue 15, item 6).
  if (rest[0] == '0') return std::nullopt;
  uint32_t port = 0;
  for (char c : rest.substr(0, port_end)) {
    if (c < '0' || c > '9') return std::nullopt;
    port = port * 10 + static_cast<uint32_t>(c - '0');
  }
  // Port 0 is no service port: "outbound_.0_._.h" is malformed, not a plain host.
  if (port == 0 || port > 65535) return std::nullopt;
  rest.remove_prefix(port_end + 2);
  const size_t subset_end = rest.find("_.");
  if (subset_end == std::string_view::npos || subset_end + 2 == rest.size()) return std::nullopt;
  return Parsed{std::string(rest.substr(subset_end + 2)), static_cast<uint16_t>(port), std::string(rest.substr(0, subset_end))};
}

// What Route must answer, from the table's clusters alone.
RouteMiss Expected(const RouteTable& table, const Parsed& p, const std::string& host, const Cluster** hit) {
  std::map<std::tuple<std::string, uint16_t, std::string>, const Cluster*> exact;
  std::string matched;  // the table host `host` resolves to: itself, else the longest wildcard
  for (const Cluster& c : table.clusters()) {
    if (c.host == host) matched = host;
    if (matched != host && c.host.starts_with("*.") && host.size() > c.host.size() - 1 &&
        host.ends_with(c.host.substr(1)) && c.host.size() > matched.size()) {
      matched = c.host;
    }
  }
  if (matched.empty()) return RouteMiss::kUnknownHost;
  bool any_exported = false, several_ports = false, port_known = false;
  uint16_t port = p.port;
  for (const Cluster& c : table.clusters()) {
    if (c.host != matched) continue;
    any_exported |= c.exported;
    if (p.port == 0 && port != 0 && c.port != port) several_ports = true;
    if (p.port == 0 && port == 0) port = c.port;
  }
  if (!any_exported) return RouteMiss::kNotExported;
  if (several_ports) return RouteMiss::kAmbiguousPort;
  for (const Cluster& c : table.clusters()) {
    if (c.host != matched || c.port != port) continue;
    port_known = true;
    if (AsciiLower(c.subset) == AsciiLower(p.subset)) {
      *hit = &c;
      return c.exported ? RouteMiss::kNone : RouteMiss::kNotExported;
    }
  }
  return port_known ? RouteMiss::kUnknownSubset : RouteMiss::kUnknownPort;
}

void Check(std::string_view sni, bool plain) {
  const RouteTable& table = Table();
  const RouteResult r = table.Route(sni, {.allow_plain_host = plain});
  if ((r.cluster != nullptr) != (r.miss == RouteMiss::kNone)) Fail("cluster set iff no miss", sni);
  if (sni.empty()) {
    if (r.miss != RouteMiss::kNoSni) Fail("empty SNI not no_sni", sni);
    return;
  }
  const std::optional<Parsed> p = ParseOracle(sni);
  if (!p) {
    if (r.miss != RouteMiss::kBadSni) Fail(std::string("malformed outbound_ form answered ") + std::string(ToString(r.miss)), sni);
    return;
  }
  if (p->port == 0 && !plain) {
    if (r.miss != RouteMiss::kPlainHostSni) Fail("plain host accepted while off", sni);
    return;
  }
  std::string host = AsciiLower(p->host);
  if (meshgate::base::HasLabelSuffix(host, ".global")) host = host.substr(0, host.size() - 7) + ".svc.cluster.local";
  if (r.host != host) Fail("looked up \"" + r.host + "\", expected \"" + host + "\"", sni);
  const Cluster* hit = nullptr;
  const RouteMiss want = Expected(table, *p, host, &hit);
  if (r.miss != want) Fail(std::string("answered ") + std::string(ToString(r.miss)) + ", expected " + std::string(ToString(want)), sni);
  if (r.cluster != hit && want == RouteMiss::kNone) Fail("routed to " + r.cluster->name + ", expected " + hit->name, sni);
}

}  // namespace

// Input: the SNI bytes; the first byte's low bit turns the plain-host form on.
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0 || size > 512) return 0;
  const bool plain = data[0] & 1;
  Check(std::string_view(reinterpret_cast<const char*>(data) + 1, size - 1), plain);
  return 0;
}
