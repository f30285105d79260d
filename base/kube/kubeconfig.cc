// kubeconfig files, read with the project's one YAML reader (base/yaml).
// Fields and their meaning: https://kubernetes.io/docs/reference/config-api/kubeconfig.v1/
// Relative file references resolve against the kubeconfig's folder
// (https://kubernetes.io/docs/concepts/configuration/organize-cluster-access-kubeconfig/#file-references).
#include <string_view>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/address.h"
#include "base/kube/credentials.h"
#include "base/yaml/yaml_fields.h"
#include "base/yaml/yaml_tree.h"

namespace meshgate::kube {

namespace {

// Reads one kubeconfig; errors collect in the sink (file:line:column: field: what).
class KubeconfigReader {
 public:
  KubeconfigReader(std::string name, std::string dir, std::vector<std::string>* errors)
      : dir_(std::move(dir)), sink_(std::move(name), errors) {}

  std::optional<std::string> String(const yaml::Node& map, std::string_view key, std::string_view path) {
    const yaml::MapEntry e = yaml::Lookup(map, key);
    if (!e.present() || yaml::IsMissing(e.value)) return std::nullopt;
    return yaml::ReadString(e.value, yaml::FieldPath(path, key), sink_);
  }

  // The `inner` map of the list item of `list` whose name is `name`.
  yaml::Node Named(const yaml::Node& root, std::string_view list, std::string_view inner,
                   const std::string& name) {
    yaml::Node found;
    yaml::ForEachMap(yaml::Lookup(root, list).value, list, sink_,
                     [&](const yaml::Node& item, const std::string& path, size_t) {
                       if (String(item, "name", path) == name) found = yaml::Lookup(item, inner).value;
                     });
    if (!found.IsDefined()) sink_.AddAt({}, list, absl::StrCat("no entry named \"", name, "\""));
    else if (!yaml::ExpectMap(found, absl::StrCat(std::string(list), "[", name, "].", std::string(inner)), sink_)) found = {};
    return found;
  }

  // PEM from `<key>-data` (base64) or the file `<key>` (its path in *file).
  std::string Pem(const yaml::Node& map, std::string_view key, std::string_view path,
                  std::string* path_out = nullptr) {
    if (auto data = String(map, absl::StrCat(std::string(key), "-data"), path)) {
      std::string pem;
      if (!absl::Base64Unescape(*data, &pem)) {
        sink_.Add(map, yaml::FieldPath(path, absl::StrCat(std::string(key), "-data")), "is not base64");
      }
      return pem;
    }
    if (auto file = String(map, key, path)) {
      auto text = ReadSmallFile(Resolve(*file));
      if (text.ok() && path_out != nullptr) *path_out = Resolve(*file);
      if (text.ok()) return *text;
      sink_.Add(map, yaml::FieldPath(path, key), std::string(text.status().message()));
    }
    return "";
  }

  std::string Resolve(const std::string& file) const {
    return file.empty() || file[0] == '/' || dir_.empty() ? file : absl::StrCat(dir_, "/", file);
  }

  void Add(const yaml::Node& at, std::string_view field, std::string_view message) {
    sink_.Add(at, field, message);
  }
  size_t errors() const { return sink_.count(); }

 private:
  std::string dir_;
  yaml::ErrorSink sink_;
};

void ReadCluster(const yaml::Node& cluster, const std::string& path, const KubeconfigOptions& options,
                 KubeconfigReader& r, Credentials& c) {
  const auto server = r.String(cluster, "server", path);
  if (!server) {
    r.Add(cluster, yaml::FieldPath(path, "server"), "required");
  } else if (auto url = base::ParseHttpUrl(*server); !url.ok() || !url->tls) {
    r.Add(cluster, yaml::FieldPath(path, "server"),
          url.ok() ? std::string("must be https:// (the token would travel in clear text)")
                  : std::string(url.status().message()));
  } else {
    c.host = url->host;
    c.port = url->port;
  }
  c.tls_server_name = r.String(cluster, "tls-server-name", path).value_or("");
  c.ca_pem = r.Pem(cluster, "certificate-authority", path, &c.ca_file);
  const yaml::MapEntry insecure = yaml::Lookup(cluster, "insecure-skip-tls-verify");
  if (insecure.present() && insecure.value.Scalar() == "true") {
    if (!options.allow_insecure) {
      r.Add(insecure.value, yaml::FieldPath(path, "insecure-skip-tls-verify"),
            "refused: the server would not be verified (pass the explicit allow-insecure option to accept it)");
    }
    c.insecure_skip_tls_verify = options.allow_insecure;
  }
  if (r.String(cluster, "proxy-url", path)) {
    r.Add(cluster, yaml::FieldPath(path, "proxy-url"), "is not supported");
  }
}

void ReadUser(const yaml::Node& user, const std::string& path, KubeconfigReader& r, Credentials& c) {
  for (std::string_view refused : {"exec", "auth-provider"}) {
    const yaml::MapEntry e = yaml::Lookup(user, refused);
    if (e.present() && !yaml::IsMissing(e.value)) {
      r.Add(e.value, yaml::FieldPath(path, refused),
            absl::StrCat(std::string(refused), " credential plugins are not supported: meshgate runs no programs for "
                                  "credentials; use a token, a tokenFile or a client certificate"));
    }
  }
  c.token = r.String(user, "token", path).value_or("");
  if (auto file = r.String(user, "tokenFile", path)) c.token_file = r.Resolve(*file);
  c.client_cert_pem = r.Pem(user, "client-certificate", path);
  c.client_key_pem = r.Pem(user, "client-key", path);
  if (c.client_cert_pem.empty() != c.client_key_pem.empty()) {
    r.Add(user, path, "client-certificate and client-key go together");
  }
  if (r.String(user, "username", path)) {
    r.Add(user, yaml::FieldPath(path, "username"), "basic authentication is not supported");
  }
}

}  // namespace

absl::StatusOr<Credentials> ParseKubeconfig(const std::string& text, const std::string& name,
                                            const std::string& dir, const KubeconfigOptions& options) {
  yaml::ParseError perr;
  auto stream = yaml::Parse(text, &perr);
  if (!stream || stream->documents().size() != 1 || !stream->documents()[0].IsMap()) {
    return absl::InvalidArgumentError(absl::StrCat(name, ":", perr.line, ":", perr.column, ": ",
                                                   stream ? "must be one YAML map" : perr.message));
  }
  const yaml::Node root = stream->documents()[0];
  std::vector<std::string> errors;
  Credentials c;
  {
    KubeconfigReader r(name, dir, &errors);
    std::string context = options.context;
    if (context.empty()) context = r.String(root, "current-context", "").value_or("");
    if (context.empty()) {
      r.Add(root, "current-context", "no context: set current-context or name one");
    } else {
      c.source = absl::StrCat("kubeconfig ", name, " (context ", context, ")");
      const yaml::Node ctx = r.Named(root, "contexts", "context", context);
      const std::string cpath = absl::StrCat("contexts[", context, "].context");
      const auto cluster_name = ctx.IsDefined() ? r.String(ctx, "cluster", cpath) : std::nullopt;
      const auto user_name = ctx.IsDefined() ? r.String(ctx, "user", cpath) : std::nullopt;
      if (ctx.IsDefined()) c.default_namespace = r.String(ctx, "namespace", cpath).value_or("");
      if (ctx.IsDefined() && !cluster_name) r.Add(ctx, yaml::FieldPath(cpath, "cluster"), "required");
      if (cluster_name) {
        const yaml::Node cl = r.Named(root, "clusters", "cluster", *cluster_name);
        if (cl.IsDefined()) ReadCluster(cl, absl::StrCat("clusters[", *cluster_name, "].cluster"), options, r, c);
      }
      if (user_name) {
        const yaml::Node u = r.Named(root, "users", "user", *user_name);
        if (u.IsDefined()) ReadUser(u, absl::StrCat("users[", *user_name, "].user"), r, c);
      }
    }
  }
  if (!errors.empty()) return absl::InvalidArgumentError(absl::StrJoin(errors, "\n"));
  return c;
}

absl::StatusOr<Credentials> LoadKubeconfig(const std::string& path, const KubeconfigOptions& options) {
  auto text = ReadSmallFile(path, 16 << 20);
  if (!text.ok()) return text.status();
  const size_t slash = path.rfind('/');
  return ParseKubeconfig(*text, path, slash == std::string::npos ? "" : path.substr(0, slash), options);
}

}  // namespace meshgate::kube
