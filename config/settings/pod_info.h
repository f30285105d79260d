// The Kubernetes Downward API labels file (a volume item with
// fieldRef: metadata.labels): one `key="value"` line per label, the value
// quoted as Go's strconv.Quote writes it (kubernetes
// pkg/fieldpath/fieldpath.go FormatMap: fmt.Sprintf("%s=%q", k, v), keys sorted).
#pragma once

#include <map>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace meshgate::config {

// Parses the file's text; errors name the line: "<name>:3: ...".
absl::StatusOr<std::map<std::string, std::string>> ParsePodLabels(std::string_view text,
                                                                  std::string_view name);

// Reads and parses `path` (a regular file of at most 1 MiB).
absl::StatusOr<std::map<std::string, std::string>> LoadPodLabels(const std::string& path);

}  // namespace meshgate::config
