// In-cluster credentials and the rotating token file.
#include "base/kube/credentials.h"

#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "base/address.h"

namespace meshgate::kube {

absl::StatusOr<std::string> ReadSmallFile(const std::string& path, size_t max_bytes) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::string text;
  text.resize(max_bytes + 1);
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  if (text.size() > max_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(path, " is larger than ", max_bytes, " bytes"));
  }
  return text;
}

absl::StatusOr<std::string> WatchedFile::Current(bool* changed) {
  if (changed != nullptr) *changed = false;
  struct stat st {};
  if (::stat(path_.c_str(), &st) != 0) return absl::NotFoundError(absl::StrCat(path_, ": cannot stat"));
  const Stamp now{st.st_dev, st.st_ino, st.st_size, st.st_mtim};
  if (stamp_ && *stamp_ == now) return content_;
  auto text = ReadSmallFile(path_, max_bytes_);
  if (!text.ok()) return text.status();
  content_ = std::move(*text);
  stamp_ = now;
  ++reads_;
  if (changed != nullptr) *changed = true;
  return content_;
}

absl::StatusOr<std::string> TokenFile::Current() {
  auto text = file_.Current();
  if (!text.ok()) return absl::Status(text.status().code(), absl::StrCat("token file ", text.status().message()));
  std::string token(absl::StripAsciiWhitespace(*text));
  if (token.empty()) return absl::InvalidArgumentError(absl::StrCat("token file ", file_.path(), " is empty"));
  return token;
}

namespace {

std::optional<std::string> Env(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') return std::nullopt;
  return std::string(value);
}

}  // namespace

// "Accessing the Kubernetes API from a Pod": the API server is at
// KUBERNETES_SERVICE_HOST:KUBERNETES_SERVICE_PORT, its CA is the service
// account's ca.crt, the bearer token is the service account's token file.
absl::StatusOr<Credentials> InClusterCredentials(const InClusterPaths& paths) {
  const auto host = paths.host ? paths.host : Env("KUBERNETES_SERVICE_HOST");
  const auto port = paths.port ? paths.port : Env("KUBERNETES_SERVICE_PORT");
  if (!host || !port || host->empty() || port->empty()) {
    return absl::FailedPreconditionError(
        "in-cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be set (not running in a pod?)");
  }
  Credentials c;
  c.source = "in-cluster";
  c.host = *host;
  uint32_t p = 0;
  if (!absl::SimpleAtoi(*port, &p) || p == 0 || p > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("in-cluster: KUBERNETES_SERVICE_PORT ", *port, " is no port"));
  }
  c.port = static_cast<uint16_t>(p);
  auto ca = ReadSmallFile(paths.ca);
  if (!ca.ok()) return absl::FailedPreconditionError(absl::StrCat("in-cluster CA: ", ca.status().message()));
  c.ca_pem = std::move(*ca);
  c.ca_file = paths.ca;
  c.token_file = paths.token;
  TokenFile probe(paths.token);
  if (auto token = probe.Current(); !token.ok()) {
    return absl::FailedPreconditionError(absl::StrCat("in-cluster: ", token.status().message()));
  }
  if (auto ns = ReadSmallFile(paths.ns, 4096); ns.ok()) {
    c.default_namespace = std::string(absl::StripAsciiWhitespace(*ns));
  }
  return c;
}

}  // namespace meshgate::kube
