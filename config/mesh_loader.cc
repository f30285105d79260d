// Files and directories of Kubernetes resources -> one RouteTable. Reads every
// file and reports every problem before deciding: a half-valid mesh is never served.
#include "config/mesh_loader.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <system_error>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "config/names.h"
#include "config/service_entry.h"
#include "config/yaml_fields.h"

namespace meshgate::config {

namespace {

namespace fs = std::filesystem;
using internal::ErrorSink;
using internal::Lookup;
using internal::ServiceEntry;

bool HasMeshExtension(const fs::path& path) {
  const std::string ext = path.extension().string();
  return ext == ".yaml" || ext == ".yml" || ext == ".json";
}

// Best-effort "ns/name" for messages; validation happens per kind.
std::pair<std::string, std::string> ResourceId(const YAML::Node& doc) {
  std::string ns = "default";
  std::string name = "<unnamed>";
  const YAML::Node metadata = Lookup(doc, "metadata").value;
  if (metadata.IsMap()) {
    const YAML::Node n = Lookup(metadata, "name").value;
    if (n.IsScalar() && !n.Scalar().empty()) name = n.Scalar();
    const YAML::Node s = Lookup(metadata, "namespace").value;
    if (s.IsScalar() && !s.Scalar().empty()) ns = s.Scalar();
  }
  return {ns, name};
}

class MeshBuilder {
 public:
  explicit MeshBuilder(const std::vector<SniRewrite>& rewrites) : rewrites_(rewrites) {}

  void LoadPath(const std::string& path);
  void LoadText(const std::string& text, const std::string& name);
  MeshLoadResult Finish() &&;

 private:
  void LoadFile(const std::string& path);
  void LoadResource(const YAML::Node& doc, const std::string& file);
  void AddServiceEntry(ServiceEntry entry, ErrorSink& sink, bool valid);
  void WarnUnroutableHost(const ServiceEntry::Host& host, const ErrorSink& sink);

  const std::vector<SniRewrite>& rewrites_;
  MeshLoadResult result_;
  std::vector<ServiceEntry> entries_;  // valid ones, in load order
  // host -> "file:line ServiceEntry ns/name" of the entry that defined it first
  absl::flat_hash_map<std::string, std::string> host_sources_;
};

void MeshBuilder::LoadPath(const std::string& path) {
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);
  if (ec || !fs::exists(status)) {
    result_.errors.push_back(absl::StrCat(path, ": no such file or directory"));
    return;
  }
  if (!fs::is_directory(status)) {
    LoadFile(path);  // named explicitly: loaded whatever its extension
    return;
  }
  std::vector<fs::path> files;
  for (fs::directory_iterator it(path, ec), end; !ec && it != end; it.increment(ec)) {
    const fs::path& p = it->path();
    // Dot files cover editor leftovers and the "..data" links of ConfigMap volumes.
    if (p.filename().string().starts_with(".") || !HasMeshExtension(p)) continue;
    if (fs::is_regular_file(it->status())) files.push_back(p);
  }
  if (ec) {
    result_.errors.push_back(absl::StrCat(path, ": cannot list directory: ", ec.message()));
    return;
  }
  if (files.empty()) {
    result_.warnings.push_back(absl::StrCat(path, ": no *.yaml, *.yml or *.json files"));
  }
  std::sort(files.begin(), files.end());
  for (const fs::path& file : files) LoadFile(file.string());
}

void MeshBuilder::LoadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  if (!in.is_open() || in.bad()) {
    result_.errors.push_back(absl::StrCat(path, ": cannot read file"));
    return;
  }
  LoadText(text, path);
}

void MeshBuilder::LoadText(const std::string& text, const std::string& name) {
  std::vector<YAML::Node> docs;
  try {
    docs = internal::LoadAllDocuments(text);
  } catch (const YAML::ParserException& e) {
    result_.errors.push_back(
        absl::StrCat(name, ":", e.mark.line + 1, ": YAML syntax error: ", e.msg));
    return;
  } catch (const YAML::Exception& e) {
    result_.errors.push_back(absl::StrCat(name, ": YAML error: ", e.what()));
    return;
  }
  for (const YAML::Node& doc : docs) {
    try {
      LoadResource(doc, name);
    } catch (const YAML::Exception& e) {  // a bug in a reader, not the user's fault
      result_.errors.push_back(absl::StrCat(name, ":", internal::LineOf(doc),
                                            ": internal error reading resource: ", e.what()));
    }
  }
}

void MeshBuilder::LoadResource(const YAML::Node& doc, const std::string& file) {
  if (internal::IsMissing(doc)) return;  // empty document
  ErrorSink sink(file, &result_.errors);
  const int line = internal::LineOf(doc);
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

  if (*kind == "List") {  // what "kubectl get -o yaml" prints
    sink.SetSubject("List", line);
    const internal::MapEntry items = Lookup(doc, "items");
    if (!items.present() || items.value.IsNull()) return;
    if (!internal::ExpectList(items.value, "items", sink)) return;
    for (const YAML::Node& item : items.value) LoadResource(item, file);
    return;
  }
  auto [ns, name] = ResourceId(doc);
  if (*kind != "ServiceEntry") {
    result_.warnings.push_back(
        absl::StrCat(file, ":", line, ": ignoring ", *kind, " ", ns, "/", name, " (not used yet)"));
    return;
  }
  sink.SetSubject(absl::StrCat("ServiceEntry ", ns, "/", name), line);
  const size_t errors = sink.count();
  ServiceEntry entry = internal::ReadServiceEntry(doc, sink, result_.warnings);
  entry.source = absl::StrCat(file, ":", line, " ServiceEntry ", ns, "/", name);
  AddServiceEntry(std::move(entry), sink, /*valid=*/sink.count() == errors);
}

void MeshBuilder::AddServiceEntry(ServiceEntry entry, ErrorSink& sink, bool valid) {
  const size_t errors = sink.count();
  // Hosts of broken entries are registered too, so a duplicate is still reported.
  for (const ServiceEntry::Host& host : entry.hosts) {
    auto [it, added] = host_sources_.emplace(host.name, entry.source);
    if (!added) {
      sink.AddAtLine(host.line, host.field,
                     absl::StrCat("host \"", host.name, "\" is already defined by ", it->second,
                                  " (merging ServiceEntries is not supported yet)"));
      continue;
    }
    WarnUnroutableHost(host, sink);
  }
  if (!valid || sink.count() != errors) return;
  entries_.push_back(std::move(entry));
  ++result_.resources_loaded;
}

// SNI hosts are rewritten before lookup, so a host that a rewrite rule would
// change can never be looked up: usually the client-side ".global" entry was
// deployed to the gateway instead of the local service name.
void MeshBuilder::WarnUnroutableHost(const ServiceEntry::Host& host, const ErrorSink& sink) {
  for (const SniRewrite& rewrite : rewrites_) {
    if (!internal::HasLabelSuffix(host.name, rewrite.from)) continue;
    const std::string target =
        absl::StrCat(host.name.substr(0, host.name.size() - rewrite.from.size()), rewrite.to);
    result_.warnings.push_back(sink.Format(
        host.line, host.field,
        absl::StrCat("host \"", host.name, "\" is never routed: SNI rewrite ", rewrite.from, " -> ",
                     rewrite.to, " turns it into \"", target, "\" before lookup")));
    return;
  }
}

MeshLoadResult MeshBuilder::Finish() && {
  if (!result_.errors.empty()) return std::move(result_);
  if (entries_.empty()) {
    result_.warnings.push_back("no ServiceEntry found: every connection will miss (unknown_host)");
  }
  std::vector<Cluster> clusters;
  for (const ServiceEntry& entry : entries_) {
    for (const ServiceEntry::Host& host : entry.hosts) {
      for (const internal::ServicePort& port : entry.ports) {
        Cluster cluster;
        cluster.id = static_cast<uint32_t>(clusters.size());
        cluster.host = host.name;
        cluster.port = port.number;
        cluster.name = absl::StrCat("outbound|", port.number, "||", host.name);
        cluster.source = entry.source;
        for (const internal::WorkloadEndpoint& workload : entry.endpoints) {
          cluster.endpoints.push_back({workload.address, internal::EndpointPort(workload, port),
                                       workload.weight, workload.labels});
        }
        clusters.push_back(std::move(cluster));
      }
    }
  }
  result_.table = std::make_shared<const RouteTable>(std::move(clusters), rewrites_);
  return std::move(result_);
}

}  // namespace

MeshLoadResult LoadMesh(const std::vector<std::string>& paths,
                        const std::vector<SniRewrite>& rewrites) {
  MeshBuilder builder(rewrites);
  for (const std::string& path : paths) builder.LoadPath(path);
  return std::move(builder).Finish();
}

MeshLoadResult LoadMeshFromString(const std::string& yaml, const std::string& name,
                                  const std::vector<SniRewrite>& rewrites) {
  MeshBuilder builder(rewrites);
  builder.LoadText(yaml, name);
  return std::move(builder).Finish();
}

}  // namespace meshgate::config
