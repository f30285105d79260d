// Renders each cluster's documents from serve.yaml and the files it names,
// keeping the last good version of each when its inputs go bad.
#include "control/publisher.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <algorithm>
#include <chrono>
#include <optional>

#include "absl/strings/str_cat.h"
#include "base/read_file.h"
#include "config/mesh/mesh_loader.h"
#include "control/serviceentries.h"

namespace meshgate::control {

namespace {

constexpr char kYaml[] = "application/yaml";
constexpr char kPem[] = "application/x-pem-file";

// Bounded, regular files only; the error names the file and errno.
absl::StatusOr<std::string> ReadText(const std::string& path) { return base::ReadConfigFile(path); }

std::string Etag(const std::string& body) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  EVP_Digest(body.data(), body.size(), digest, &size, EVP_sha256(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "\"";
  for (unsigned int i = 0; i < 12 && i < size; ++i) {
    out += kHex[digest[i] >> 4];
    out += kHex[digest[i] & 15];
  }
  return out + "\"";
}

uint64_t UnixMillis() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

}  // namespace

namespace {

// One CERTIFICATE block parsed as X.509 and written again by OpenSSL: only
// what parses as a certificate gets out, in canonical PEM; nullopt when the
// block is no certificate (a key relabelled CERTIFICATE, garbage base64).
std::optional<std::string> ReencodeCertificate(std::string_view block) {
  BIO* in = BIO_new_mem_buf(block.data(), static_cast<int>(block.size()));
  X509* cert = in ? PEM_read_bio_X509(in, nullptr, nullptr, nullptr) : nullptr;
  BIO_free(in);
  ERR_clear_error();
  if (cert == nullptr) return std::nullopt;
  BIO* out = BIO_new(BIO_s_mem());
  std::optional<std::string> pem;
  if (out && PEM_write_bio_X509(out, cert) == 1) {
    char* data = nullptr;
    const long size = BIO_get_mem_data(out, &data);
    pem = std::string(data, static_cast<size_t>(size));
  }
  BIO_free(out);
  X509_free(cert);
  return pem;
}

}  // namespace

// Every PEM block must be a CERTIFICATE that parses as X.509 (issue 15,
// item 4); what is published is re-encoded from the parsed certificates, so
// text outside the blocks, or a key under a CERTIFICATE label, never passes.
absl::StatusOr<std::string> ReadCertificatesOnly(const std::string& path) {
  auto text = ReadText(path);
  if (!text.ok()) return text.status();
  static constexpr std::string_view kBegin = "-----BEGIN CERTIFICATE-----";
  static constexpr std::string_view kEnd = "-----END CERTIFICATE-----";
  std::string out;
  size_t certs = 0;
  for (size_t at = text->find("-----BEGIN "); at != std::string::npos; at = text->find("-----BEGIN ", at + 1)) {
    if (text->compare(at, kBegin.size(), kBegin) != 0) {
      // The message must not quote the block: /healthz shows it.
      const bool key = text->substr(at, text->find('\n', at) - at).find("KEY") != std::string::npos;
      return absl::PermissionDeniedError(absl::StrCat(
          path, ": holds ", key ? "a private key" : "a PEM block that is not a certificate",
          " next to its certificates; refusing to publish it"));
    }
    const size_t end = text->find(kEnd, at);
    if (end == std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": certificate ", certs + 1, " has no END line"));
    }
    auto pem = ReencodeCertificate(std::string_view(*text).substr(at, end + kEnd.size() - at));
    if (!pem) {
      return absl::PermissionDeniedError(absl::StrCat(path, ": PEM block ", certs + 1,
                                                      " is labelled CERTIFICATE but is not an X.509 certificate; "
                                                      "refusing to publish it"));
    }
    out += *pem;
    ++certs;
  }
  if (certs == 0) return absl::InvalidArgumentError(absl::StrCat(path, ": no PEM certificate"));
  return out;
}

Publisher::Publisher(std::string config_path) : config_path_(std::move(config_path)) {}

void Publisher::Publish(const std::string& key, std::string body, const std::string& content_type,
                        std::vector<std::string>& changed) {
  Resource& r = resources_[key];
  if (r.version != 0 && r.body == body) return;
  // Clock-seeded, so a restarted server's versions still differ from (and
  // exceed) the ones its clients last saw.
  last_version_ = std::max(last_version_ + 1, UnixMillis());
  r.version = last_version_;
  r.etag = Etag(body);
  r.body = std::move(body);
  r.content_type = content_type;
  changed.push_back(key);
}

std::vector<std::string> ClusterMeshErrors(const config::MeshSources& sources) {
  return config::LoadMeshSources(sources, {{".global", ".svc.cluster.local"}}, config::MeshLoadOptions{}).errors;
}

std::vector<std::string> Publisher::Refresh() {
  config_problems_.clear();
  auto loaded = config::LoadServeConfig(config_path_);
  if (!loaded.ok()) {
    config_problems_.push_back(std::string(loaded.status().message()));
    if (!config_loaded_) {
      problems_ = config_problems_;
      return {};
    }
  } else {
    config_ = *std::move(loaded);
    config_loaded_ = true;
  }
  return Render();
}

std::vector<std::string> Publisher::Render() {
  problems_ = config_problems_;
  // Each cluster's files are read, and its Services parsed, once per
  // render, however many other clusters consume them.
  std::map<std::string, ClusterInputs> inputs;
  for (const auto& cluster : config_.clusters) {
    ClusterInputs& in = inputs[cluster.name];
    in.sources = config::ReadMeshSources(cluster.mesh, config_.config_read_limits);
    in.syncing = Syncing(cluster.name);
    if (auto it = kube_objects_.find(cluster.name); it != kube_objects_.end()) {
      in.sources.sources.insert(in.sources.sources.end(), it->second.begin(), it->second.end());
    }
    in.services = config::LoadServices(in.sources);
  }
  std::vector<std::string> changed;
  for (const auto& cluster : config_.clusters) {
    // Before its API server's first complete sync, nothing is published from
    // a cluster: no routes, no (empty) ServiceEntries for its services.
    if (!inputs.at(cluster.name).syncing) RenderCluster(cluster, inputs.at(cluster.name).sources, changed);
    RenderServiceEntries(cluster, inputs, changed);
  }
  return changed;
}

void Publisher::SetKubeObjects(const std::string& cluster, std::vector<config::MeshSource> objects) {
  kube_objects_[cluster] = std::move(objects);
}

void Publisher::ResetKubeObjects(const std::string& cluster) { kube_objects_.erase(cluster); }

bool Publisher::Syncing(const std::string& cluster) const {
  for (const auto& c : config_.clusters) {
    if (c.name == cluster) return c.kubernetes.enabled() && !kube_objects_.count(cluster);
  }
  return false;
}

void Publisher::RenderCluster(const config::ServeConfig::Cluster& cluster, const config::MeshSources& sources,
                              std::vector<std::string>& changed) {
  // The routes are the cluster's own resources, checked with meshgate's
  // loader first: a gateway is never offered what it would refuse.
  std::vector<std::string> errors = ClusterMeshErrors(sources);
  if (errors.empty()) {
    std::string body = absl::StrCat("# meshgatectl serve: the mesh resources of cluster ", cluster.name, "\n");
    for (const config::MeshSource& source : sources.sources) {
      absl::StrAppend(&body, "---\n# source: ", source.name, "\n", source.text);
      if (!source.text.empty() && source.text.back() != '\n') body += '\n';
    }
    Publish("routes/" + cluster.name, std::move(body), kYaml, changed);
  }
  for (const std::string& e : errors) {
    problems_.push_back(absl::StrCat("routes/", cluster.name, ": ", e));
  }
  if (cluster.ca_dir.empty()) return;
  for (const auto& [key, file] : {std::pair<std::string, std::string>{"root-cert/", "root-cert.pem"},
                                  {"cert-chain/", "cert-chain.pem"}}) {
    auto pem = ReadCertificatesOnly(cluster.ca_dir + "/" + file);
    if (pem.ok()) {
      Publish(key + cluster.name, *std::move(pem), kPem, changed);
    } else {
      problems_.push_back(absl::StrCat(key, cluster.name, ": ", pem.status().message()));
    }
  }
}

void Publisher::RenderServiceEntries(const config::ServeConfig::Cluster& consumer,
                                     const std::map<std::string, ClusterInputs>& inputs,
                                     std::vector<std::string>& changed) {
  const std::string vips_path =
      config_.allocations_dir.empty() ? "" : config_.allocations_dir + "/" + consumer.name + ".vips";
  auto vips = vips_path.empty() ? absl::StatusOr<VipAllocations>(VipAllocations()) : VipAllocations::Load(vips_path);
  if (!vips.ok()) {
    problems_.push_back(absl::StrCat("serviceentries/", consumer.name, ": ", vips.status().message()));
    return;
  }
  if (vips_path.empty() && memory_vips_.count(consumer.name)) *vips = memory_vips_[consumer.name];
  const size_t allocated_before = vips->all().size();  // VIPs are only ever added
  std::string body = absl::StrCat("# meshgatectl serve: ServiceEntries for cluster ", consumer.name,
                                  " to reach the other clusters' services\n");
  bool ok = true;
  std::map<std::string, std::string> published;
  for (const auto& source : config_.clusters) {
    if (source.name == consumer.name) continue;
    if (inputs.at(source.name).syncing) return;  // nothing from a cluster still listing: the last version stays
    const config::ServiceListResult& services = inputs.at(source.name).services;
    if (!services.errors.empty()) {
      ok = false;
      for (const auto& e : services.errors) {
        problems_.push_back(absl::StrCat("serviceentries/", consumer.name, ": cluster ", source.name, ": ", e));
      }
      continue;
    }
    ServiceEntryOptions options;
    options.gateway = source.gateway_address.host;
    options.gateway_port = source.gateway_address.port;
    options.network = source.network;
    options.suffix = config_.suffix;
    options.ns = config_.ns;
    absl::StrAppend(&body, "# from cluster ", source.name, " through its gateway ", source.gateway, "\n",
                    ServiceEntries(services.services, options, *vips, &published));
  }
  if (!ok) return;  // the last good version stays
  if (vips_path.empty()) {
    memory_vips_[consumer.name] = *vips;
  } else if (vips->all().size() == allocated_before) {
    // Nothing new: no write, so a watched directory sees no change of ours.
  } else if (absl::Status s = vips->Save(vips_path); !s.ok()) {
    problems_.push_back(absl::StrCat("serviceentries/", consumer.name, ": ", s.message()));
    return;  // a VIP not on disk could be handed out twice after a restart
  }
  published_vips_[consumer.name] = std::move(published);
  Publish("serviceentries/" + consumer.name, std::move(body), kYaml, changed);
}

const Resource* Publisher::Find(const std::string& key) const {
  auto it = resources_.find(key);
  return it == resources_.end() ? nullptr : &it->second;
}

std::vector<std::string> Publisher::cluster_names() const {
  std::vector<std::string> names;
  for (const auto& c : config_.clusters) names.push_back(c.name);
  return names;
}

std::vector<std::string> Publisher::watch_paths() const {
  std::vector<std::string> paths = {config_path_};
  for (const auto& c : config_.clusters) {
    paths.insert(paths.end(), c.mesh.begin(), c.mesh.end());
    if (!c.ca_dir.empty()) paths.push_back(c.ca_dir + "/root-cert.pem");
  }
  return paths;
}

}  // namespace meshgate::control
