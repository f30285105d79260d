// `meshgatectl serve`'s content: what each cluster's gateway and sidecars
// should have, rendered from the clusters' own resources, each document with
// a version and an ETag. No I/O besides reading the inputs; serve.cc puts it
// on HTTP.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "config/mesh/mesh_loader.h"
#include "config/settings/serve_config.h"
#include "control/serviceentries.h"

namespace meshgate::control {

// One published document.
struct Resource {
  std::string body;
  std::string content_type;
  uint64_t version = 0;  // grows on every change, also across restarts (clock-seeded)
  std::string etag;      // "\"<hash of body>\""
};

class Publisher {
 public:
  explicit Publisher(std::string config_path);

  // Re-reads the config and every input. A document whose inputs are bad
  // keeps its last good version; the problems are returned (and kept for
  // /healthz). Returns the keys of documents that changed.
  std::vector<std::string> Refresh();
  // Renders again with the config as it is (the files are re-read, the
  // Kubernetes objects are the last set given). Returns the keys changed.
  std::vector<std::string> Render();

  // A cluster's objects from its Kubernetes API server (clusters[].kubernetes),
  // each already valid alone: mesh sources beside its files from now on.
  void SetKubeObjects(const std::string& cluster, std::vector<config::MeshSource> objects);
  // The cluster's API server is (again) before its first complete sync:
  // nothing new is published from it until SetKubeObjects.
  void ResetKubeObjects(const std::string& cluster);
  // Whether `cluster` follows an API server that has not completed its first
  // sync: its routes/ and the other clusters' serviceentries/ wait for it.
  bool Syncing(const std::string& cluster) const;

  // Keys: "routes/<cluster>", "serviceentries/<cluster>",
  // "root-cert/<cluster>", "cert-chain/<cluster>". Null when unknown or
  // never rendered.
  const Resource* Find(const std::string& key) const;
  const config::ServeConfig& config() const { return config_; }
  const std::vector<std::string>& problems() const { return problems_; }
  std::vector<std::string> cluster_names() const;
  // Each consuming cluster's published ServiceEntry hosts and their VIPs
  // (`addresses`), as of its last good serviceentries/ document.
  const std::map<std::string, std::map<std::string, std::string>>& published_vips() const { return published_vips_; }
  // Every path whose change calls for a Refresh().
  std::vector<std::string> watch_paths() const;

 private:
  void Publish(const std::string& key, std::string body, const std::string& content_type,
               std::vector<std::string>& changed);
  struct ClusterInputs {
    config::MeshSources sources;
    config::ServiceListResult services;
    bool syncing = false;  // its API server has not completed a first sync
  };
  void RenderCluster(const config::ServeConfig::Cluster& cluster, const config::MeshSources& sources,
                     std::vector<std::string>& changed);
  void RenderServiceEntries(const config::ServeConfig::Cluster& consumer,
                            const std::map<std::string, ClusterInputs>& inputs,
                            std::vector<std::string>& changed);

  std::string config_path_;
  config::ServeConfig config_;
  bool config_loaded_ = false;
  std::map<std::string, Resource> resources_;
  std::vector<std::string> problems_;
  std::vector<std::string> config_problems_;  // serve.yaml's, from the last Refresh
  uint64_t last_version_ = 0;
  std::map<std::string, VipAllocations> memory_vips_;  // without an allocations dir
  std::map<std::string, std::map<std::string, std::string>> published_vips_;
  std::map<std::string, std::vector<config::MeshSource>> kube_objects_;  // by cluster, once synced
};

// The errors meshgate's loader finds in `sources` of one cluster, with the
// options serve checks routes with (the `.global` rewrite, default options):
// a gateway is never offered what it would refuse. Each Kubernetes object is
// checked alone with it, then the cluster's set together.
std::vector<std::string> ClusterMeshErrors(const config::MeshSources& sources);

// The text of a PEM file that holds certificates and nothing else: a
// private key (or anything but CERTIFICATE blocks) is refused, so no
// mistake in the inputs can publish one.
absl::StatusOr<std::string> ReadCertificatesOnly(const std::string& path);

}  // namespace meshgate::control
