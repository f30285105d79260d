// meshgate's own config file: every key checked, every problem reported at once.
#include "config/settings/gateway_config.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "base/names.h"
#include "base/duration.h"
#include "base/yaml/yaml_fields.h"
#include "absl/strings/ascii.h"
#include "config/settings/pod_info.h"
#include "config/settings/read_limits.h"
#include "base/read_file.h"

namespace meshgate::config {

namespace {

using base::ParseDuration;
using base::ParseListenAddress;
using yaml::ErrorSink;
using yaml::IfPresent;
using yaml::Lookup;
using yaml::MapEntry;

constexpr absl::string_view kLogLevels[] = {"trace", "debug", "info", "warn", "error", "off"};

class GatewayConfigReader {
 public:
  GatewayConfigReader(ErrorSink& sink, std::string base_dir, GatewayConfig& config)
      : sink_(sink), base_dir_(std::move(base_dir)), config_(config) {}

  void Read(const yaml::Node& root);

 private:
  void ReadListen(const yaml::Node& node);
  void ReadTimeouts(const yaml::Node& node);
  // A duration; zero is refused unless allow_zero (a delay or jitter may be 0).
  std::optional<std::chrono::milliseconds> ReadTimeout(const yaml::Node& node,
                                                       std::string_view path,
                                                       bool allow_zero = false);
  void ReadRelay(const yaml::Node& node);
  void ReadSniRewrites(const yaml::Node& node);
  std::optional<SniRewrite> ReadSniRewrite(const yaml::Node& node, const std::string& path);
  void ReadMesh(const yaml::Node& node);
  void ReadLogLevel(const yaml::Node& node);
  void ReadName(const yaml::Node& node, std::string_view path, bool label, std::string& out);
  void ReadDns(const yaml::Node& node);
  void ReadHealthChecks(const yaml::Node& node);
  void ReadEndpoint(const yaml::Node& node, std::string_view path, std::string& out);
  void ReadDrain(const yaml::Node& node);
  // drain: and upgrade:, how a process hands over to the next.
  void ReadLifecycle(const yaml::Node& root);
  void ReadUpgrade(const yaml::Node& node);
  void ReadAccessLog(const yaml::Node& node);
  void ReadControl(const yaml::Node& node);
  // labels, podInfoFile, network, requestedNetworkView, trustDomain and the
  // AUTO_PASSTHROUGH strictness switches.
  void ReadIdentity(const yaml::Node& root);
  void ReadLabels(const yaml::Node& node);
  std::string Resolve(const std::string& path) const;
  void ReadKubernetes(const yaml::Node& node);
  void ReadLimits(const yaml::Node& node);
  void ReadConnectionLimits(const yaml::Node& node);
  void ReadAcceptRate(const yaml::Node& node);
  void ReadProxyProtocol(const yaml::Node& node);
  void ReadUpstreamProxyProtocol(const yaml::Node& node);

  ErrorSink& sink_;
  std::string base_dir_;
  GatewayConfig& config_;
};

void GatewayConfigReader::Read(const yaml::Node& root) {
  if (!yaml::ExpectMap(root, "", sink_)) return;
  yaml::CheckFields(root, "",
                        {"listen", "threads", "timeouts", "maxHelloBytes", "maxConnectAttempts",
                         "relay", "maxPipes", "sniRewrites", "mesh", "logLevel", "namespace", "rootNamespace",
                         "clusterDomain", "dns", "locality", "healthChecks", "admin", "metrics",
                         "readiness", "drain", "accessLog", "clusterId", "control", "labels",
                         "podInfoFile", "requireIstioAlpn", "plainHostSni", "network",
                         "requestedNetworkView", "trustDomain", "kubernetes", "limits", "proxyProtocol",
                         "upstreamProxyProtocol", "upgrade"},
                        sink_);
  IfPresent(root, "listen", [&](const yaml::Node& n) { ReadListen(n); });
  IfPresent(root, "threads", [&](const yaml::Node& n) {
    if (auto v = yaml::ReadInt(n, "threads", 0, 256, sink_))
      config_.threads = static_cast<int>(*v);
  });
  IfPresent(root, "timeouts", [&](const yaml::Node& n) { ReadTimeouts(n); });
  IfPresent(root, "maxHelloBytes", [&](const yaml::Node& n) {
    if (auto v = yaml::ReadInt(n, "maxHelloBytes", 512, 1048576, sink_)) {
      config_.max_hello_bytes = static_cast<size_t>(*v);
    }
  });
  IfPresent(root, "maxConnectAttempts", [&](const yaml::Node& n) {
    if (auto v = yaml::ReadInt(n, "maxConnectAttempts", 1, 10, sink_)) {
      config_.max_connect_attempts = static_cast<int>(*v);
    }
  });
  IfPresent(root, "relay", [&](const yaml::Node& n) { ReadRelay(n); });
  IfPresent(root, "maxPipes", [&](const yaml::Node& n) {
    if (auto v = yaml::ReadInt(n, "maxPipes", 0, 1000000, sink_)) config_.max_pipes = *v;
  });
  IfPresent(root, "sniRewrites", [&](const yaml::Node& n) { ReadSniRewrites(n); });
  IfPresent(root, "mesh", [&](const yaml::Node& n) { ReadMesh(n); });
  IfPresent(root, "logLevel", [&](const yaml::Node& n) { ReadLogLevel(n); });
  IfPresent(root, "namespace",
            [&](const yaml::Node& n) { ReadName(n, "namespace", true, config_.gateway_namespace); });
  IfPresent(root, "rootNamespace",
            [&](const yaml::Node& n) { ReadName(n, "rootNamespace", true, config_.root_namespace); });
  IfPresent(root, "clusterDomain",
            [&](const yaml::Node& n) { ReadName(n, "clusterDomain", false, config_.cluster_domain); });
  IfPresent(root, "dns", [&](const yaml::Node& n) { ReadDns(n); });
  IfPresent(root, "healthChecks", [&](const yaml::Node& n) { ReadHealthChecks(n); });
  const std::pair<std::string_view, std::string*> endpoints[] = {
      {"admin", &config_.admin}, {"metrics", &config_.metrics}, {"readiness", &config_.readiness}};
  // Not a structured binding: clang before 16 cannot capture one in a lambda (P1091R3).
  for (const auto& field : endpoints) {
    const auto key = field.first;
    auto* const out = field.second;
    IfPresent(root, key, [&](const yaml::Node& n) { ReadEndpoint(n, key, *out); });
  }
  ReadLifecycle(root);
  IfPresent(root, "accessLog", [&](const yaml::Node& n) { ReadAccessLog(n); });
  IfPresent(root, "control", [&](const yaml::Node& n) { ReadControl(n); });
  IfPresent(root, "kubernetes", [&](const yaml::Node& n) { ReadKubernetes(n); });
  IfPresent(root, "limits", [&](const yaml::Node& n) { ReadLimits(n); });
  IfPresent(root, "proxyProtocol", [&](const yaml::Node& n) { ReadProxyProtocol(n); });
  IfPresent(root, "upstreamProxyProtocol", [&](const yaml::Node& n) { ReadUpstreamProxyProtocol(n); });
  ReadIdentity(root);
  IfPresent(root, "clusterId", [&](const yaml::Node& n) {
    if (auto text = yaml::ReadString(n, "clusterId", sink_)) {
      if (text->empty()) {
        sink_.Add(n, "clusterId", "must not be empty");
      } else {
        config_.cluster_id = *text;
      }
    }
  });
  IfPresent(root, "locality", [&](const yaml::Node& n) {
    auto text = yaml::ReadString(n, "locality", sink_);
    if (!text) return;
    if (auto problem = GatewayLocalityProblem(*text)) {
      sink_.Add(n, "locality", absl::StrCat("\"", *text, "\" ", *problem));
      return;
    }
    config_.locality = *text;
  });
}

void GatewayConfigReader::ReadName(const yaml::Node& node, std::string_view path, bool label,
                                   std::string& out) {
  auto text = yaml::ReadString(node, path, sink_);
  if (!text) return;
  if (label && !base::IsDns1123Label(*text)) {
    sink_.Add(node, path,
              absl::StrCat("\"", *text, "\" is not a namespace name (lowercase letters, digits, "
                           "'-', at most 63)"));
    return;
  }
  if (!label) {
    if (auto problem = base::FqdnProblem(*text)) {
      sink_.Add(node, path, absl::StrCat("\"", *text, "\" is not a domain: ", *problem));
      return;
    }
  }
  out = *text;
}

void GatewayConfigReader::ReadEndpoint(const yaml::Node& node, std::string_view path,
                                       std::string& out) {
  auto text = yaml::ReadString(node, path, sink_);
  if (!text) return;
  if (*text == "off" || text->empty()) {
    out.clear();
    return;
  }
  if (auto address = ParseListenAddress(*text); !address.ok()) {
    sink_.Add(node, path, absl::StrCat(address.status().message(), " (or \"off\")"));
    return;
  }
  out = *text;
}

void GatewayConfigReader::ReadLifecycle(const yaml::Node& root) {
  IfPresent(root, "drain", [&](const yaml::Node& n) { ReadDrain(n); });
  IfPresent(root, "upgrade", [&](const yaml::Node& n) { ReadUpgrade(n); });
}

// upgrade: {socket: PATH}: where this process serves its listening sockets
// to its successor (README "Upgrades"). A relative path is against this file.
void GatewayConfigReader::ReadUpgrade(const yaml::Node& node) {
  if (!yaml::ExpectMap(node, "upgrade", sink_)) return;
  yaml::CheckFields(node, "upgrade", {"socket"}, sink_);
  IfPresent(node, "socket", [&](const yaml::Node& n) {
    auto text = yaml::ReadString(n, "upgrade.socket", sink_);
    if (!text) return;
    const std::string path = text->empty() ? "" : Resolve(*text);
    // sockaddr_un.sun_path holds 108 bytes with the NUL (unix(7)).
    if (text->empty() || (*text)[0] == '@' || path.size() > 107) {
      sink_.Add(n, "upgrade.socket",
                absl::StrCat("\"", *text, "\" is not a usable unix socket path (a file path of at most 107 bytes)"));
      return;
    }
    config_.upgrade.socket = path;
  });
}

void GatewayConfigReader::ReadDrain(const yaml::Node& node) {
  if (!yaml::ExpectMap(node, "drain", sink_)) return;
  yaml::CheckFields(node, "drain", {"delay", "time"}, sink_);
  const std::pair<std::string_view, std::chrono::milliseconds*> fields[] = {
      {"delay", &config_.drain.delay}, {"time", &config_.drain.time}};
  for (const auto& field : fields) {
    const auto key = field.first;
    auto* const out = field.second;
    IfPresent(node, key, [&](const yaml::Node& n) {
      // 0 is allowed: no delay, or close at once.
      if (auto d = ReadTimeout(n, yaml::FieldPath("drain", key), /*allow_zero=*/true)) *out = *d;
    });
  }
}

void GatewayConfigReader::ReadLabels(const yaml::Node& node) {
  auto labels = yaml::ReadStringMap(node, "labels", sink_);
  if (!labels) return;
  for (const auto& [key, value] : *labels) {
    if (auto problem = base::LabelKeyProblem(key)) {
      sink_.Add(node, absl::StrCat("labels.", key), absl::StrCat("label key: ", *problem));
    } else if (auto bad = base::LabelValueProblem(value)) {
      sink_.Add(node, absl::StrCat("labels.", key), absl::StrCat("label value: ", *bad));
    }
  }
  config_.labels = std::move(*labels);
}

void GatewayConfigReader::ReadIdentity(const yaml::Node& root) {
  IfPresent(root, "labels", [&](const yaml::Node& n) { ReadLabels(n); });
  IfPresent(root, "podInfoFile", [&](const yaml::Node& n) {
    if (auto text = yaml::ReadString(n, "podInfoFile", sink_)) {
      config_.pod_info_file = text->empty() ? "" : Resolve(*text);
    }
  });
  IfPresent(root, "requireIstioAlpn", [&](const yaml::Node& n) {
    if (auto v = yaml::ReadBool(n, "requireIstioAlpn", sink_)) config_.require_istio_alpn = *v;
  });
  IfPresent(root, "plainHostSni", [&](const yaml::Node& n) {
    if (auto v = yaml::ReadBool(n, "plainHostSni", sink_)) config_.plain_host_sni = *v;
  });
  IfPresent(root, "network", [&](const yaml::Node& n) {
    if (auto text = yaml::ReadString(n, "network", sink_)) config_.network = *text;
  });
  IfPresent(root, "requestedNetworkView", [&](const yaml::Node& n) {
    if (!yaml::ExpectList(n, "requestedNetworkView", sink_)) return;
    for (size_t i = 0; i < n.size(); ++i) {
      const std::string path = yaml::IndexPath("requestedNetworkView", i);
      if (auto text = yaml::ReadString(n[i], path, sink_)) {
        if (text->empty()) {
          sink_.Add(n[i], path, "must not be empty");
        } else {
          config_.requested_network_view.push_back(*text);
        }
      }
    }
  });
  IfPresent(root, "trustDomain",
            [&](const yaml::Node& n) { ReadName(n, "trustDomain", false, config_.trust_domain); });
}

std::string GatewayConfigReader::Resolve(const std::string& path) const {
  std::filesystem::path p(path);
  if (p.is_relative() && !base_dir_.empty()) p = std::filesystem::path(base_dir_) / p;
  return p.string();
}

// `control: URL`, or a map with the URL and how to follow it.
void GatewayConfigReader::ReadControl(const yaml::Node& node) {
  auto read_url = [&](const yaml::Node& n, std::string_view path) {
    auto text = yaml::ReadString(n, path, sink_);
    if (!text) return;
    if (auto parsed = ParseControlUrl(*text); !parsed.ok()) {
      sink_.Add(n, path, base::StdView(parsed.status().message()));
      return;
    }
    config_.control.url = *text;
  };
  if (node.IsScalar()) return read_url(node, "control");
  if (!yaml::ExpectMap(node, "control", sink_)) return;
  yaml::CheckFields(node, "control",
                        {"url", "cluster", "caFile", "required", "initialBackoff", "maxBackoff",
                         "watchTimeout"},
                        sink_);
  auto& control = config_.control;
  if (!yaml::Lookup(node, "url").present()) {
    sink_.Add(node, "control.url", "is required (http://HOST:PORT or https://HOST:PORT)");
  }
  IfPresent(node, "url", [&](const yaml::Node& n) { read_url(n, "control.url"); });
  IfPresent(node, "cluster", [&](const yaml::Node& n) {
    if (auto text = yaml::ReadString(n, "control.cluster", sink_)) control.cluster = *text;
  });
  IfPresent(node, "caFile", [&](const yaml::Node& n) {
    if (auto text = yaml::ReadString(n, "control.caFile", sink_)) control.ca_file = Resolve(*text);
  });
  IfPresent(node, "required", [&](const yaml::Node& n) {
    if (auto v = yaml::ReadBool(n, "control.required", sink_)) control.required = *v;
  });
  const std::pair<std::string_view, std::chrono::milliseconds*> durations[] = {
      {"initialBackoff", &control.initial_backoff},
      {"maxBackoff", &control.max_backoff},
      {"watchTimeout", &control.watch_timeout}};
  for (const auto& field : durations) {
    const auto key = field.first;
    auto* const out = field.second;
    IfPresent(node, key, [&](const yaml::Node& n) {
      if (auto d = ReadTimeout(n, yaml::FieldPath("control", key))) *out = *d;
    });
  }
  if (control.max_backoff < control.initial_backoff) {
    sink_.Add(node, "control.maxBackoff", "must not be shorter than control.initialBackoff");
  }
}

// `kubernetes: {inCluster: true}` or `kubernetes: {kubeconfig: PATH,
// context: NAME, allowInsecure: false}`: follow the API server directly.
void GatewayConfigReader::ReadKubernetes(const yaml::Node& node) {
  ReadKubernetesConfig(node, "kubernetes", sink_, [this](const std::string& p) { return Resolve(p); },
                       config_.kubernetes);
}

void GatewayConfigReader::ReadAccessLog(const yaml::Node& node) {
  if (!yaml::ExpectMap(node, "accessLog", sink_)) return;
  yaml::CheckFields(node, "accessLog", {"path", "sampleRate"}, sink_);
  IfPresent(node, "path", [&](const yaml::Node& n) {
    if (auto text = yaml::ReadString(n, "accessLog.path", sink_)) {
      std::string path = *text == "off" ? "" : *text;
      if (!path.empty() && path != "stdout" && std::filesystem::path(path).is_relative() &&
          !base_dir_.empty()) {
        path = (std::filesystem::path(base_dir_) / path).string();
      }
      config_.access_log.path = path;
    }
  });
  IfPresent(node, "sampleRate", [&](const yaml::Node& n) {
    auto text = yaml::ReadString(n, "accessLog.sampleRate", sink_);
    if (!text) return;
    double rate = -1;
    try {
      size_t used = 0;
      rate = std::stod(*text, &used);
      if (used != text->size()) rate = -1;
    } catch (const std::exception&) {
      rate = -1;
    }
    if (!(rate >= 0 && rate <= 1)) {
      sink_.Add(n, "accessLog.sampleRate", absl::StrCat("must be a number in 0..1, got \"", *text, "\""));
      return;
    }
    config_.access_log.sample_rate = rate;
  });
}

// Every key of limits: is listed here; each group has its own reader. The
// config-read caps are read by ReadConfigReadLimits (shared with serve.yaml).
void GatewayConfigReader::ReadLimits(const yaml::Node& node) {
  if (!yaml::ExpectMap(node, "limits", sink_)) return;
  yaml::CheckFields(node, "limits",
                    {"maxConnections", "perSourceConnections", "acceptRate", "memory", "maxConfigFileBytes",
                     "maxConfigBytes"},
                    sink_);
  ReadConnectionLimits(node);
  ReadConfigReadLimits(node, "limits", config_.config_read_limits, sink_);
}

// The overload caps checked at accept (proxy/admission.h).
void GatewayConfigReader::ReadConnectionLimits(const yaml::Node& node) {
  IfPresent(node, "maxConnections", [&](const yaml::Node& n) {
    if (auto v = yaml::ReadInt(n, "limits.maxConnections", 0, 100000000, sink_)) config_.limits.max_connections = *v;
  });
  IfPresent(node, "perSourceConnections", [&](const yaml::Node& n) {
    if (auto v = yaml::ReadInt(n, "limits.perSourceConnections", 0, 10000000, sink_)) {
      config_.limits.per_source_connections = static_cast<uint32_t>(*v);
    }
  });
  IfPresent(node, "acceptRate", [&](const yaml::Node& n) { ReadAcceptRate(n); });
  IfPresent(node, "memory", [&](const yaml::Node& n) {
    auto text = yaml::ReadString(n, "limits.memory", sink_);
    if (!text) return;
    auto bytes = ParseByteSize(*text);
    if (!bytes) {
      sink_.Add(n, "limits.memory",
                absl::StrCat("\"", *text, "\" is not a byte size (bytes, or a number with Ki, Mi, Gi, Ti, k, M, G, T)"));
      return;
    }
    config_.limits.memory_bytes = *bytes;
  });
}

// acceptRate: N (a burst of N), or {rate: N, burst: M}.
void GatewayConfigReader::ReadAcceptRate(const yaml::Node& node) {
  constexpr int64_t kMax = 10000000;
  if (!node.IsMap()) {
    if (auto v = yaml::ReadInt(node, "limits.acceptRate", 0, kMax, sink_)) {
      config_.limits.accept_rate = static_cast<double>(*v);
      config_.limits.accept_burst = static_cast<uint32_t>(*v);
    }
    return;
  }
  yaml::CheckFields(node, "limits.acceptRate", {"rate", "burst"}, sink_);
  const auto rate = yaml::Lookup(node, "rate");
  if (!yaml::Require(rate, node, "limits.acceptRate.rate", sink_)) return;
  if (auto v = yaml::ReadInt(rate.value, "limits.acceptRate.rate", 1, kMax, sink_)) {
    config_.limits.accept_rate = static_cast<double>(*v);
    config_.limits.accept_burst = static_cast<uint32_t>(*v);
  }
  IfPresent(node, "burst", [&](const yaml::Node& n) {
    if (auto v = yaml::ReadInt(n, "limits.acceptRate.burst", 1, kMax, sink_)) {
      config_.limits.accept_burst = static_cast<uint32_t>(*v);
    }
  });
}

// proxyProtocol: {accept: ["10.0.0.0/8", "192.0.2.7"]}: the sources (load
// balancers) that must start every connection with a PROXY protocol header.
void GatewayConfigReader::ReadProxyProtocol(const yaml::Node& node) {
  if (!yaml::ExpectMap(node, "proxyProtocol", sink_)) return;
  yaml::CheckFields(node, "proxyProtocol", {"accept"}, sink_);
  const MapEntry accept = Lookup(node, "accept");
  if (!yaml::Require(accept, node, "proxyProtocol.accept", sink_)) return;
  if (!yaml::ExpectList(accept.value, "proxyProtocol.accept", sink_)) return;
  for (size_t i = 0; i < accept.value.size(); ++i) {
    const std::string path = yaml::IndexPath("proxyProtocol.accept", i);
    auto text = yaml::ReadString(accept.value[i], path, sink_);
    if (!text) continue;
    IpPrefix prefix;
    if (!ParseIpPrefix(*text, prefix)) {
      sink_.Add(accept.value[i], path,
                absl::StrCat("\"", *text, "\" is not an IP address or CIDR (\"10.0.0.0/8\", \"2001:db8::/32\")"));
      continue;
    }
    config_.proxy_protocol.accept.push_back(prefix);
    config_.proxy_protocol.accept_text.push_back(*text);
  }
}

// upstreamProxyProtocol: [{host: "*.bar.svc.cluster.local", version: 2}].
void GatewayConfigReader::ReadUpstreamProxyProtocol(const yaml::Node& node) {
  yaml::ForEachMap(node, "upstreamProxyProtocol", sink_, [&](const yaml::Node& item, const std::string& path, size_t) {
    yaml::CheckFields(item, path, {"host", "version"}, sink_);
    GatewayConfig::UpstreamProxyProtocol entry;
    const MapEntry host = Lookup(item, "host");
    const std::string host_path = yaml::FieldPath(path, "host");
    if (yaml::Require(host, item, host_path, sink_)) {
      if (auto text = yaml::ReadString(host.value, host_path, sink_)) {
        entry.host = base::AsciiLower(*text);
        if (auto problem = base::WildcardHostProblem(entry.host)) {
          sink_.Add(host.value, host_path, absl::StrCat("\"", *text, "\": ", *problem));
        }
      }
    }
    // Only v2 is sent: binary, and the version every receiver named in the
    // issue (Envoy, HAProxy, nginx) reads.
    IfPresent(item, "version", [&](const yaml::Node& n) {
      if (auto v = yaml::ReadInt(n, yaml::FieldPath(path, "version"), 2, 2, sink_)) entry.version = static_cast<int>(*v);
    });
    config_.upstream_proxy_protocol.push_back(std::move(entry));
  });
}

void GatewayConfigReader::ReadHealthChecks(const yaml::Node& node) {
  std::vector<GatewayConfig::HealthCheck> checks;
  yaml::ForEachMap(node, "healthChecks", sink_, [&](const yaml::Node& item,
                                                        const std::string& path, size_t) {
    yaml::CheckFields(item, path,
                          {"host", "port", "interval", "timeout", "healthyThreshold",
                           "unhealthyThreshold", "jitter"},
                          sink_);
    GatewayConfig::HealthCheck check;
    const MapEntry host = Lookup(item, "host");
    const std::string host_path = yaml::FieldPath(path, "host");
    if (yaml::Require(host, item, host_path, sink_)) {
      if (auto text = yaml::ReadString(host.value, host_path, sink_)) {
        check.host = base::AsciiLower(*text);
        if (auto problem = base::WildcardHostProblem(check.host)) {
          sink_.Add(host.value, host_path, absl::StrCat("\"", *text, "\": ", *problem));
        }
      }
    }
    IfPresent(item, "port", [&](const yaml::Node& n) {
      if (auto v = yaml::ReadInt(n, yaml::FieldPath(path, "port"), 1, 65535, sink_)) {
        check.port = static_cast<uint16_t>(*v);
      }
    });
    const std::pair<std::string_view, std::chrono::milliseconds*> durations[] = {
        {"interval", &check.interval}, {"timeout", &check.timeout}};
      for (const auto& field : durations) {
      const auto key = field.first;
      auto* const out = field.second;
      IfPresent(item, key, [&](const yaml::Node& n) {
        if (auto d = ReadTimeout(n, yaml::FieldPath(path, key))) *out = *d;
      });
    }
    IfPresent(item, "jitter", [&](const yaml::Node& n) {
      if (auto d = ReadTimeout(n, yaml::FieldPath(path, "jitter"), /*allow_zero=*/true)) check.jitter = *d;
    });
    const std::pair<std::string_view, uint32_t*> thresholds[] = {
        {"healthyThreshold", &check.healthy_threshold},
        {"unhealthyThreshold", &check.unhealthy_threshold}};
      for (const auto& field : thresholds) {
      const auto key = field.first;
      auto* const out = field.second;
      IfPresent(item, key, [&](const yaml::Node& n) {
        if (auto v = yaml::ReadInt(n, yaml::FieldPath(path, key), 1, 100, sink_)) {
          *out = static_cast<uint32_t>(*v);
        }
      });
    }
    if (check.timeout > check.interval) {
      sink_.Add(item, path, "timeout must not exceed interval");
    }
    checks.push_back(std::move(check));
  });
  config_.health_checks = std::move(checks);
}

void GatewayConfigReader::ReadDns(const yaml::Node& node) {
  if (!yaml::ExpectMap(node, "dns", sink_)) return;
  yaml::CheckFields(node, "dns", {"servers", "minTtl", "maxTtl"}, sink_);
  IfPresent(node, "servers", [&](const yaml::Node& list) {
    std::vector<std::string> servers;
    yaml::ForEachString(list, "dns.servers", sink_,
                            [&](const yaml::Node& item, const std::string& path, const std::string& text) {
                              if (absl::Status status = CheckDnsServer(text); !status.ok()) {
                                sink_.Add(item, path, base::StdView(status.message()));
                              } else {
                                servers.push_back(text);
                              }
                            });
    config_.dns.servers = std::move(servers);
  });
  IfPresent(node, "minTtl", [&](const yaml::Node& n) {
    if (auto d = ReadTimeout(n, "dns.minTtl")) config_.dns.min_ttl = *d;
  });
  IfPresent(node, "maxTtl", [&](const yaml::Node& n) {
    if (auto d = ReadTimeout(n, "dns.maxTtl")) config_.dns.max_ttl = *d;
  });
  if (config_.dns.min_ttl > config_.dns.max_ttl) {
    sink_.Add(node, "dns", "minTtl must not exceed maxTtl");
  }
}

void GatewayConfigReader::ReadListen(const yaml::Node& node) {
  auto text = yaml::ReadString(node, "listen", sink_);
  if (!text) return;
  if (auto address = ParseListenAddress(*text); !address.ok()) {
    sink_.Add(node, "listen", base::StdView(address.status().message()));
    return;
  }
  config_.listen = *text;
}

std::optional<std::chrono::milliseconds> GatewayConfigReader::ReadTimeout(const yaml::Node& node,
                                                                          std::string_view path,
                                                                          bool allow_zero) {
  auto text = yaml::ReadString(node, path, sink_);
  if (!text) return std::nullopt;
  auto duration = ParseDuration(*text);
  if (!duration.ok()) {
    sink_.Add(node, path, base::StdView(duration.status().message()));
    return std::nullopt;
  }
  if (duration->count() == 0 && !allow_zero) {
    sink_.Add(node, path, "must be greater than 0");
    return std::nullopt;
  }
  return *duration;
}

void GatewayConfigReader::ReadTimeouts(const yaml::Node& node) {
  if (!yaml::ExpectMap(node, "timeouts", sink_)) return;
  yaml::CheckFields(node, "timeouts", {"hello", "connect", "idle"}, sink_);
  const std::pair<std::string_view, std::chrono::milliseconds*> fields[] = {
      {"hello", &config_.hello_timeout},
      {"connect", &config_.connect_timeout},
      {"idle", &config_.idle_timeout}};
  for (const auto& field : fields) {
    IfPresent(node, field.first, [&](const yaml::Node& n) {
      if (auto d = ReadTimeout(n, yaml::FieldPath("timeouts", field.first))) *field.second = *d;
    });
  }
}

void GatewayConfigReader::ReadRelay(const yaml::Node& node) {
  auto text = yaml::ReadString(node, "relay", sink_);
  if (!text) return;
  if (*text == "splice") {
    config_.relay = RelayMode::kSplice;
  } else if (*text == "copy") {
    config_.relay = RelayMode::kCopy;
  } else {
    sink_.Add(node, "relay", absl::StrCat("unknown relay mode \"", *text, "\" (splice or copy)"));
  }
}

std::optional<SniRewrite> GatewayConfigReader::ReadSniRewrite(const yaml::Node& node,
                                                              const std::string& path) {
  if (!yaml::ExpectMap(node, path, sink_)) return std::nullopt;
  const size_t errors = sink_.count();
  yaml::CheckFields(node, path, {"from", "to"}, sink_);
  SniRewrite rewrite;
  const MapEntry from = Lookup(node, "from");
  const std::string from_path = yaml::FieldPath(path, "from");
  if (yaml::Require(from, node, from_path, sink_)) {
    if (auto text = yaml::ReadString(from.value, from_path, sink_)) {
      rewrite.from = base::AsciiLower(*text);
      if (!base::IsDomainSuffix(rewrite.from)) {
        sink_.Add(from.value, from_path,
                  absl::StrCat("\"", *text, "\" is not a domain suffix like \".global\""));
      }
    }
  }
  const MapEntry to = Lookup(node, "to");
  const std::string to_path = yaml::FieldPath(path, "to");
  if (yaml::Require(to, node, to_path, sink_)) {
    if (auto text = yaml::ReadString(to.value, to_path, sink_)) {
      rewrite.to = base::AsciiLower(*text);
      if (!rewrite.to.empty() && !base::IsDomainSuffix(rewrite.to)) {
        sink_.Add(to.value, to_path,
                  absl::StrCat("\"", *text,
                               "\" is not a domain suffix like \".svc.cluster.local\" (or \"\" "
                               "to strip the suffix)"));
      }
    }
  }
  if (sink_.count() != errors) return std::nullopt;
  return rewrite;
}

void GatewayConfigReader::ReadSniRewrites(const yaml::Node& node) {
  if (!yaml::ExpectList(node, "sniRewrites", sink_)) return;
  std::vector<SniRewrite> rewrites;
  std::vector<size_t> indexes;
  bool ok = true;
  for (size_t i = 0; i < node.size(); ++i) {
    const std::string path = yaml::IndexPath("sniRewrites", i);
    auto rewrite = ReadSniRewrite(node[i], path);
    if (!rewrite) {
      ok = false;
      continue;
    }
    // First match wins, so a rule whose suffix an earlier rule covers is dead.
    for (size_t j = 0; j < rewrites.size(); ++j) {
      if (rewrite->from == rewrites[j].from ||
          base::HasLabelSuffix(rewrite->from, rewrites[j].from)) {
        sink_.Add(node[i], path,
                  absl::StrCat("never applies: sniRewrites[", indexes[j], "] (from ",
                               rewrites[j].from, ") matches first"));
        ok = false;
      }
    }
    rewrites.push_back(*rewrite);
    indexes.push_back(i);
  }
  if (ok) config_.sni_rewrites = std::move(rewrites);
}

void GatewayConfigReader::ReadMesh(const yaml::Node& node) {
  std::vector<std::string> paths;
  const bool list = yaml::ForEachString(
      node, "mesh", sink_, [&](const yaml::Node& item, const std::string& path, const std::string& text) {
        if (text.empty()) {
          sink_.Add(item, path, "empty path");
          return;
        }
        paths.push_back(Resolve(text));
      });
  if (list) config_.mesh_paths = std::move(paths);
}

void GatewayConfigReader::ReadLogLevel(const yaml::Node& node) {
  auto text = yaml::ReadString(node, "logLevel", sink_);
  if (!text) return;
  for (absl::string_view level : kLogLevels) {
    if (*text == level) {
      config_.log_level = *text;
      return;
    }
  }
  sink_.Add(node, "logLevel",
            absl::StrCat("unknown log level \"", *text,
                         "\" (one of: ", absl::StrJoin(kLogLevels, ", "), ")"));
}

}  // namespace

std::optional<uint64_t> ParseByteSize(std::string_view text) {
  static constexpr std::pair<std::string_view, uint64_t> kSuffixes[] = {
      {"Ki", 1ull << 10}, {"Mi", 1ull << 20}, {"Gi", 1ull << 30}, {"Ti", 1ull << 40},
      {"k", 1000ull},     {"M", 1000000ull},  {"G", 1000000000ull}, {"T", 1000000000000ull}};
  uint64_t unit = 1;
  for (const auto& [suffix, factor] : kSuffixes) {
    if (text.size() > suffix.size() && text.ends_with(suffix)) {
      text.remove_suffix(suffix.size());
      unit = factor;
      break;
    }
  }
  if (text.empty() || text.size() > 15) return std::nullopt;
  uint64_t n = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    n = n * 10 + static_cast<uint64_t>(c - '0');
  }
  if (n > UINT64_MAX / unit) return std::nullopt;
  return n * unit;
}

std::optional<std::string> GatewayLocalityProblem(std::string_view locality) {
  const std::vector<absl::string_view> parts = absl::StrSplit(base::AbslView(locality), '/');
  if (parts.size() > 3) return "has more than 3 segments (region/zone/subzone)";
  for (absl::string_view part : parts) {
    if (part.empty()) return "has an empty segment (region/zone/subzone)";
    if (part.find('*') != absl::string_view::npos) return "names one locality: no '*'";
  }
  return std::nullopt;
}

std::string GatewayNetwork(const GatewayConfig& config) {
  if (!config.network.empty()) return config.network;
  const char* env = std::getenv("ISTIO_META_NETWORK");
  if (env != nullptr && *env != '\0') return env;
  const auto label = config.labels.find("topology.istio.io/network");
  return label != config.labels.end() ? label->second : "";
}

std::vector<std::string> RequestedNetworkView(const GatewayConfig& config) {
  if (!config.requested_network_view.empty()) return config.requested_network_view;
  std::vector<std::string> view;
  const char* env = std::getenv("ISTIO_META_REQUESTED_NETWORK_VIEW");
  if (env == nullptr) return view;
  for (absl::string_view part : absl::StrSplit(env, ',', absl::SkipWhitespace())) {
    view.emplace_back(absl::StripAsciiWhitespace(part));
  }
  return view;
}

std::string GatewayNamespace(const GatewayConfig& config) {
  if (!config.gateway_namespace.empty()) return config.gateway_namespace;
  const char* env = std::getenv("POD_NAMESPACE");
  if (env != nullptr && base::IsDns1123Label(env)) return env;
  return "istio-system";
}

absl::Status CheckDnsServer(std::string_view text) {
  auto parsed = base::ParseIpWithOptionalPort(text, 53);
  return parsed.ok() ? absl::OkStatus() : parsed.status();
}

absl::StatusOr<ControlUrl> ParseControlUrl(std::string_view url) { return base::ParseHttpUrl(url); }

absl::StatusOr<GatewayConfig> ParseGatewayConfig(const std::string& yaml, const std::string& name,
                                                 const std::string& base_dir) {
  yaml::ParseError error;
  const std::optional<yaml::Stream> stream = yaml::Parse(yaml, &error);
  if (!stream) {
    return absl::InvalidArgumentError(absl::StrCat(
        yaml::Located(name, {error.line, error.column}), ": YAML syntax error: ", error.message));
  }
  const std::vector<yaml::Node>& docs = stream->documents();
  GatewayConfig config;
  std::vector<std::string> errors;
  {
    ErrorSink sink(name, &errors);  // flushes into `errors` at the end of this scope
    if (docs.size() > 1) {
      sink.Add(docs[1], "", absl::StrCat("expected one YAML document, found ", docs.size()));
    }
    if (!docs.empty() && !yaml::IsMissing(docs[0])) {
      GatewayConfigReader(sink, base_dir, config).Read(docs[0]);
    }
  }
  if (!errors.empty()) return absl::InvalidArgumentError(absl::StrJoin(errors, "\n"));
  if (!config.pod_info_file.empty()) {
    auto pod_labels = LoadPodLabels(config.pod_info_file);
    if (!pod_labels.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, ": podInfoFile: ", pod_labels.status().message()));
    }
    // `labels:` in this file wins over the Downward API's.
    for (auto& [key, value] : *pod_labels) config.labels.emplace(key, std::move(value));
  }
  return config;
}

absl::StatusOr<GatewayConfig> LoadGatewayConfig(const std::string& path) {
  // meshgate.yaml is held to the default per-file cap: its own limits are not known before it is read.
  absl::StatusOr<std::string> text = base::ReadConfigFile(path);
  if (!text.ok()) return text.status();
  return ParseGatewayConfig(*text, path, std::filesystem::path(path).parent_path().string());
}

}  // namespace meshgate::config
