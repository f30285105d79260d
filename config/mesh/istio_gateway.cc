// Gateway servers: port, hosts ("namespace/host", wildcards) and tls.mode.
#include "config/mesh/istio_gateway.h"

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "base/names.h"
#include "config/mesh/workload.h"

namespace meshgate::config::internal {

namespace {

constexpr absl::string_view kTlsModes[] = {"PASSTHROUGH",      "SIMPLE",       "MUTUAL",
                                           "AUTO_PASSTHROUGH", "ISTIO_MUTUAL", "OPTIONAL_MUTUAL"};

// "host", "ns/host", "*/host" or "./host" (the Gateway's own namespace). The
// namespace part is validated and kept for messages, but, as in Istio's
// AUTO_PASSTHROUGH (pilot/pkg/model/gateway.go GetSNIHostsForServer drops it),
// it does not restrict which services are exported.
void ReadServerHost(const yaml::Node& node, const std::string& path, const ResourceMeta& meta,
                    ErrorSink& sink, GatewayServer& server) {
  auto text = ReadString(node, path, sink);
  if (!text) return;
  GatewayServer::Host host{"*", AsciiLower(*text)};
  if (const size_t slash = host.name.find('/'); slash != std::string::npos) {
    host.ns = host.name.substr(0, slash);
    host.name = host.name.substr(slash + 1);
    if (host.ns == ".") host.ns = meta.ns;
    if (host.ns != "*" && !IsDns1123Label(host.ns)) {
      sink.Add(node, path,
               absl::StrCat("\"", *text, "\": the part before '/' must be \"*\", \".\" or a "
                                         "namespace name"));
      return;
    }
  }
  if (auto problem = WildcardHostProblem(host.name)) {
    sink.Add(node, path, absl::StrCat("\"", *text, "\" is not a valid host: ", *problem));
    return;
  }
  server.hosts.push_back(std::move(host));
}

void ReadServerPort(const yaml::Node& server, const std::string& path, ErrorSink& sink,
                    GatewayServer& out, std::string& name) {
  const MapEntry port = Lookup(server, "port");
  const std::string port_path = FieldPath(path, "port");
  if (!Require(port, server, port_path, sink) || !ExpectMap(port.value, port_path, sink)) return;
  CheckFields(port.value, port_path, {"number", "protocol", "name", "targetPort"}, sink);
  const MapEntry number = Lookup(port.value, "number");
  if (Require(number, port.value, FieldPath(port_path, "number"), sink)) {
    if (auto v = ReadInt(number.value, FieldPath(port_path, "number"), 1, 65535, sink)) {
      out.port = static_cast<uint16_t>(*v);
    }
  }
  IfPresent(port.value, "name", [&](const yaml::Node& n) {
    if (auto text = ReadString(n, FieldPath(port_path, "name"), sink)) name = *text;
  });
  IfPresent(port.value, "protocol", [&](const yaml::Node& n) {
    ReadString(n, FieldPath(port_path, "protocol"), sink);
  });
  IfPresent(port.value, "targetPort", [&](const yaml::Node& n) {
    ReadInt(n, FieldPath(port_path, "targetPort"), 1, 65535, sink);
  });
}

void ReadServerTls(const yaml::Node& tls, const std::string& path, ErrorSink& sink,
                   GatewayServer& out) {
  if (!ExpectMap(tls, path, sink)) return;
  CheckFields(tls, path,
              {"httpsRedirect", "mode", "serverCertificate", "privateKey", "caCertificates",
               "credentialName", "credentialNames", "tlsCertificates", "subjectAltNames",
               "verifyCertificateSpki", "verifyCertificateHash", "minProtocolVersion",
               "maxProtocolVersion", "cipherSuites", "caCrl"},
              sink);
  IfPresent(tls, "mode", [&](const yaml::Node& n) {
    const std::string field = FieldPath(path, "mode");
    auto text = ReadString(n, field, sink);
    if (!text) return;
    for (absl::string_view mode : kTlsModes) {
      if (mode == *text) {
        out.tls_mode = *text;
        return;
      }
    }
    sink.Add(n, field,
             absl::StrCat("unknown TLS mode \"", *text,
                          "\" (one of: PASSTHROUGH, SIMPLE, MUTUAL, AUTO_PASSTHROUGH, "
                          "ISTIO_MUTUAL, OPTIONAL_MUTUAL)"));
  });
  if (out.tls_mode.empty()) out.tls_mode = "PASSTHROUGH";  // Istio's default mode
}

void ReadServers(const MapEntry& servers, const ResourceMeta& meta, ErrorSink& sink,
                 IstioGateway& gateway) {
  if (servers.value.IsSequence() && servers.value.size() == 0) {
    sink.Add(servers.key, "spec.servers", "must list at least one server");
  }
  absl::flat_hash_map<std::string, size_t> names;
  ForEachMap(servers.value, "spec.servers", sink, [&](const yaml::Node& node, const std::string& path, size_t i) {
    CheckFields(node, path, {"port", "bind", "hosts", "tls", "name", "defaultEndpoint"}, sink);
    GatewayServer server;
    server.ref = {path, PositionOf(node)};
    std::string port_name;
    ReadServerPort(node, path, sink, server, port_name);
    if (!port_name.empty()) {
      if (auto [it, added] = names.emplace(port_name, i); !added) {
        sink.Add(Lookup(Lookup(node, "port").value, "name").value, FieldPath(path, "port.name"),
                 absl::StrCat("port name \"", port_name, "\" is already used by spec.servers[",
                              it->second, "]"));
      }
    }
    const MapEntry hosts = Lookup(node, "hosts");
    const std::string hosts_path = FieldPath(path, "hosts");
    if (Require(hosts, node, hosts_path, sink) && ExpectList(hosts.value, hosts_path, sink)) {
      if (hosts.value.size() == 0) sink.Add(hosts.key, hosts_path, "must list at least one host");
      for (size_t h = 0; h < hosts.value.size(); ++h) {
        ReadServerHost(hosts.value[h], IndexPath(hosts_path, h), meta, sink, server);
      }
    }
    IfPresent(node, "tls", [&](const yaml::Node& n) {
      ReadServerTls(n, FieldPath(path, "tls"), sink, server);
    });
    gateway.servers.push_back(std::move(server));
  });
}

}  // namespace

IstioGateway ReadIstioGateway(const yaml::Node& doc, ResourceMeta meta, ErrorSink& sink) {
  IstioGateway gateway;
  ReadEnvelope(doc, kIstioNetworkingVersions, {"apiVersion", "kind", "metadata", "spec", "status"},
               sink, meta);
  gateway.meta = std::move(meta);
  const MapEntry spec = RequireSpec(doc, sink);
  if (!spec.present()) return gateway;
  CheckFields(spec.value, "spec", {"servers", "selector"}, sink);
  // The selector picks gateway workloads by label; which Gateways select
  // meshgate (its gateway labels) is decided when the mesh is built.
  IfPresent(spec.value, "selector", [&](const yaml::Node& n) {
    gateway.selector_ref = {"spec.selector", PositionOf(n)};
    if (auto labels = ReadLabels(n, "spec.selector", sink)) gateway.selector = std::move(*labels);
  });
  const MapEntry servers = Lookup(spec.value, "servers");
  if (Require(servers, spec.key, "spec.servers", sink)) ReadServers(servers, gateway.meta, sink, gateway);
  return gateway;
}

}  // namespace meshgate::config::internal
