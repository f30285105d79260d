// libFuzzer target for meshgate's own files: every input is parsed as
// meshgate.yaml (ParseGatewayConfig, what --config and every reload read)
// and as serve.yaml (ParseServeConfig, meshgatectl serve's). An accepted
// config is re-checked against what the readers promise; a refusal must
// name the file.
#include <cstdio>
#include <cstdlib>
#include <set>
#include <string>

#include "base/address.h"
#include "config/settings/gateway_config.h"
#include "config/settings/serve_config.h"

namespace {

using namespace meshgate;

void Fail(const std::string& what) {
  std::fprintf(stderr, "settings_fuzz: %s\n", what.c_str());
  std::abort();
}

void CheckAddress(const std::string& address, const char* what, bool may_be_empty) {
  if (address.empty() && may_be_empty) return;
  if (!base::ParseListenAddress(address).ok()) Fail(std::string(what) + " accepted but does not parse: " + address);
}

void CheckGateway(const std::string& text) {
  auto parsed = config::ParseGatewayConfig(text, "meshgate.yaml", "/etc/meshgate");
  if (!parsed.ok()) {
    if (!std::string(parsed.status().message()).starts_with("meshgate.yaml")) {
      Fail("error does not name the file: " + std::string(parsed.status().message()));
    }
    return;
  }
  const config::GatewayConfig& c = *parsed;
  CheckAddress(c.listen, "listen", false);
  CheckAddress(c.admin, "admin", true);
  CheckAddress(c.metrics, "metrics", true);
  CheckAddress(c.readiness, "readiness", true);
  if (c.threads < 0 || c.threads > 256) Fail("threads out of 0..256");
  if (c.hello_timeout.count() <= 0 || c.connect_timeout.count() <= 0 || c.idle_timeout.count() <= 0) {
    Fail("a timeout accepted that is not positive");
  }
  if (!(c.access_log.sample_rate >= 0 && c.access_log.sample_rate <= 1)) Fail("sampleRate out of 0..1");
  if (!c.locality.empty() && config::GatewayLocalityProblem(c.locality)) Fail("locality accepted with a problem: " + c.locality);
  for (const std::string& s : c.dns.servers) {
    if (!config::CheckDnsServer(s).ok()) Fail("dns server accepted that does not check: " + s);
  }
  if (c.dns.min_ttl > c.dns.max_ttl) Fail("dns minTtl above maxTtl");
  if (!c.control.url.empty() && !config::ParseControlUrl(c.control.url).ok()) Fail("control.url accepted: " + c.control.url);
  for (const auto& hc : c.health_checks) {
    if (hc.host.empty() || hc.interval.count() <= 0 || hc.timeout.count() <= 0) Fail("health check accepted: " + hc.host);
    if (hc.healthy_threshold == 0 || hc.unhealthy_threshold == 0) Fail("health check threshold 0 accepted");
  }
  for (const auto& r : c.sni_rewrites) {
    if (r.from.empty()) Fail("sniRewrites entry with an empty from");
  }
  for (const std::string& p : c.mesh_paths) {
    if (p.empty()) Fail("empty mesh path accepted");
  }
}

void CheckServe(const std::string& text) {
  auto parsed = config::ParseServeConfig(text, "serve.yaml", "/etc/meshgatectl");
  if (!parsed.ok()) {
    if (!std::string(parsed.status().message()).starts_with("serve.yaml")) {
      Fail("error does not name the file: " + std::string(parsed.status().message()));
    }
    return;
  }
  const config::ServeConfig& c = *parsed;
  CheckAddress(c.listen, "listen", false);
  if (c.max_watch < std::chrono::seconds(1)) Fail("maxWatch under 1s accepted");
  if (c.tls_cert_chain.empty() != c.tls_key.empty()) Fail("tls with only one of certChain and key");
  std::set<std::string> names;
  for (const auto& cluster : c.clusters) {
    if (cluster.name.empty() || !names.insert(cluster.name).second) Fail("cluster name empty or duplicate");
    if (!config::ParseGatewayAddress(cluster.gateway).ok()) Fail("gateway accepted that does not parse: " + cluster.gateway);
  }
  if (c.dns) {
    CheckAddress(c.dns->listen, "dns.listen", false);
    if (c.dns->zone != c.suffix) Fail("dns.zone is not the suffix");
    if (!c.dns->cluster.empty() && !names.contains(c.dns->cluster)) Fail("dns.cluster names no cluster");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 64 * 1024) return 0;
  const std::string text(reinterpret_cast<const char*>(data), size);
  CheckGateway(text);
  CheckServe(text);
  return 0;
}
