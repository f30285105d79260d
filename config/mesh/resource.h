// What every Kubernetes resource document shares: apiVersion, kind and metadata,
// and where it was read from, for messages that name it.
#pragma once

#include <initializer_list>
#include <map>
#include <span>
#include <string>
#include <string_view>

#include "absl/strings/string_view.h"
#include "base/names.h"
#include "base/duration.h"
#include "base/yaml/yaml_fields.h"
#include "base/yaml/yaml_tree.h"

namespace meshgate::config::internal {

// The readers use the base toolkit unqualified, as one vocabulary.
using namespace ::meshgate::base;  // NOLINT(google-build-using-namespace)
using namespace ::meshgate::yaml;  // NOLINT(google-build-using-namespace)

inline constexpr absl::string_view kIstioNetworkingVersions[] = {
    "networking.istio.io/v1alpha3", "networking.istio.io/v1beta1", "networking.istio.io/v1"};
inline constexpr absl::string_view kCoreVersions[] = {"v1"};
inline constexpr absl::string_view kDiscoveryVersions[] = {"discovery.k8s.io/v1"};

struct ResourceMeta {
  std::string kind;
  std::string ns = "default";
  std::string name;
  std::string file;
  Position at;  // the document
  size_t sequence = 0;  // load order across all files, for stable output order
  std::map<std::string, std::string> labels;
  std::map<std::string, std::string> annotations;

  std::string Subject() const;  // "ServiceEntry foo/httpbin"
  std::string Source() const;   // "file.yaml:12 ServiceEntry foo/httpbin"
};

// Reads apiVersion (one of `versions`) and metadata into `meta`, and reports
// top-level keys outside `fields`. kind, file and position are set by the caller.
void ReadEnvelope(const yaml::Node& doc, std::span<const absl::string_view> versions,
                  std::initializer_list<std::string_view> fields, ErrorSink& sink,
                  ResourceMeta& meta);

// The spec entry when it is a map (its key is where "spec.x: required" points);
// otherwise reports why and returns an entry that isn't present().
MapEntry RequireSpec(const yaml::Node& doc, ErrorSink& sink);

}  // namespace meshgate::config::internal
