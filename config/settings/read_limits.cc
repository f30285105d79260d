#include "config/settings/read_limits.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace meshgate::config {

void ReadConfigReadLimits(const yaml::Node& limits, std::string_view path, base::ConfigReadLimits& out,
                          yaml::ErrorSink& sink) {
  constexpr int64_t kMin = int64_t{1} << 10;
  constexpr int64_t kMax = int64_t{16} << 30;
  const std::pair<std::string_view, uint64_t*> keys[] = {{"maxConfigFileBytes", &out.max_file_bytes},
                                                         {"maxConfigBytes", &out.max_total_bytes}};
  for (const auto& entry : keys) {
    // No structured binding captured: clang 14 (the fuzz build) refuses it.
    const std::string_view key = entry.first;
    uint64_t* value = entry.second;
    yaml::IfPresent(limits, key, [&](const yaml::Node& n) {
      if (auto v = yaml::ReadInt(n, yaml::FieldPath(path, key), kMin, kMax, sink)) *value = static_cast<uint64_t>(*v);
    });
  }
  // A total below the default per-file cap lowers that cap; a per-file cap
  // written above the total is a mistake.
  if (!yaml::Lookup(limits, "maxConfigFileBytes").present()) {
    out.max_file_bytes = std::min(out.max_file_bytes, out.max_total_bytes);
  }
  if (out.max_file_bytes > out.max_total_bytes) {
    sink.Add(limits, yaml::FieldPath(path, "maxConfigFileBytes"),
             absl::StrCat("(", out.max_file_bytes, ") must not exceed ", std::string(path), ".maxConfigBytes (",
                          out.max_total_bytes, ")"));
  }
}

}  // namespace meshgate::config
