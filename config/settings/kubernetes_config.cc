// The shared `kubernetes:` reader (meshgate.yaml and serve.yaml).
#include "config/settings/kubernetes_config.h"

namespace meshgate::config {

using yaml::IfPresent;

void ReadKubernetesConfig(const yaml::Node& node, std::string_view path, yaml::ErrorSink& sink,
                          const std::function<std::string(const std::string&)>& resolve, KubernetesConfig& out) {
  if (!yaml::ExpectMap(node, path, sink)) return;
  yaml::CheckFields(node, path, {"inCluster", "kubeconfig", "context", "allowInsecure"}, sink);
  const auto field = [&](std::string_view key) { return yaml::FieldPath(path, key); };
  IfPresent(node, "inCluster", [&](const yaml::Node& n) {
    if (auto v = yaml::ReadBool(n, field("inCluster"), sink)) out.in_cluster = *v;
  });
  IfPresent(node, "kubeconfig", [&](const yaml::Node& n) {
    auto text = yaml::ReadString(n, field("kubeconfig"), sink);
    if (!text) return;
    if (text->empty()) return sink.Add(n, field("kubeconfig"), "must not be empty");
    out.kubeconfig = resolve(*text);
  });
  IfPresent(node, "context", [&](const yaml::Node& n) {
    if (auto text = yaml::ReadString(n, field("context"), sink)) out.context = *text;
  });
  IfPresent(node, "allowInsecure", [&](const yaml::Node& n) {
    if (auto v = yaml::ReadBool(n, field("allowInsecure"), sink)) out.allow_insecure = *v;
  });
  if (out.in_cluster && !out.kubeconfig.empty()) {
    sink.Add(node, path, "set either inCluster: true or kubeconfig, not both");
  } else if (!out.in_cluster && out.kubeconfig.empty()) {
    sink.Add(node, path, "needs inCluster: true or kubeconfig: PATH");
  }
  if (!out.context.empty() && out.kubeconfig.empty()) {
    sink.Add(node, field("context"), "applies to a kubeconfig only");
  }
}

}  // namespace meshgate::config
