// Where the Kubernetes API server is and how to prove who we are: from the
// pod's service account (in cluster) or from a kubeconfig (out of cluster).
//
// Follows "Accessing the Kubernetes API from a Pod"
// (https://kubernetes.io/docs/tasks/run-application/access-api-from-pod/) and
// "Organizing Cluster Access Using kubeconfig Files"
// (https://kubernetes.io/docs/concepts/configuration/organize-cluster-access-kubeconfig/).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <ctime>
#include <optional>
#include <string>

#include "absl/status/statusor.h"

namespace meshgate::kube {

// Everything the API client needs to connect. Files named here are read when
// the credentials are built, except two that rotate and are re-read by the
// client whenever they change: the token file (projected service account
// tokens are refreshed by the kubelet) and the CA file (the kubelet also
// rewrites the projected ca.crt when the cluster's root rotates).
struct Credentials {
  std::string host;             // a DNS name or an IP (unbracketed)
  uint16_t port = 443;
  std::string tls_server_name;  // SNI and verification name when set (kubeconfig tls-server-name)
  std::string ca_pem;           // trusted roots; empty means the system's roots
  std::string ca_file;          // where ca_pem came from, if a file: re-read when it changes
  bool insecure_skip_tls_verify = false;  // only ever set when the caller allowed it
  std::string token;            // a static bearer token
  std::string token_file;       // or a bearer token file, re-read when it changes
  std::string client_cert_pem;  // client certificate authentication (chain, PEM)
  std::string client_key_pem;
  std::string default_namespace;  // the pod's namespace, or the context's
  std::string source;             // for messages: "in-cluster" or "kubeconfig PATH (context NAME)"

  // The name the server certificate must carry.
  const std::string& VerifyName() const { return tls_server_name.empty() ? host : tls_server_name; }
};

// The service account mount and environment, overridable for tests.
struct InClusterPaths {
  std::string token = "/var/run/secrets/kubernetes.io/serviceaccount/token";
  std::string ca = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt";
  std::string ns = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";
  // Unset: read KUBERNETES_SERVICE_HOST / KUBERNETES_SERVICE_PORT.
  std::optional<std::string> host;
  std::optional<std::string> port;
};
absl::StatusOr<Credentials> InClusterCredentials(const InClusterPaths& paths = {});

struct KubeconfigOptions {
  std::string context;  // empty: current-context
  // insecure-skip-tls-verify: true is refused unless this is set (a flag the
  // user passes knowingly), since it sends the token to whoever answers.
  bool allow_insecure = false;
};
// Reads a kubeconfig. exec and auth-provider users are refused by name: they
// run programs or speak to identity providers, which meshgate does not do.
absl::StatusOr<Credentials> LoadKubeconfig(const std::string& path, const KubeconfigOptions& options);
// The same from text; relative file references resolve against `dir`.
absl::StatusOr<Credentials> ParseKubeconfig(const std::string& text, const std::string& name,
                                            const std::string& dir, const KubeconfigOptions& options);

// A small file re-read when its identity, size or mtime changes: the kubelet
// updates a projected volume by swapping a symlink to a new directory
// ("..data"), so the path resolves to a new inode
// (https://kubernetes.io/docs/concepts/storage/projected-volumes/).
class WatchedFile {
 public:
  WatchedFile(std::string path, size_t max_bytes) : path_(std::move(path)), max_bytes_(max_bytes) {}
  // The content; `*changed` (if given) says whether it was (re)read by this call.
  absl::StatusOr<std::string> Current(bool* changed = nullptr);
  // Read again on the next Current() even if the file looks unchanged.
  void Invalidate() { stamp_.reset(); }
  uint64_t reads() const { return reads_; }
  const std::string& path() const { return path_; }

 private:
  struct Stamp {
    dev_t dev;
    ino_t ino;
    off_t size;
    timespec mtime;
    bool operator==(const Stamp& o) const {
      return dev == o.dev && ino == o.ino && size == o.size && mtime.tv_sec == o.mtime.tv_sec &&
             mtime.tv_nsec == o.mtime.tv_nsec;
    }
  };
  std::string path_;
  size_t max_bytes_;
  std::optional<Stamp> stamp_;
  std::string content_;
  uint64_t reads_ = 0;
};

// A bearer token file (service account token or kubeconfig tokenFile),
// re-read when it changes or when the server said 401 (Invalidate()).
class TokenFile {
 public:
  explicit TokenFile(std::string path) : file_(std::move(path), 64 * 1024) {}
  absl::StatusOr<std::string> Current();
  void Invalidate() { file_.Invalidate(); }
  uint64_t reads() const { return file_.reads(); }

 private:
  WatchedFile file_;
};

// A whole small file (certificates, tokens), at most `max_bytes`.
absl::StatusOr<std::string> ReadSmallFile(const std::string& path, size_t max_bytes = 1 << 20);

}  // namespace meshgate::kube
