// Validates Istio ServiceEntry and WorkloadEntry documents with Istio's rules,
// plus what a passthrough gateway can't serve (resolution NONE), said plainly.
#pragma once

#include "config/mesh/mesh_model.h"
#include "base/yaml/yaml_fields.h"
#include "base/yaml/yaml_tree.h"

namespace meshgate::config::internal {

// Reads a document whose kind is ServiceEntry; `meta` already names it (kind,
// file, position). The entry is valid only if no error was added to `sink`.
// Endpoint labels are interned with `labels` (one per load).
ServiceEntry ReadServiceEntry(const yaml::Node& doc, ResourceMeta meta, LabelInterner& labels, ErrorSink& sink);

// Same for a WorkloadEntry: one workload that ServiceEntries select by labels.
WorkloadEntry ReadWorkloadEntry(const yaml::Node& doc, ResourceMeta meta, LabelInterner& labels, ErrorSink& sink);

}  // namespace meshgate::config::internal
