#include "proxy/runtime/metrics.h"

#include <deque>
#include <map>
#include <utility>

#include <prometheus/gauge.h>
#include <prometheus/metric_family.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

namespace meshgate::proxy {

namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;
using Labels = std::vector<ClientMetric::Label>;

class Families {
 public:
  MetricFamily& Add(std::string name, std::string help, MetricType type) {
    families_.push_back({std::move(name), std::move(help), type, {}});
    return families_.back();
  }
  static void Counter(MetricFamily& f, Labels labels, double value) {
    ClientMetric m;
    m.label = std::move(labels);
    m.counter.value = value;
    f.metric.push_back(std::move(m));
  }
  static void Gauge(MetricFamily& f, Labels labels, double value) {
    ClientMetric m;
    m.label = std::move(labels);
    m.gauge.value = value;
    f.metric.push_back(std::move(m));
  }
  // `counts` per bucket, not cumulative, the last for +Inf.
  static void Histogram(MetricFamily& f, Labels labels, const std::vector<double>& bounds,
                        const std::vector<uint64_t>& counts, double sum) {
    ClientMetric m;
    m.label = std::move(labels);
    uint64_t cumulative = 0;
    for (size_t i = 0; i < bounds.size(); ++i) {
      cumulative += counts[i];
      m.histogram.bucket.push_back({cumulative, bounds[i]});
    }
    cumulative += counts.back();
    m.histogram.bucket.push_back({cumulative, std::numeric_limits<double>::infinity()});
    m.histogram.sample_count = cumulative;
    m.histogram.sample_sum = sum;
    f.metric.push_back(std::move(m));
  }
  // The family of one stats-list entry (base/stats.h): `prefix` + its name,
  // "_total" added to counters.
  MetricFamily& AddStat(std::string_view prefix, const base::StatInfo& info) {
    const bool counter = info.kind == base::StatKind::kCounter;
    std::string name = std::string(prefix) + std::string(info.name);
    if (counter && !name.ends_with("_total")) name += "_total";
    return Add(std::move(name), std::string(info.help), counter ? MetricType::Counter : MetricType::Gauge);
  }
  // A sample of a counter or gauge family, whichever `f` is.
  static void Value(MetricFamily& f, Labels labels, double value) {
    if (f.type == MetricType::Counter) {
      Counter(f, std::move(labels), value);
    } else {
      Gauge(f, std::move(labels), value);
    }
  }
  std::deque<MetricFamily>& all() { return families_; }

 private:
  std::deque<MetricFamily> families_;  // stable references while families are added
};

// One family per entry of a stats list (base/stats.h): `prefix` + the
// entry's name, "_total" added to counters, summed over `sets`.
template <typename Stats>
void AddList(Families& out, std::string_view prefix, const std::vector<const Stats*>& sets, const Labels& labels) {
  for (size_t i = 0; i < Stats::kSize; ++i) {
    uint64_t total = 0;
    for (const Stats* s : sets) total += s->All()[i]->value();
    Families::Value(out.AddStat(prefix, Stats::kInfo[i]), labels, static_cast<double>(total));
  }
}

// Every list-driven counter set: the workers', DNS's and the health checks'.
void Lists(const MetricsSnapshot& s, Families& out) {
  AddList<ProxyCounters>(out, "meshgate_listener_", {s.workers.begin(), s.workers.end()}, {{"listener", s.listener}});
  if (s.dns != nullptr) AddList<DnsStats>(out, "meshgate_dns_", {s.dns}, {});
  if (s.health_checks != nullptr) AddList<lb::HealthCheckStats>(out, "meshgate_health_check_", {s.health_checks}, {});
}

template <typename Get>
uint64_t Sum(const MetricsSnapshot& s, Get get) {
  uint64_t total = 0;
  for (const ProxyStats* w : s.workers) total += get(*w).value();
  return total;
}

void Downstream(const MetricsSnapshot& s, Families& out) {
  const Labels listener = {{"listener", s.listener}};
  Families::Counter(out.Add("meshgate_downstream_cx_total", "Connections accepted.", MetricType::Counter),
                    listener, Sum(s, [](const ProxyStats& w) -> const auto& { return w.downstream_cx_total; }));
  Families::Gauge(out.Add("meshgate_downstream_cx_active", "Connections open.", MetricType::Gauge), listener,
                  Sum(s, [](const ProxyStats& w) -> const auto& { return w.downstream_cx_active; }));

  uint64_t rejected[sni::kRejectReasonCount] = {};
  for (const ProxyStats* w : s.workers) {
    for (size_t i = 0; i < sni::kRejectReasonCount; ++i) rejected[i] += w->hello_rejected[i].value();
  }
  uint64_t not_tls = 0, malformed = 0;
  for (size_t i = 0; i < sni::kRejectReasonCount; ++i) {
    const auto reason = static_cast<sni::RejectReason>(i);
    if (reason == sni::RejectReason::kTooLarge) continue;
    (IsNotTls(reason) ? not_tls : malformed) += rejected[i];
  }
  uint64_t no_sni = 0;
  for (const ProxyStats* w : s.workers) {
    no_sni += w->route_miss[static_cast<size_t>(config::RouteMiss::kNoSni)].value();
  }
  const uint64_t with_sni = Sum(s, [](const ProxyStats& w) -> const auto& { return w.hello_ok; });
  auto& hello = out.Add("meshgate_client_hello_total", "ClientHello outcomes.", MetricType::Counter);
  const std::pair<const char*, uint64_t> outcomes[] = {
      {"sni_found", with_sni},
      {"no_sni", no_sni},
      {"not_tls", not_tls},
      {"too_large", rejected[static_cast<size_t>(sni::RejectReason::kTooLarge)]},
      {"timeout", Sum(s, [](const ProxyStats& w) -> const auto& { return w.hello_timeout; })},
      {"malformed", malformed}};
  for (const auto& [result, value] : outcomes) {
    Families::Counter(hello, {{"listener", s.listener}, {"result", result}}, static_cast<double>(value));
  }
  auto& reasons = out.Add("meshgate_client_hello_rejected_total",
                          "Rejected ClientHellos by the parser's reason.", MetricType::Counter);
  for (size_t i = 0; i < sni::kRejectReasonCount; ++i) {
    Families::Counter(reasons, {{"reason", std::string(sni::ToString(static_cast<sni::RejectReason>(i)))}},
                      static_cast<double>(rejected[i]));
  }
  std::vector<double> bounds(ProxyStats::kHelloBytesBounds.begin(), ProxyStats::kHelloBytesBounds.end());
  std::vector<uint64_t> counts(bounds.size() + 1, 0);
  uint64_t sum = 0;
  for (const ProxyStats* w : s.workers) {
    for (size_t i = 0; i < counts.size(); ++i) counts[i] += w->hello_bytes_buckets[i].value();
    sum += w->hello_bytes_sum.value();
  }
  Families::Histogram(out.Add("meshgate_client_hello_bytes", "Sizes of complete ClientHellos.",
                              MetricType::Histogram),
                      listener, bounds, counts, static_cast<double>(sum));

  auto& miss = out.Add("meshgate_route_miss_total", "Connections refused without dialling, by reason.",
                       MetricType::Counter);
  for (size_t i = 0; i < config::kRouteMissCount; ++i) {
    const auto reason = static_cast<config::RouteMiss>(i);
    if (reason == config::RouteMiss::kNone) continue;
    uint64_t v = 0;
    for (const ProxyStats* w : s.workers) v += w->route_miss[i].value();
    Families::Counter(miss, {{"reason", std::string(config::ToString(reason))}}, static_cast<double>(v));
  }
  auto& ends = out.Add("meshgate_sessions_closed_total", "Connections closed, by termination reason.",
                       MetricType::Counter);
  for (size_t i = 0; i < kTerminationCount; ++i) {
    uint64_t v = 0;
    for (const ProxyStats* w : s.workers) v += w->terminations[i].value();
    Families::Counter(ends, {{"reason", std::string(ToString(static_cast<Termination>(i)))}},
                      static_cast<double>(v));
  }
}

// Overload protection (README "Overload protection"): refusals at accept by
// reason, as Envoy counts downstream_global_cx_overflow and
// downstream_cx_overload_reject, and the memory guard's state.
void Overload(const MetricsSnapshot& s, Families& out) {
  auto& refused = out.Add("meshgate_connections_refused_total",
                          "Connections closed at accept by overload protection, before any byte was read.",
                          MetricType::Counter);
  for (size_t i = 0; i < kRefusalCount; ++i) {
    uint64_t v = 0;
    for (const ProxyStats* w : s.workers) v += w->refused[i].value();
    Families::Counter(refused, {{"listener", s.listener}, {"reason", std::string(ToString(static_cast<Refusal>(i)))}},
                      static_cast<double>(v));
  }
  if (s.admission == nullptr) return;
  const MemoryState memory = s.admission->memory();
  Families::Gauge(out.Add("meshgate_overload_memory_bytes",
                          "Resident set size at the last sample for limits.memory (0: the limit is off).",
                          MetricType::Gauge),
                  {}, static_cast<double>(memory.rss_bytes));
  Families::Gauge(out.Add("meshgate_overload_memory_limit_bytes", "limits.memory (0: off).", MetricType::Gauge), {},
                  static_cast<double>(memory.limit_bytes));
  Families::Gauge(out.Add("meshgate_overload_memory_refusing",
                          "1 while the RSS is over limits.memory and new connections are refused.", MetricType::Gauge),
                  {}, memory.over() ? 1 : 0);
  Families::Gauge(out.Add("meshgate_overload_source_addresses",
                          "Client addresses with an open connection counted by limits.perSourceConnections.",
                          MetricType::Gauge),
                  {}, static_cast<double>(s.admission->sources().sources()));
}

std::vector<uint64_t> Buckets(const AtomicHistogram& h) {
  std::vector<uint64_t> out(h.bounds().size() + 1);
  for (size_t i = 0; i < out.size(); ++i) out[i] = h.bucket(i);
  return out;
}

void Upstream(const MetricsSnapshot& s, Families& out) {
  // The cluster list, one family per entry, one series per cluster.
  for (size_t i = 0; i < ClusterCounters::kSize; ++i) {
    auto& family = out.AddStat("meshgate_upstream_", ClusterCounters::kInfo[i]);
    for (const auto& cs : s.clusters) {
      Families::Value(family, {{"cluster", cs->name}}, static_cast<double>(cs->counters.All()[i]->value()));
    }
  }
  auto& connect = out.Add("meshgate_upstream_connect_duration_seconds",
                          "Time to establish upstream connections.", MetricType::Histogram);
  auto& session = out.Add("meshgate_upstream_session_duration_seconds",
                          "Lifetime of relayed sessions.", MetricType::Histogram);
  for (const auto& cs : s.clusters) {
    const Labels cluster = {{"cluster", cs->name}};
    Families::Histogram(connect, cluster, cs->connect_seconds.bounds(), Buckets(cs->connect_seconds),
                        cs->connect_seconds.sum());
    Families::Histogram(session, cluster, cs->session_seconds.bounds(), Buckets(cs->session_seconds),
                        cs->session_seconds.sum());
  }
  auto& endpoints = out.Add("meshgate_cluster_endpoints", "Endpoints by health.", MetricType::Gauge);
  for (const lb::ClusterView& view : s.endpoints) {
    std::map<std::string, int> by_health = {{"healthy", 0},      {"ejected", 0},
                                                {"failed_check", 0}, {"not_ready", 0},
                                                {"out_of_view", 0}};
    for (const lb::EndpointView& e : view.endpoints) ++by_health[e.health];
    for (const auto& [health, n] : by_health) {
      Families::Gauge(endpoints, {{"cluster", view.name}, {"health", health}}, n);
    }
  }
}

// Istio's standard TCP metrics (istio.io "Istio Standard Metrics"), as an
// Istio gateway reports them: reporter "source" ("source if report is from a
// client Istio proxy or a gateway"; pilot model/telemetry.go workloadMode
// gives gateway listeners WorkloadMode_CLIENT, so istio/proxy istio_stats.cc
// runs as Reporter::ClientSidecar). Labels as istio_stats.cc populatePeerInfo
// fills them for that reporter, followed for Istio 1.31 (master, Aug 2026).
constexpr char kUnknown[] = "unknown";

std::string OrUnknown(const std::string& v) { return v.empty() ? kUnknown : v; }

// The destination_* labels of one series.
struct Destination {
  std::string workload = kUnknown, workload_namespace = kUnknown, principal = kUnknown, app = kUnknown,
              version = kUnknown, service = kUnknown, service_name = kUnknown, service_namespace = kUnknown,
              canonical_service = kUnknown, canonical_revision = "latest", cluster = kUnknown;
};

// The peer is the endpoint's workload metadata (istio_stats.cc
// extractEndpointMetadata: Istio's EDS metadata, which the mesh loader's
// WorkloadIdentity mirrors); the service is the cluster's (its "istio"
// services metadata: host, name, namespace).
// - destination_principal: the peer certificate's URI SAN of the proxy's
//   own upstream TLS, else the peer's exchanged identity. A passthrough
//   gateway has neither (it relays the client's TLS): "unknown".
// - destination_canonical_revision: "latest" when the peer has none.
// - destination_cluster: the peer's cluster, known only when an endpoint
//   was used; the gateway dials its own cluster's endpoints.
Destination DestinationOf(const ClusterStats& c, const IstioTcpStats& s, const std::string& cluster_id) {
  const config::WorkloadIdentity& w = s.workload;
  Destination d;
  d.workload = OrUnknown(w.name);
  d.workload_namespace = OrUnknown(w.ns);
  d.app = OrUnknown(w.app);
  d.version = OrUnknown(w.version);
  d.service = OrUnknown(c.host);
  d.service_name = OrUnknown(c.service_name);
  d.service_namespace = OrUnknown(c.service_namespace.empty() ? w.ns : c.service_namespace);
  d.canonical_service = OrUnknown(w.canonical_service);
  if (!w.canonical_revision.empty()) d.canonical_revision = w.canonical_revision;
  if (s.endpoint) d.cluster = OrUnknown(cluster_id);
  return d;
}

Labels IstioLabels(const IstioSource& src, const Destination& dst) {
  return {{"reporter", "source"},
          {"source_workload", src.workload},
          {"source_workload_namespace", src.workload_namespace},
          {"source_principal", src.principal},
          {"source_app", src.app},
          {"source_version", src.version},
          {"source_cluster", src.cluster},
          {"source_canonical_service", src.canonical_service},
          {"source_canonical_revision", src.canonical_revision},
          {"destination_workload", dst.workload},
          {"destination_workload_namespace", dst.workload_namespace},
          {"destination_principal", dst.principal},
          {"destination_app", dst.app},
          {"destination_version", dst.version},
          {"destination_service", dst.service},
          {"destination_service_name", dst.service_name},
          {"destination_service_namespace", dst.service_namespace},
          {"destination_cluster", dst.cluster},
          {"destination_canonical_service", dst.canonical_service},
          {"destination_canonical_revision", dst.canonical_revision},
          {"request_protocol", "tcp"},
          // Set for reporter "destination" only (mutual_tls or none).
          {"connection_security_policy", kUnknown}};
}

struct IstioFamilies {
  explicit IstioFamilies(Families& out)
      : opened(out.Add("istio_tcp_connections_opened_total", "TCP connections opened.", MetricType::Counter)),
        closed(out.Add("istio_tcp_connections_closed_total", "TCP connections closed.", MetricType::Counter)),
        sent(out.Add("istio_tcp_sent_bytes_total", "Bytes sent during response.", MetricType::Counter)),
        received(out.Add("istio_tcp_received_bytes_total", "Bytes received during request.",
                         MetricType::Counter)) {}
  // One series per response flag counted; bytes under "-" (they are counted
  // as they flow, before any flag is known).
  void Add(Labels labels, const IstioTcpStats& t) {
    labels.push_back({"response_flags", ""});
    for (size_t i = 0; i < kResponseFlagCount; ++i) {
      const uint64_t o = t.opened[i].value(), c = t.closed[i].value();
      if (o == 0 && c == 0) continue;
      labels.back().value = std::string(ToString(static_cast<ResponseFlag>(i)));
      Families::Counter(opened, labels, static_cast<double>(o));
      Families::Counter(closed, labels, static_cast<double>(c));
      if (i != static_cast<size_t>(ResponseFlag::kNone)) continue;
      Families::Counter(sent, labels, static_cast<double>(t.sent_bytes.value()));
      Families::Counter(received, labels, static_cast<double>(t.received_bytes.value()));
    }
  }
  MetricFamily& opened;
  MetricFamily& closed;
  MetricFamily& sent;
  MetricFamily& received;
};

// Connections no filter chain matched (no route, not exported, plain-host
// SNI, not Istio's ALPN): one fixed NR series with an unknown destination,
// opened and closed at once, from the workers' termination counters. Istio
// itself records nothing for them (its stats filter is in the chain that
// did not match); the series is always there, so a flood of unknown SNIs
// moves a value and never adds a series.
void IstioNoRoute(const MetricsSnapshot& s, IstioFamilies& istio) {
  uint64_t refused = 0;
  for (const ProxyStats* w : s.workers) {
    refused += w->terminations[static_cast<size_t>(Termination::kNoRoute)].value() +
               w->terminations[static_cast<size_t>(Termination::kAlpnNotIstio)].value();
  }
  Labels labels = IstioLabels(s.istio_source, Destination{});
  labels.push_back({"response_flags", std::string(ToString(ResponseFlag::kNoRoute))});
  Families::Counter(istio.opened, labels, static_cast<double>(refused));
  Families::Counter(istio.closed, labels, static_cast<double>(refused));
}

void Istio(const MetricsSnapshot& s, Families& out) {
  IstioFamilies istio(out);
  for (const auto& cs : s.clusters) {
    for (const auto& series : cs->istio) {
      istio.Add(IstioLabels(s.istio_source, DestinationOf(*cs, *series, s.istio_cluster_id)), *series);
    }
  }
  IstioNoRoute(s, istio);
}

// AuthorizationPolicy refusals by policy: names come from configuration only.
void Authorization(const MetricsSnapshot& s, Families& out) {
  auto& denied = out.Add("meshgate_rbac_denied_total",
                         "Connections refused by an AuthorizationPolicy (policy=\"none\": ALLOW "
                         "policies apply and none matched).",
                         MetricType::Counter);
  for (const auto& [policy, n] : s.policy_denied) {
    Families::Counter(denied, {{"policy", policy}}, static_cast<double>(n));
  }
}

void Process(const MetricsSnapshot& s, Families& out) {
  Authorization(s, out);
  Families::Gauge(out.Add("meshgate_config_version", "Route table version serving.", MetricType::Gauge), {},
                  static_cast<double>(s.config_version));
  Families::Gauge(out.Add("meshgate_workers_config_version",
                          "The config version every worker has installed (equal to meshgate_config_version "
                          "once a reload reached the data path).",
                          MetricType::Gauge),
                  {}, static_cast<double>(s.workers_version));
  auto& reloads = out.Add("meshgate_config_reloads_total", "Configuration reloads.", MetricType::Counter);
  Families::Counter(reloads, {{"result", "ok"}}, static_cast<double>(s.reloads_ok));
  Families::Counter(reloads, {{"result", "failed"}}, static_cast<double>(s.reloads_failed));
  Families::Gauge(out.Add("meshgate_config_last_reload_timestamp_seconds",
                          "Unix time of the last reload attempt (0: none).", MetricType::Gauge),
                  {}, s.last_reload_seconds);
  auto& log = out.Add("meshgate_access_log_lines_total", "Access log lines.", MetricType::Counter);
  Families::Counter(log, {{"result", "written"}}, static_cast<double>(s.access_log_written));
  Families::Counter(log, {{"result", "dropped"}}, static_cast<double>(s.access_log_dropped));
  Families::Gauge(out.Add("meshgate_draining", "1 while draining.", MetricType::Gauge), {},
                  s.draining ? 1 : 0);
  if (s.control == nullptr) return;
  const ControlStatus& c = *s.control;
  Families::Gauge(out.Add("meshgate_control_connected",
                          "1 while the last exchange with the control component succeeded.", MetricType::Gauge),
                  {}, c.consecutive_failures == 0 && c.last_contact_seconds > 0 ? 1 : 0);
  Families::Gauge(out.Add("meshgate_control_version", "The control component's version serving (0: none).",
                          MetricType::Gauge),
                  {}, static_cast<double>(c.applied_version));
  auto& updates = out.Add("meshgate_control_updates_total", "Versions received from the control component.",
                          MetricType::Counter);
  Families::Counter(updates, {{"result", "applied"}}, static_cast<double>(c.updates_applied));
  Families::Counter(updates, {{"result", "rejected"}}, static_cast<double>(c.updates_rejected));
  Families::Counter(out.Add("meshgate_control_fetch_errors_total",
                            "Requests to the control component that failed.", MetricType::Counter),
                    {}, static_cast<double>(c.fetch_errors));
}

// Binary upgrades through the takeover socket (README "Upgrades"). Every
// series exists from the start (0), so a rate() sees the first failure.
void Takeover(const MetricsSnapshot& s, Families& out) {
  if (s.takeover == nullptr) return;
  const TakeoverCounters& t = *s.takeover;
  auto& received = out.Add("meshgate_takeover_listeners_received_total",
                           "Listening sockets this process took over from its predecessor, by role.",
                           MetricType::Counter);
  auto& handed = out.Add("meshgate_takeover_listeners_handed_total",
                         "Listening sockets this process offered to a successor, by role.", MetricType::Counter);
  for (size_t i = 0; i < kTakeoverRoles.size(); ++i) {
    Families::Counter(received, {{"role", kTakeoverRoles[i]}}, static_cast<double>(t.received[i].load()));
    Families::Counter(handed, {{"role", kTakeoverRoles[i]}}, static_cast<double>(t.handed[i].load()));
  }
  Families::Counter(out.Add("meshgate_takeover_completed_total",
                            "Successors that took this process's listeners over.", MetricType::Counter),
                    {}, static_cast<double>(t.completed.load()));
  auto& failures = out.Add("meshgate_takeover_failures_total",
                           "Takeovers that did not happen, by reason (successor side: no_socket, stale_socket, "
                           "foreign_socket, broken_exchange, address_changed, not_confirmed; old side: peer_uid, "
                           "busy, draining, abandoned).",
                           MetricType::Counter);
  for (size_t i = 0; i < t.failures.size(); ++i) {
    Families::Counter(failures, {{"reason", TakeoverFailureName(static_cast<TakeoverFailure>(i))}},
                      static_cast<double>(t.failures[i].load()));
  }
}

// Static series live in a prometheus-cpp registry.
// The ops HTTP ports' acceptors: accept(2) failures by errno (the resource
// ones back off), and connections closed at once past the per-port cap.
void HttpPorts(const MetricsSnapshot& s, Families& out) {
  auto& errors = out.Add("meshgate_http_accept_errors_total",
                         "accept(2) failures on an ops HTTP port, by errno (emfile, enfile, enobufs, enomem back off).",
                         MetricType::Counter);
  auto& refused = out.Add("meshgate_http_connections_refused_total",
                          "Connections to an ops HTTP port closed at once, by reason.", MetricType::Counter);
  auto& active = out.Add("meshgate_http_connections_active", "Connections open on an ops HTTP port.",
                         MetricType::Gauge);
  for (const auto& [port, stats] : s.http) {
    for (const char* reason : {"emfile", "enfile", "enobufs", "enomem", "other"}) {
      uint64_t n = 0;
      for (const auto& [seen, count] : stats.accept_errors) {
        if (seen == reason) n = count;
      }
      Families::Counter(errors, {{"port", port}, {"reason", reason}}, static_cast<double>(n));
    }
    Families::Counter(refused, {{"port", port}, {"reason", "max_connections"}},
                      static_cast<double>(stats.refused_max_connections));
    Families::Gauge(active, {{"port", port}}, static_cast<double>(stats.open));
  }
}

prometheus::Registry& StaticRegistry() {
  static prometheus::Registry* registry = [] {
    auto* r = new prometheus::Registry();
    prometheus::BuildGauge()
        .Name("meshgate_build_info")
        .Help("Build information.")
        .Register(*r)
        .Add({{"version", MESHGATE_VERSION}})
        .Set(1);
    return r;
  }();
  return *registry;
}

}  // namespace

namespace {

// The first of `keys` set (non-empty) in `labels`, else `fallback`.
std::string FirstLabel(const std::map<std::string, std::string>& labels, std::initializer_list<const char*> keys,
                       const std::string& fallback) {
  for (const char* key : keys) {
    auto it = labels.find(key);
    if (it != labels.end() && !it->second.empty()) return it->second;
  }
  return fallback;
}

}  // namespace

// Istio's node metadata for the gateway pod, rebuilt from its labels:
// - WORKLOAD_NAME: the service.istio.io/workload-name label, else the pod's
//   controller (pkg/kube/util.go GetWorkloadMetaFromPod). meshgate sees no
//   owner references, so the "app" label stands in (Istio's gateway charts
//   give the Deployment its app label's name), else "unknown".
// - canonical service and revision: the labels the injector writes, with
//   pkg/kube/labels CanonicalService's fallbacks (canonical-name,
//   app.kubernetes.io/name, app, the workload name; canonical-revision,
//   app.kubernetes.io/version, version, "latest").
// - app, version: LABELS["app"], LABELS["version"] (istio_stats.cc Context).
// - source_principal: the local certificate of the proxy's own upstream TLS
//   (uriSanLocalCertificate); a passthrough gateway originates none, so
//   Istio reports "unknown" whatever the trust domain.
IstioSource IstioSourceOf(const config::GatewayConfig& settings) {
  const auto& labels = settings.labels;
  IstioSource out;
  out.workload = FirstLabel(labels, {"service.istio.io/workload-name", "app"}, kUnknown);
  out.workload_namespace = OrUnknown(config::GatewayNamespace(settings));
  out.app = FirstLabel(labels, {"app"}, kUnknown);
  out.version = FirstLabel(labels, {"version"}, kUnknown);
  out.cluster = OrUnknown(settings.cluster_id);
  out.canonical_service =
      FirstLabel(labels, {"service.istio.io/canonical-name", "app.kubernetes.io/name", "app"}, out.workload);
  out.canonical_revision =
      FirstLabel(labels, {"service.istio.io/canonical-revision", "app.kubernetes.io/version", "version"}, "latest");
  return out;
}

std::string RenderMetrics(const MetricsSnapshot& snapshot) {
  Families out;
  Downstream(snapshot, out);
  Overload(snapshot, out);
  Upstream(snapshot, out);
  Istio(snapshot, out);
  Process(snapshot, out);
  HttpPorts(snapshot, out);
  Takeover(snapshot, out);
  Lists(snapshot, out);
  std::vector<MetricFamily> families = StaticRegistry().Collect();
  for (MetricFamily& f : out.all()) families.push_back(std::move(f));
  return prometheus::TextSerializer().Serialize(families);
}

}  // namespace meshgate::proxy
