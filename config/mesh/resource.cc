// apiVersion and metadata checks shared by every kind meshgate reads.
#include "config/mesh/resource.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/names.h"

namespace meshgate::config::internal {

std::string ResourceMeta::Subject() const { return absl::StrCat(kind, " ", ns, "/", name); }

std::string ResourceMeta::Source() const {
  return absl::StrCat(file, ":", at.line, " ", Subject());
}

namespace {

void ReadApiVersion(const yaml::Node& doc, std::span<const absl::string_view> versions,
                    ErrorSink& sink, const ResourceMeta& meta) {
  const MapEntry api = Lookup(doc, "apiVersion");
  if (!Require(api, doc, "apiVersion", sink)) return;
  auto version = ReadString(api.value, "apiVersion", sink);
  if (!version) return;
  for (absl::string_view v : versions) {
    if (v == *version) return;
  }
  sink.Add(api.value, "apiVersion",
           absl::StrCat("unsupported apiVersion \"", *version, "\" for ", meta.kind,
                        " (one of: ", absl::StrJoin(versions, ", "), ")"));
}

void ReadMetadata(const yaml::Node& doc, ErrorSink& sink, ResourceMeta& meta) {
  const MapEntry metadata = Lookup(doc, "metadata");
  if (!Require(metadata, doc, "metadata", sink) || !ExpectMap(metadata.value, "metadata", sink)) {
    return;
  }
  const MapEntry name = Lookup(metadata.value, "name");
  if (Require(name, metadata.key, "metadata.name", sink)) {
    if (auto text = ReadString(name.value, "metadata.name", sink)) {
      if (text->empty()) sink.Add(name.key, "metadata.name", "required (is empty)");
      meta.name = *text;
    }
  }
  IfPresent(metadata.value, "namespace", [&](const yaml::Node& node) {
    auto text = ReadString(node, "metadata.namespace", sink);
    if (!text || text->empty()) return;
    if (!IsDns1123Label(*text)) {
      sink.Add(node, "metadata.namespace",
               absl::StrCat("\"", *text,
                            "\" is not a valid namespace (lowercase letters, digits and '-', at "
                            "most 63 characters)"));
      return;
    }
    meta.ns = *text;
  });
  IfPresent(metadata.value, "labels", [&](const yaml::Node& node) {
    if (auto labels = ReadStringMap(node, "metadata.labels", sink)) meta.labels = *labels;
  });
  IfPresent(metadata.value, "annotations", [&](const yaml::Node& node) {
    if (auto annotations = ReadStringMap(node, "metadata.annotations", sink)) {
      meta.annotations = *annotations;
    }
  });
}

}  // namespace

void ReadEnvelope(const yaml::Node& doc, std::span<const absl::string_view> versions,
                  std::initializer_list<std::string_view> fields, ErrorSink& sink,
                  ResourceMeta& meta) {
  CheckFields(doc, "", fields, sink);
  ReadApiVersion(doc, versions, sink, meta);
  ReadMetadata(doc, sink, meta);
}

MapEntry RequireSpec(const yaml::Node& doc, ErrorSink& sink) {
  const MapEntry spec = Lookup(doc, "spec");
  if (!Require(spec, doc, "spec", sink) || !ExpectMap(spec.value, "spec", sink)) return {};
  return spec;
}

}  // namespace meshgate::config::internal
