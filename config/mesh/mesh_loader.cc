// Files and directories of Kubernetes resources -> one RouteTable. Reads every
// file and reports every problem before deciding: a half-valid mesh is never served.
#include "config/mesh/mesh_loader.h"

#include <algorithm>
#include <array>
#include <filesystem>
#include <system_error>
#include <tuple>

#include "absl/container/flat_hash_map.h"
#include "absl/hash/hash.h"
#include "absl/strings/str_cat.h"
#include "config/mesh/authorization_policy.h"
#include "config/mesh/cluster_builder.h"
#include "config/mesh/destination_rule.h"
#include "config/mesh/istio_gateway.h"
#include "config/mesh/kubernetes.h"
#include "config/mesh/mesh_model.h"
#include "base/names.h"
#include "base/read_file.h"
#include "config/mesh/service_entry.h"
#include "base/yaml/yaml_fields.h"

namespace meshgate::config {

namespace {

namespace fs = std::filesystem;
using internal::ErrorSink;
using internal::Lookup;
using internal::ResourceMeta;

enum class Kind {
  kServiceEntry,
  kWorkloadEntry,
  kDestinationRule,
  kGateway,
  kService,
  kEndpoints,
  kEndpointSlice,
  kPod,
  kNamespace,
  kAuthorizationPolicy,
  kIgnored
};

// By kind and API group, so a Knative "Service" or a Gateway API "Gateway" is
// skipped rather than misread. A missing apiVersion goes to the reader, which
// reports it.
Kind Classify(const std::string& kind, const yaml::Node& api_version) {
  const bool missing = !api_version.IsScalar();
  std::string group;  // "" is the core group ("v1")
  if (!missing) {
    const std::string& text = api_version.Scalar();
    const size_t slash = text.find('/');
    if (slash != std::string::npos) group = text.substr(0, slash);
  }
  const bool istio = missing || group == "networking.istio.io";
  const bool core = group.empty();
  if (istio && kind == "ServiceEntry") return Kind::kServiceEntry;
  if (istio && kind == "WorkloadEntry") return Kind::kWorkloadEntry;
  if (istio && kind == "DestinationRule") return Kind::kDestinationRule;
  if (istio && kind == "Gateway") return Kind::kGateway;
  if (core && kind == "Service") return Kind::kService;
  if (core && kind == "Endpoints") return Kind::kEndpoints;
  if (core && kind == "Pod") return Kind::kPod;
  if (core && kind == "Namespace") return Kind::kNamespace;
  if ((missing || group == "security.istio.io") && kind == "AuthorizationPolicy") {
    return Kind::kAuthorizationPolicy;
  }
  if ((missing || group == "discovery.k8s.io") && kind == "EndpointSlice") {
    return Kind::kEndpointSlice;
  }
  return Kind::kIgnored;
}

// Best-effort "ns/name" for messages; the readers validate.
void ResourceId(const yaml::Node& doc, ResourceMeta& meta) {
  meta.name = "<unnamed>";
  const yaml::Node metadata = Lookup(doc, "metadata").value;
  if (!metadata.IsMap()) return;
  const yaml::Node n = Lookup(metadata, "name").value;
  if (n.IsScalar() && !n.Scalar().empty()) meta.name = n.Scalar();
  const yaml::Node s = Lookup(metadata, "namespace").value;
  if (s.IsScalar() && !s.Scalar().empty()) meta.ns = s.Scalar();
}

// Calls f with the list that resources of `kind` are kept in.
template <typename Resources, typename F>
void WithList(Resources& r, Kind kind, F&& f) {
  switch (kind) {
    case Kind::kServiceEntry: return f(r.service_entries);
    case Kind::kWorkloadEntry: return f(r.workload_entries);
    case Kind::kDestinationRule: return f(r.destination_rules);
    case Kind::kGateway: return f(r.gateways);
    case Kind::kService: return f(r.services);
    case Kind::kEndpointSlice:
    case Kind::kEndpoints: return f(r.endpoint_groups);
    case Kind::kPod: return f(r.pods);
    case Kind::kNamespace: return f(r.namespaces);
    case Kind::kAuthorizationPolicy: return f(r.authorization_policies);
    case Kind::kIgnored: return;
  }
}

// One resource of a cached source: what the duplicate check needs, and where
// its reading went in the source's own MeshResources.
struct CachedResource {
  Kind kind = Kind::kIgnored;
  ResourceMeta meta;  // sequence: within the source
  internal::Position name_at;
  size_t first = 0;
  size_t count = 0;
};

}  // namespace

struct MeshParseCache::Impl {
  struct Entry {
    size_t hash = 0;
    size_t size = 0;
    bool positions = true;
    std::string cluster_domain;  // DestinationRule hosts are read with it
    std::vector<CachedResource> resources;
    internal::MeshResources read;
    size_t sequence = 0;  // documents the source held
  };
  absl::flat_hash_map<std::string, Entry> by_name;
};

MeshParseCache::MeshParseCache() : impl_(std::make_unique<Impl>()) {}
MeshParseCache::~MeshParseCache() = default;
size_t MeshParseCache::size() const { return impl_->by_name.size(); }

namespace {

class MeshReader {
 public:
  MeshReader(const std::vector<SniRewrite>& rewrites, const MeshLoadOptions& options)
      : rewrites_(rewrites), options_(options) {}

  // With `owned` (the same sources, the caller's to give up), each source's
  // text is freed once read, so the texts are gone before the clusters are built.
  void LoadSources(const MeshSources& sources, MeshParseCache::Impl* cache = nullptr,
                   MeshSources* owned = nullptr);
  void LoadText(const std::string& text, const std::string& name);
  MeshLoadResult Finish() &&;
  ServiceListResult Services() &&;

 private:
  void LoadResource(const yaml::Node& doc, const std::string& file);
  void Read(Kind kind, const yaml::Node& doc, ResourceMeta meta, ErrorSink& sink);
  void Record(Kind kind, const yaml::Node& doc, ResourceMeta meta, ErrorSink& sink);
  bool IsDuplicate(const yaml::Node& doc, const ResourceMeta& meta, ErrorSink& sink);
  // The source from `cache`, parsed alone into it first when it does not
  // hold this text; false when the source does not read cleanly alone.
  bool LoadCached(const MeshSource& source, MeshParseCache::Impl& cache);
  void Replay(const MeshParseCache::Impl::Entry& entry);

  std::vector<CachedResource>* record_ = nullptr;  // parsing alone for the cache
  // What a source added, to take back when a later document of it does not parse.
  struct Mark {
    size_t errors, warnings, loaded, sequence, record;
    std::array<size_t, static_cast<size_t>(Kind::kIgnored)> lists;
  };
  Mark Save() const;
  void Restore(const Mark& mark, const std::vector<std::string>& subjects);
  std::vector<std::string>* added_subjects_ = nullptr;  // duplicate-check keys the source added

  const std::vector<SniRewrite>& rewrites_;
  const MeshLoadOptions& options_;
  MeshLoadResult result_;
  internal::MeshResources resources_;
  LabelInterner labels_;  // endpoints written with the same labels share one set
  size_t sequence_ = 0;
  bool positions_ = true;  // of the source being read
  // "Kind ns/name" -> source of its first definition
  absl::flat_hash_map<std::string, std::string> sources_;
};

// Bounded: regular files only, each under the per-file cap and all of them
// under the total (limits.maxConfigFileBytes, limits.maxConfigBytes).
void ReadFile(const std::string& path, const base::ConfigReadLimits& limits, uint64_t& total, MeshSources& out) {
  absl::StatusOr<std::string> text = base::ReadConfigFile(path, limits.max_file_bytes);
  if (!text.ok()) {
    out.sources.push_back({path, "", std::string(text.status().message())});
    return;
  }
  total += text->size();
  if (total > limits.max_total_bytes) {
    out.sources.push_back({path, "", absl::StrCat(path, ": ", text->size(), " bytes brings the mesh to ", total,
                                                  " bytes, over the cap of ", limits.max_total_bytes,
                                                  " bytes (limits.maxConfigBytes)")});
    return;
  }
  out.sources.push_back({path, *std::move(text), ""});
}

void ReadPath(const std::string& path, const base::ConfigReadLimits& limits, uint64_t& total, MeshSources& out) {
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);
  if (ec || !fs::exists(status) || !fs::is_directory(status)) {
    ReadFile(path, limits, total, out);  // named explicitly: loaded whatever its extension
    return;
  }
  std::vector<fs::path> files;
  for (fs::directory_iterator it(path, ec), end; !ec && it != end; it.increment(ec)) {
    const fs::path& p = it->path();
    if (!IsMeshFileName(p.filename().string())) continue;
    if (fs::is_regular_file(it->status())) files.push_back(p);
  }
  if (ec) {
    out.sources.push_back({path, "", absl::StrCat(path, ": cannot list directory: ", ec.message())});
    return;
  }
  if (files.empty()) {
    out.warnings.push_back(absl::StrCat(path, ": no *.yaml, *.yml or *.json files"));
  }
  std::sort(files.begin(), files.end());
  for (const fs::path& file : files) ReadFile(file.string(), limits, total, out);
}

void MeshReader::LoadSources(const MeshSources& sources, MeshParseCache::Impl* cache, MeshSources* owned) {
  result_.warnings.insert(result_.warnings.end(), sources.warnings.begin(), sources.warnings.end());
  absl::flat_hash_map<std::string, MeshParseCache::Impl::Entry> kept;
  for (size_t i = 0; i < sources.sources.size(); ++i) {
    const MeshSource& source = sources.sources[i];
    if (!source.error.empty()) {
      result_.errors.push_back(source.error);
      continue;
    }
    positions_ = source.positions;
    if (cache != nullptr && LoadCached(source, *cache)) {
      kept.insert(cache->by_name.extract(source.name));
    } else {
      LoadText(source.text, source.name);
    }
    if (owned != nullptr) std::string().swap(owned->sources[i].text);
  }
  if (cache != nullptr) cache->by_name = std::move(kept);  // this load's sources, no others
}

bool MeshReader::LoadCached(const MeshSource& source, MeshParseCache::Impl& cache) {
  const size_t hash = absl::HashOf(source.text);
  auto it = cache.by_name.find(source.name);
  if (it == cache.by_name.end() || it->second.hash != hash || it->second.size != source.text.size() ||
      it->second.positions != source.positions || it->second.cluster_domain != options_.cluster_domain) {
    MeshReader alone(rewrites_, options_);
    MeshParseCache::Impl::Entry entry{hash, source.text.size(), source.positions, options_.cluster_domain, {}, {}, 0};
    alone.positions_ = source.positions;
    alone.record_ = &entry.resources;
    alone.LoadText(source.text, source.name);
    // A source with any message is read in place, so its messages come out
    // exactly where and as they would without a cache.
    if (!alone.result_.errors.empty() || !alone.result_.warnings.empty()) {
      if (it != cache.by_name.end()) cache.by_name.erase(it);
      return false;
    }
    entry.read = std::move(alone.resources_);
    entry.sequence = alone.sequence_;
    it = cache.by_name.insert_or_assign(source.name, std::move(entry)).first;
  }
  Replay(it->second);
  return true;
}

// What LoadText does for a source that reads cleanly: each resource, unless
// a source before defined it, is kept, numbered in load order.
void MeshReader::Replay(const MeshParseCache::Impl::Entry& entry) {
  const size_t base = sequence_;
  for (const CachedResource& r : entry.resources) {
    ErrorSink sink(r.meta.file, &result_.errors, &result_.warnings, ErrorSink::UnknownFields::kWarning);
    sink.set_positions(positions_);
    sink.SetSubject(r.meta.Subject(), r.meta.at);
    auto [it, added] = sources_.emplace(r.meta.Subject(), r.meta.Source());
    if (!added) {
      sink.AddAt(r.name_at, "metadata.name", absl::StrCat(r.meta.Subject(), " is already defined by ", it->second));
      continue;
    }
    WithList(entry.read, r.kind, [&](auto& list) {
      WithList(resources_, r.kind, [&](auto& to) {
        using List = std::decay_t<decltype(list)>;
        if constexpr (std::is_same_v<List, std::decay_t<decltype(to)>>) {
          for (size_t i = r.first; i < r.first + r.count; ++i) {
            to.push_back(list[i]);
            to.back().meta.sequence += base;
          }
        }
      });
    });
    ++result_.resources_loaded;
  }
  sequence_ = base + entry.sequence;
}

// One document at a time, each tree freed once read, so a large file never
// holds its whole tree. A file that does not parse adds only its syntax error:
// what its earlier documents added is taken back (as when it was parsed whole).
void MeshReader::LoadText(const std::string& text, const std::string& name) {
  const Mark mark = Save();
  std::vector<std::string> subjects;
  added_subjects_ = &subjects;
  yaml::ParseError error;
  const bool parsed = yaml::ParseEach(text, &error, [&](const yaml::Node& doc) { LoadResource(doc, name); });
  added_subjects_ = nullptr;
  if (parsed) return;
  Restore(mark, subjects);
  result_.errors.push_back(absl::StrCat(internal::Located(name, {error.line, error.column}),
                                        ": YAML syntax error: ", error.message));
}

MeshReader::Mark MeshReader::Save() const {
  Mark mark{result_.errors.size(), result_.warnings.size(), result_.resources_loaded, sequence_,
            record_ != nullptr ? record_->size() : 0, {}};
  for (size_t k = 0; k < mark.lists.size(); ++k) {
    WithList(resources_, static_cast<Kind>(k), [&](const auto& list) { mark.lists[k] = list.size(); });
  }
  return mark;
}

void MeshReader::Restore(const Mark& mark, const std::vector<std::string>& subjects) {
  result_.errors.resize(mark.errors);
  result_.warnings.resize(mark.warnings);
  result_.resources_loaded = mark.loaded;
  sequence_ = mark.sequence;
  if (record_ != nullptr) record_->resize(mark.record);
  for (size_t k = 0; k < mark.lists.size(); ++k) {
    WithList(resources_, static_cast<Kind>(k),
             [&](auto& list) { list.erase(list.begin() + static_cast<std::ptrdiff_t>(mark.lists[k]), list.end()); });
  }
  for (const std::string& subject : subjects) sources_.erase(subject);
}

void MeshReader::LoadResource(const yaml::Node& doc, const std::string& file) {
  if (internal::IsMissing(doc)) return;  // empty document
  ErrorSink sink(file, &result_.errors, &result_.warnings, ErrorSink::UnknownFields::kWarning);
  sink.set_positions(positions_);
  if (!doc.IsMap()) {
    sink.Add(doc, "",
             absl::StrCat("expected a Kubernetes resource (a map with apiVersion and kind), got ",
                          internal::AbslView(internal::TypeName(doc))));
    return;
  }
  const internal::MapEntry kind_entry = Lookup(doc, "kind");
  if (!internal::Require(kind_entry, doc, "kind", sink)) return;
  const std::optional<std::string> kind = internal::ReadString(kind_entry.value, "kind", sink);
  if (!kind) return;

  const internal::Position at = internal::PositionOf(doc);
  if (*kind == "List") {  // what "kubectl get -o yaml" prints
    sink.SetSubject("List", at);
    const internal::MapEntry items = Lookup(doc, "items");
    if (!items.present() || items.value.IsNull()) return;
    if (!internal::ExpectList(items.value, "items", sink)) return;
    for (const yaml::Node& item : items.value) LoadResource(item, file);
    return;
  }
  ResourceMeta meta;
  meta.kind = *kind;
  meta.file = file;
  meta.at = at;
  meta.sequence = sequence_++;
  ResourceId(doc, meta);
  const yaml::Node api = Lookup(doc, "apiVersion").value;
  const Kind classified = Classify(*kind, api);
  if (classified == Kind::kIgnored) {
    const std::string version = api.IsScalar() ? api.Scalar() : "?";
    result_.warnings.push_back(absl::StrCat(internal::Located(file, at), ": ignoring ",
                                            meta.Subject(), " (", version,
                                            ": not used by meshgate)"));
    return;
  }
  sink.SetSubject(meta.Subject(), at);
  if (record_ != nullptr) return Record(classified, doc, std::move(meta), sink);
  if (IsDuplicate(doc, meta, sink)) return;
  Read(classified, doc, std::move(meta), sink);
}

// Reading alone for the cache: no duplicate check here (Replay does it
// against every source of the load), and where the resource went.
void MeshReader::Record(Kind kind, const yaml::Node& doc, ResourceMeta meta, ErrorSink& sink) {
  CachedResource r;
  r.kind = kind;
  r.meta = meta;
  r.name_at = internal::PositionOf(Lookup(Lookup(doc, "metadata").value, "name").value);
  WithList(resources_, kind, [&](auto& list) { r.first = list.size(); });
  const size_t loaded = result_.resources_loaded;
  Read(kind, doc, std::move(meta), sink);
  WithList(resources_, kind, [&](auto& list) { r.count = list.size() - r.first; });
  if (result_.resources_loaded != loaded) record_->push_back(std::move(r));
}

// A kind, namespace and name identify one resource; a second one is a mistake
// (the same file listed twice, or a copy), not something to merge.
bool MeshReader::IsDuplicate(const yaml::Node& doc, const ResourceMeta& meta, ErrorSink& sink) {
  auto [it, added] = sources_.emplace(meta.Subject(), meta.Source());
  if (added) {
    if (added_subjects_ != nullptr) added_subjects_->push_back(it->first);
    return false;
  }
  const yaml::Node name = Lookup(Lookup(doc, "metadata").value, "name").value;
  sink.Add(name, "metadata.name",
           absl::StrCat(meta.Subject(), " is already defined by ", it->second));
  return true;
}

void MeshReader::Read(Kind kind, const yaml::Node& doc, ResourceMeta meta, ErrorSink& sink) {
  const size_t errors = sink.count();
  auto keep = [&](auto& list, auto&& resource) {
    if (sink.count() != errors) return;
    list.push_back(std::move(resource));
    ++result_.resources_loaded;
  };
  internal::MeshResources& r = resources_;
  switch (kind) {
    case Kind::kServiceEntry:
      return keep(r.service_entries, internal::ReadServiceEntry(doc, std::move(meta), labels_, sink));
    case Kind::kWorkloadEntry:
      return keep(r.workload_entries, internal::ReadWorkloadEntry(doc, std::move(meta), labels_, sink));
    case Kind::kDestinationRule:
      return keep(r.destination_rules,
                  internal::ReadDestinationRule(doc, std::move(meta), options_.cluster_domain, sink));
    case Kind::kGateway:
      return keep(r.gateways, internal::ReadIstioGateway(doc, std::move(meta), sink));
    case Kind::kService:
      return keep(r.services, internal::ReadKubeService(doc, std::move(meta), sink));
    case Kind::kEndpointSlice:
      return keep(r.endpoint_groups, internal::ReadEndpointSlice(doc, std::move(meta), sink));
    case Kind::kEndpoints: {
      std::vector<internal::EndpointGroup> groups =
          internal::ReadLegacyEndpoints(doc, std::move(meta), sink);
      if (sink.count() != errors) return;
      for (auto& group : groups) r.endpoint_groups.push_back(std::move(group));
      ++result_.resources_loaded;
      return;
    }
    case Kind::kPod:
      return keep(r.pods, internal::ReadPod(doc, std::move(meta), sink));
    case Kind::kNamespace:
      return keep(r.namespaces, internal::ReadNamespace(doc, std::move(meta), sink));
    case Kind::kAuthorizationPolicy:
      return keep(r.authorization_policies,
                  internal::ReadAuthorizationPolicy(doc, std::move(meta), sink));
    case Kind::kIgnored:
      return;
  }
}

MeshLoadResult MeshReader::Finish() && {
  if (auto problem = internal::FqdnProblem(options_.cluster_domain)) {
    result_.errors.push_back(absl::StrCat("cluster domain \"", options_.cluster_domain,
                                          "\" is not a valid DNS name: ", *problem));
    return std::move(result_);
  }
  // Cross-resource checks run even after reading errors, so --check shows every
  // problem; their notes are kept only when they describe the whole mesh.
  const bool read_ok = result_.errors.empty();
  std::vector<std::string> notes;
  GatewayView view;
  std::vector<std::unique_ptr<Cluster>> clusters = internal::BuildClusters(
      resources_,
      {options_.listener_port, options_.cluster_domain, &rewrites_, options_.gateway_namespace,
       options_.root_namespace, &options_.gateway_labels, options_.network,
       &options_.requested_network_view, options_.trust_domain},
      result_.errors, notes, view);
  AuthorizationPolicies authorization = internal::SelectAuthorizationPolicies(
      resources_.authorization_policies,
      {options_.gateway_namespace, options_.root_namespace, &options_.gateway_labels},
      result_.errors, notes);
  resources_ = {};  // read for the last time: not held beside the table being built
  if (read_ok) {
    result_.warnings.insert(result_.warnings.end(), notes.begin(), notes.end());
  }
  if (!result_.errors.empty()) return std::move(result_);
  if (clusters.empty()) {
    result_.warnings.push_back(
        "no services found (ServiceEntry or Kubernetes Service with ports): every connection "
        "will miss (unknown_host)");
  }
  result_.table = RouteTable::FromOwned(std::move(clusters), rewrites_, std::move(view), std::move(authorization));
  return std::move(result_);
}

}  // namespace

ServiceListResult MeshReader::Services() && {
  ServiceListResult out;
  out.errors = std::move(result_.errors);
  out.warnings = std::move(result_.warnings);
  for (const internal::KubeService& service : resources_.services) {
    ServiceSummary summary;
    summary.name = service.meta.name;
    summary.ns = service.meta.ns;
    for (const internal::ServicePort& port : service.ports) {
      summary.ports.push_back({port.name, port.number, port.protocol});
    }
    out.services.push_back(std::move(summary));
  }
  std::sort(out.services.begin(), out.services.end(), [](const auto& a, const auto& b) {
    return std::tie(a.ns, a.name) < std::tie(b.ns, b.name);
  });
  return out;
}

bool IsMeshFileName(std::string_view name) {
  // Dot files cover editor leftovers and the "..data" links of ConfigMap volumes.
  if (name.empty() || name.starts_with(".")) return false;
  return name.ends_with(".yaml") || name.ends_with(".yml") || name.ends_with(".json");
}

MeshSources ReadMeshSources(const std::vector<std::string>& paths, const base::ConfigReadLimits& limits) {
  MeshSources out;
  uint64_t total = 0;
  for (const std::string& path : paths) ReadPath(path, limits, total, out);
  return out;
}

ServiceListResult LoadServices(const MeshSources& sources) {
  const std::vector<SniRewrite> no_rewrites;
  const MeshLoadOptions options;  // the reader keeps references to both
  MeshReader reader(no_rewrites, options);
  reader.LoadSources(sources);
  return std::move(reader).Services();
}

ServiceListResult LoadServices(const std::vector<std::string>& paths) {
  return LoadServices(ReadMeshSources(paths));
}

MeshLoadResult LoadMeshSources(const MeshSources& sources, const std::vector<SniRewrite>& rewrites,
                               const MeshLoadOptions& options, MeshParseCache* cache) {
  MeshReader reader(rewrites, options);
  reader.LoadSources(sources, cache != nullptr ? &cache->impl() : nullptr);
  return std::move(reader).Finish();
}

MeshLoadResult LoadMeshSources(MeshSources&& sources, const std::vector<SniRewrite>& rewrites,
                               const MeshLoadOptions& options, MeshParseCache* cache) {
  MeshReader reader(rewrites, options);
  reader.LoadSources(sources, cache != nullptr ? &cache->impl() : nullptr, &sources);
  return std::move(reader).Finish();
}

MeshLoadResult LoadMesh(const std::vector<std::string>& paths,
                        const std::vector<SniRewrite>& rewrites, const MeshLoadOptions& options) {
  return LoadMeshSources(ReadMeshSources(paths), rewrites, options);
}

MeshLoadResult LoadMeshFromString(const std::string& yaml, const std::string& name,
                                  const std::vector<SniRewrite>& rewrites,
                                  const MeshLoadOptions& options) {
  MeshSources sources;
  sources.sources.push_back({name, yaml, ""});
  return LoadMeshSources(sources, rewrites, options);
}

}  // namespace meshgate::config
