// The `limits:` keys meshgate.yaml and serve.yaml share: how many bytes of
// configuration may be read (base/read_file.h).
#pragma once

#include <string_view>

#include "base/read_file.h"
#include "base/yaml/yaml_fields.h"

namespace meshgate::config {

inline constexpr std::string_view kConfigReadLimitKeys[] = {"maxConfigFileBytes", "maxConfigBytes"};

// limits.maxConfigFileBytes and limits.maxConfigBytes from the `limits` map
// (`path` is its field path): plain byte counts, 1 KiB .. 16 GiB, the per-file
// cap no larger than the total. Other keys of the map are not checked here.
void ReadConfigReadLimits(const yaml::Node& limits, std::string_view path, base::ConfigReadLimits& out,
                          yaml::ErrorSink& sink);

}  // namespace meshgate::config
