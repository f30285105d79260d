// libFuzzer target for the YAML tree (base/yaml) and every resource reader
// behind it (config/mesh: ServiceEntry, WorkloadEntry, DestinationRule,
// Gateway, AuthorizationPolicy, Service, Endpoints, EndpointSlice, Pod...):
// one input is one mesh source, loaded as `meshgate --mesh FILE` loads it.
// Seeded with the Istio and Kubernetes samples in tests/data.
#include <cstdio>
#include <cstdlib>
#include <string>

#include "base/yaml/yaml_tree.h"
#include "config/mesh/mesh_loader.h"

namespace {

using namespace meshgate;

void Fail(const std::string& what) {
  std::fprintf(stderr, "mesh_fuzz: %s\n", what.c_str());
  std::abort();
}

// Visits at most `budget` nodes (aliases make a DAG; the bound keeps one
// input's time small) and checks what the readers rely on.
void Walk(const yaml::Node& node, int depth, uint64_t& budget) {
  if (budget == 0) return;
  --budget;
  if (!node.IsDefined()) Fail("undefined node inside a document");
  if (node.Line() < 0 || node.Column() < 0) Fail("node without a position");
  if (depth > yaml::kMaxDepth + 1) Fail("nesting past kMaxDepth accepted");
  const int kinds = node.IsNull() + node.IsScalar() + node.IsSequence() + node.IsMap();
  if (kinds != 1) Fail("node of not exactly one kind");
  if (!node.IsScalar() && !node.Scalar().empty()) Fail("non-scalar with text");
  size_t n = 0;
  if (node.IsMap()) {
    for (const auto& item : node) {
      Walk(item.first, depth + 1, budget);
      Walk(item.second, depth + 1, budget);
      ++n;
    }
  } else if (node.IsSequence()) {
    for (size_t i = 0; i < node.size(); ++i) Walk(node[i], depth + 1, budget);
    if (node[node.size()].IsDefined()) Fail("list index past the end is defined");
    n = node.size();
  }
  if (n != node.size()) Fail("iteration count differs from size()");
}

void CheckTree(const std::string& text) {
  yaml::ParseError error;
  auto stream = yaml::Parse(text, &error);
  if (!stream) {
    if (error.message.empty() || error.line < 1 || error.column < 1) Fail("syntax error without a position or words");
    return;
  }
  uint64_t budget = 200'000;
  for (const yaml::Node& doc : stream->documents()) Walk(doc, 0, budget);
}

void CheckMesh(const std::string& text) {
  config::MeshSources sources;
  sources.sources.push_back({.name = "fuzz.yaml", .text = text});
  const config::MeshLoadResult result = config::LoadMeshSources(sources, {{".global", ".svc.cluster.local"}});
  if ((result.table == nullptr) == result.errors.empty()) Fail("a table iff no errors");
  for (const std::string& e : result.errors) {
    if (e.empty()) Fail("empty error message");
  }
  if (!result.table) return;
  const config::RouteTable& table = *result.table;
  uint32_t id = 0;
  for (const config::Cluster& c : table.clusters()) {
    if (c.id != id++) Fail("cluster ids not dense: " + c.name);
    if (table.FindByName(c.name) != &c) Fail("FindByName misses " + c.name);
    if (table.Find(c.host, c.port, c.subset) != &c) Fail("Find misses " + c.name);
    for (const config::Endpoint& e : c.endpoints) {
      if (e.address.empty()) Fail("dialable endpoint without an address in " + c.name);
    }
    if (c.host.find('*') != std::string::npos || c.host.ends_with(".global")) continue;
    // Istio's SNI for the cluster routes to it, unless nothing exports it.
    const std::string sni = "outbound_." + std::to_string(c.port) + "_." + c.subset + "_." + c.host;
    const config::RouteResult r = table.Route(sni);
    if (c.exported ? r.cluster != &c : r.miss != config::RouteMiss::kNotExported) {
      Fail("SNI " + sni + " does not route to its cluster: " + std::string(config::ToString(r.miss)));
    }
  }
  (void)table.Describe();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 256 * 1024) return 0;
  const std::string text(reinterpret_cast<const char*>(data), size);
  CheckTree(text);
  CheckMesh(text);
  return 0;
}
