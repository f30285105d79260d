// Who an endpoint is (destination_workload, app, canonical service...), derived
// from its Pod, WorkloadEntry or ServiceEntry endpoint as Istio derives it.
#pragma once

#include <string>
#include <string_view>

#include "config/mesh/mesh_model.h"
#include "config/model/route_table.h"

namespace meshgate::config::internal {

// A Pod: the workload is its controller (ReplicaSet "x-<pod-template-hash>" ->
// Deployment "x", a CronJob's "x-<timestamp>" Job -> "x", ...), else the Pod.
WorkloadIdentity PodIdentity(const Pod& pod, std::string_view trust_domain);

// A WorkloadEntry, or a ServiceEntry's inline endpoint (`name` is then
// "<ServiceEntry name>-<index>", as pilot names it).
WorkloadIdentity EntryIdentity(std::string_view name, std::string_view ns, const Labels& annotations,
                               const LabelSet& labels, std::string_view service_account,
                               std::string_view trust_domain);

// The workload name Istio reports for a Pod (pkg/kube/util.go GetWorkloadMetaFromPod).
std::string PodWorkloadName(const Pod& pod);

}  // namespace meshgate::config::internal
