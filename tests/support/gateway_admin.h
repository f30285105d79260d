// Waiting on meshgate's own account of its state, through its admin API
// (GET /config_dump), instead of sleeping until a change has probably landed.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

namespace meshgate::testing {

struct ConfigVersions {
  uint64_t published = 0;  // "version": what the runtime published (meshgate_config_version)
  uint64_t workers = 0;    // "workers_version": what every worker has installed
  uint64_t snapshot = 0;          // every snapshot published, DNS answers included
  uint64_t workers_snapshot = 0;  // the snapshot every worker installed
};

// Both versions from one GET /config_dump; nullopt when there is no answer
// (or no such fields).
std::optional<ConfigVersions> ReadConfigVersions(const std::string& admin_address);

// Waits until every worker has installed `version` or a later one; false at
// the deadline. From then on every new connection is routed by that version.
bool WaitForWorkersVersion(const std::string& admin_address, uint64_t version, int timeout_ms = 5000);

// Waits until every worker has installed the version the runtime has
// published by the time of the call (a reload it has logged). A DNS answer
// is published under the version it changes, so it cannot be waited for so.
bool WaitForWorkersToCatchUp(const std::string& admin_address, int timeout_ms = 5000);

// One sample of the Prometheus exposition at `metrics_address`
// (/stats/prometheus): the first series named exactly `name` that carries
// every label of `labels`; -1 if there is none (or no answer).
double Metric(const std::string& metrics_address, const std::string& name,
              const std::map<std::string, std::string>& labels = {});

}  // namespace meshgate::testing
