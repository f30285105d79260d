// serve.yaml: every key checked, every problem reported at once, with the
// same YAML tree and field readers as meshgate.yaml.
#include "config/settings/serve_config.h"

#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <set>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_join.h"
#include "base/address.h"
#include "base/duration.h"
#include "base/names.h"
#include "base/read_file.h"
#include "config/settings/read_limits.h"
#include "base/yaml/yaml_fields.h"

namespace meshgate::config {

namespace {

namespace fs = std::filesystem;
using yaml::ErrorSink;
using yaml::IfPresent;

class ServeConfigReader {
 public:
  ServeConfigReader(ErrorSink& sink, std::string base_dir, ServeConfig& config)
      : sink_(sink), base_(std::move(base_dir)), config_(config) {}

  void Read(const yaml::Node& root);

 private:
  std::optional<std::string> String(const yaml::Node& n, std::string_view path) {
    return yaml::ReadString(n, path, sink_);
  }
  std::string Resolve(const std::string& path) const;

  void ReadListen(const yaml::Node& node);
  void ReadTls(const yaml::Node& node);
  void ReadSuffix(const yaml::Node& node);
  void ReadNamespace(const yaml::Node& node);
  void ReadMaxWatch(const yaml::Node& node);
  void ReadDns(const yaml::Node& node);
  void ReadClusters(const yaml::Node& root);
  void ReadCluster(const yaml::Node& node, const std::string& path);
  void ReadClusterName(const yaml::Node& node, const std::string& path, ServeConfig::Cluster& cluster);
  void ReadClusterGateway(const yaml::Node& node, const std::string& path, ServeConfig::Cluster& cluster);
  void ReadClusterMesh(const yaml::Node& node, const std::string& path, ServeConfig::Cluster& cluster);

  ErrorSink& sink_;
  std::string base_;
  ServeConfig& config_;
  std::set<std::string> names_;  // the clusters' so far, for duplicates
};

void ServeConfigReader::Read(const yaml::Node& root) {
  if (!yaml::ExpectMap(root, "", sink_)) return;
  yaml::CheckFields(root, "",
                    {"listen", "tls", "suffix", "namespace", "allocations", "maxWatch", "dns", "clusters", "limits"},
                    sink_);
  IfPresent(root, "listen", [&](const yaml::Node& n) { ReadListen(n); });
  IfPresent(root, "tls", [&](const yaml::Node& n) { ReadTls(n); });
  IfPresent(root, "suffix", [&](const yaml::Node& n) { ReadSuffix(n); });
  IfPresent(root, "namespace", [&](const yaml::Node& n) { ReadNamespace(n); });
  IfPresent(root, "allocations", [&](const yaml::Node& n) {
    if (auto text = String(n, "allocations")) config_.allocations_dir = Resolve(*text);
  });
  IfPresent(root, "maxWatch", [&](const yaml::Node& n) { ReadMaxWatch(n); });
  ReadClusters(root);
  IfPresent(root, "dns", [&](const yaml::Node& n) { ReadDns(n); });
  IfPresent(root, "limits", [&](const yaml::Node& n) {
    if (!yaml::ExpectMap(n, "limits", sink_)) return;
    yaml::CheckFields(n, "limits", {"maxConfigFileBytes", "maxConfigBytes"}, sink_);
    ReadConfigReadLimits(n, "limits", config_.config_read_limits, sink_);
  });
}

std::string ServeConfigReader::Resolve(const std::string& path) const {
  fs::path p(path);
  if (p.is_relative() && !base_.empty()) p = fs::path(base_) / p;
  return p.string();
}

void ServeConfigReader::ReadListen(const yaml::Node& node) {
  auto text = String(node, "listen");
  if (!text) return;
  if (auto parsed = base::ParseListenAddress(*text); !parsed.ok()) {
    sink_.Add(node, "listen", base::StdView(parsed.status().message()));
    return;
  }
  config_.listen = *text;
}

void ServeConfigReader::ReadTls(const yaml::Node& node) {
  if (!yaml::ExpectMap(node, "tls", sink_)) return;
  yaml::CheckFields(node, "tls", {"certChain", "key"}, sink_);
  const std::pair<std::string_view, std::string*> files[] = {{"certChain", &config_.tls_cert_chain},
                                                             {"key", &config_.tls_key}};
  for (const auto& [key, out] : files) {
    const auto entry = yaml::Lookup(node, key);
    const std::string path = yaml::FieldPath("tls", key);
    if (!yaml::Require(entry, node, path, sink_)) continue;
    if (auto text = String(entry.value, path)) *out = Resolve(*text);
  }
}

void ServeConfigReader::ReadSuffix(const yaml::Node& node) {
  auto text = String(node, "suffix");
  if (!text) return;
  if (auto problem = base::FqdnProblem(*text)) {
    sink_.Add(node, "suffix", absl::StrCat("\"", *text, "\" ", *problem));
    return;
  }
  config_.suffix = *text;
}

void ServeConfigReader::ReadNamespace(const yaml::Node& node) {
  auto text = String(node, "namespace");
  if (!text) return;
  if (!base::IsDns1123Label(*text)) {
    sink_.Add(node, "namespace", absl::StrCat("\"", *text, "\" is not a namespace name"));
    return;
  }
  config_.ns = *text;
}

void ServeConfigReader::ReadMaxWatch(const yaml::Node& node) {
  auto text = String(node, "maxWatch");
  if (!text) return;
  auto d = base::ParseDuration(*text);
  if (!d.ok() || d->count() < 1000) {
    sink_.Add(node, "maxWatch", "must be a duration of at least 1s, such as 60s");
    return;
  }
  config_.max_watch = *d;
}

void ServeConfigReader::ReadDns(const yaml::Node& node) {
  if (!yaml::ExpectMap(node, "dns", sink_)) return;
  yaml::CheckFields(node, "dns", {"listen", "zone", "cluster"}, sink_);
  ServeConfig::Dns dns;
  dns.zone = config_.suffix;
  const auto listen = yaml::Lookup(node, "listen");
  if (!yaml::Require(listen, node, "dns.listen", sink_)) return;
  auto text = String(listen.value, "dns.listen");
  if (!text) return;
  if (auto parsed = base::ParseListenAddress(*text); !parsed.ok()) {
    return sink_.Add(listen.value, "dns.listen", base::StdView(parsed.status().message()));
  }
  dns.listen = *text;
  IfPresent(node, "zone", [&](const yaml::Node& n) {
    auto zone = String(n, "dns.zone");
    if (!zone) return;
    std::string bare = *zone;
    if (!bare.empty() && bare.back() == '.') bare.pop_back();
    // The zone holds exactly the ServiceEntry hosts, <name>.<ns>.<suffix>.
    // DNS names compare without case (RFC 4343), so "GLOBAL." names the same
    // zone as "global"; the suffix's own spelling is kept (dns.zone stays
    // equal to suffix, which the settings fuzzer checks).
    if (absl::AsciiStrToLower(bare) != absl::AsciiStrToLower(config_.suffix)) {
      return sink_.Add(n, "dns.zone", absl::StrCat("\"", *zone, "\" must be the ServiceEntry suffix \"",
                                                   config_.suffix, "\" (the names it answers)"));
    }
  });
  IfPresent(node, "cluster", [&](const yaml::Node& n) {
    auto cluster = String(n, "dns.cluster");
    if (!cluster) return;
    if (!names_.count(*cluster)) {
      return sink_.Add(n, "dns.cluster", absl::StrCat("\"", *cluster, "\" is not one of clusters[].name"));
    }
    dns.cluster = *cluster;
  });
  config_.dns = std::move(dns);
}

void ServeConfigReader::ReadClusters(const yaml::Node& root) {
  const auto clusters = yaml::Lookup(root, "clusters");
  if (!clusters.present() || yaml::IsMissing(clusters.value)) {
    sink_.Add(root, "clusters", "is required: one entry per cluster (name, gateway, mesh and/or kubernetes)");
    return;
  }
  yaml::ForEachMap(clusters.value, "clusters", sink_,
                   [&](const yaml::Node& item, const std::string& path, size_t) { ReadCluster(item, path); });
}

void ServeConfigReader::ReadCluster(const yaml::Node& node, const std::string& path) {
  yaml::CheckFields(node, path, {"name", "network", "gateway", "mesh", "kubernetes", "ca"}, sink_);
  ServeConfig::Cluster cluster;
  ReadClusterName(node, path, cluster);
  IfPresent(node, "network", [&](const yaml::Node& n) {
    if (auto text = String(n, yaml::FieldPath(path, "network"))) cluster.network = *text;
  });
  ReadClusterGateway(node, path, cluster);
  ReadClusterMesh(node, path, cluster);
  IfPresent(node, "kubernetes", [&](const yaml::Node& n) {
    config::ReadKubernetesConfig(n, yaml::FieldPath(path, "kubernetes"), sink_,
                                 [this](const std::string& p) { return Resolve(p); }, cluster.kubernetes);
  });
  if (!yaml::Lookup(node, "mesh").present() && !yaml::Lookup(node, "kubernetes").present()) {
    sink_.Add(node, yaml::FieldPath(path, "mesh"),
              "required unless kubernetes: is set ({inCluster: true} or {kubeconfig: PATH}); both may be");
  }
  IfPresent(node, "ca", [&](const yaml::Node& n) {
    if (auto text = String(n, yaml::FieldPath(path, "ca"))) cluster.ca_dir = Resolve(*text);
  });
  config_.clusters.push_back(std::move(cluster));
}

void ServeConfigReader::ReadClusterName(const yaml::Node& node, const std::string& path,
                                        ServeConfig::Cluster& cluster) {
  const auto name = yaml::Lookup(node, "name");
  const std::string name_path = yaml::FieldPath(path, "name");
  if (!yaml::Require(name, node, name_path, sink_)) return;
  auto text = String(name.value, name_path);
  if (!text) return;
  if (!base::IsDns1123Label(*text)) {
    sink_.Add(name.value, name_path,
              absl::StrCat("\"", *text, "\" must be a DNS label (lowercase letters, digits, '-')"));
  } else if (!names_.insert(*text).second) {
    sink_.Add(name.value, name_path, absl::StrCat("duplicate cluster \"", *text, "\""));
  } else {
    cluster.name = *text;
  }
}

void ServeConfigReader::ReadClusterGateway(const yaml::Node& node, const std::string& path,
                                           ServeConfig::Cluster& cluster) {
  const auto gateway = yaml::Lookup(node, "gateway");
  const std::string gateway_path = yaml::FieldPath(path, "gateway");
  if (!yaml::Require(gateway, node, gateway_path, sink_)) return;
  auto text = String(gateway.value, gateway_path);
  if (!text) return;
  auto address = ParseGatewayAddress(*text);
  if (!address.ok()) {
    sink_.Add(gateway.value, gateway_path, base::StdView(address.status().message()));
    return;
  }
  cluster.gateway = *text;
  cluster.gateway_address = *std::move(address);
}

void ServeConfigReader::ReadClusterMesh(const yaml::Node& node, const std::string& path,
                                        ServeConfig::Cluster& cluster) {
  const auto mesh = yaml::Lookup(node, "mesh");
  const std::string mesh_path = yaml::FieldPath(path, "mesh");
  if (!mesh.present()) return;  // then kubernetes: is required (ReadCluster)
  if (!yaml::Require(mesh, node, mesh_path, sink_)) return;
  yaml::ForEachString(mesh.value, mesh_path, sink_,
                      [&](const yaml::Node& item, const std::string& p, const std::string& text) {
                        if (text.empty()) return sink_.Add(item, p, "empty path");
                        cluster.mesh.push_back(Resolve(text));
                      });
}

}  // namespace

absl::StatusOr<GatewayAddress> ParseGatewayAddress(std::string_view text) {
  GatewayAddress address;
  std::string_view host = text;
  const size_t colon = text.rfind(':');
  if (colon != std::string_view::npos && text.find(':') == colon) {  // one colon: host:port
    host = text.substr(0, colon);
    if (!base::ParsePortNumber(text.substr(colon + 1), address.port) || address.port == 0) {
      return absl::InvalidArgumentError(absl::StrCat("--gateway \"", base::AbslView(text), "\": bad port"));
    }
  }
  // More colons: a bare IPv6 address, which takes the default port.
  if (host.empty()) return absl::InvalidArgumentError("--gateway is empty");
  if (!base::CanonicalIp(host) && base::FqdnProblem(host)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--gateway \"", base::AbslView(host), "\" is neither an IP address nor a host name"));
  }
  address.host = std::string(host);
  return address;
}

absl::StatusOr<ServeConfig> ParseServeConfig(const std::string& text, const std::string& name,
                                             const std::string& base_dir) {
  yaml::ParseError error;
  const std::optional<yaml::Stream> stream = yaml::Parse(text, &error);
  if (!stream) {
    return absl::InvalidArgumentError(
        absl::StrCat(yaml::Located(name, {error.line, error.column}), ": YAML syntax error: ", error.message));
  }
  ServeConfig config;
  std::vector<std::string> errors;
  {
    ErrorSink sink(name, &errors);  // flushes into `errors` at the end of this scope
    const std::vector<yaml::Node>& docs = stream->documents();
    if (docs.size() != 1 || yaml::IsMissing(docs[0])) {
      sink.AddAt({1, 1}, "", "expected one YAML document with the serve configuration");
    } else {
      ServeConfigReader(sink, base_dir, config).Read(docs[0]);
    }
  }
  if (!errors.empty()) return absl::InvalidArgumentError(absl::StrJoin(errors, "\n"));
  return config;
}

absl::StatusOr<ServeConfig> LoadServeConfig(const std::string& path) {
  absl::StatusOr<std::string> text = base::ReadConfigFile(path);
  if (!text.ok()) return text.status();
  return ParseServeConfig(*text, path, fs::path(path).parent_path().string());
}

}  // namespace meshgate::config
