// Host names, port names, IP literals and SNI suffix rules: the syntax shared by
// the mesh loader, the gateway config and the route table. No YAML, no sockets.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "absl/strings/string_view.h"

namespace meshgate::base {

// RFC 1123 label as Kubernetes checks it: [a-z0-9]([-a-z0-9]*[a-z0-9])?, at most 63.
bool IsDns1123Label(std::string_view label);

// Why `host` is not a valid DNS name (labels of letters, digits and '-', at most
// 253 characters), or nullopt when it is. Expects no wildcard.
std::optional<std::string> FqdnProblem(std::string_view host);

// An SNI rewrite suffix: "." followed by a valid DNS name, e.g. ".global".
bool IsDomainSuffix(std::string_view suffix);

// IPv4 dotted quad or IPv6 (no brackets, no zone); canonical text on success.
std::optional<std::string> CanonicalIp(std::string_view text);

// True when `host` ends with `suffix` (ASCII case-insensitive) at a label boundary
// and has at least one character before it: ".global" matches "a.global" but
// neither "aglobal" nor "global".
bool HasLabelSuffix(std::string_view host, std::string_view suffix);

// Decimal port 1..65535, digits only.
bool ParsePortNumber(std::string_view text, uint16_t& port);

// Istio host matching: "*" matches every host, "*.example.com" every host
// ending in ".example.com" (any number of labels before it), anything else
// only itself. Both sides lowercase.
bool HostMatches(std::string_view pattern, std::string_view host);

// Why `host` is not a valid Istio host (an FQDN, optionally with a leading
// "*." wildcard label), or nullopt.
std::optional<std::string> WildcardHostProblem(std::string_view host);

// Istio's short names: a host without a dot is a Kubernetes service in
// `ns` ("reviews" -> "reviews.default.svc.cluster.local"); anything else is kept.
std::string ResolveShortName(std::string_view host, std::string_view ns,
                             std::string_view cluster_domain);

// Kubernetes label syntax: key [prefix/]name (name: at most 63 of [A-Za-z0-9-_.],
// alphanumeric at both ends; prefix a DNS subdomain), value empty or like a name.
std::optional<std::string> LabelKeyProblem(std::string_view key);
std::optional<std::string> LabelValueProblem(std::string_view value);

// Equality-based selector: every selector label present with the same value.
bool SelectorMatches(const std::map<std::string, std::string>& selector,
                     const std::map<std::string, std::string>& labels);

std::string AsciiLower(std::string_view text);
bool EqualsIgnoreCase(std::string_view a, std::string_view b);
bool StartsWithIgnoreCase(std::string_view text, std::string_view prefix);

// Debian's abseil is built with its own absl::string_view
// (ABSL_OPTION_USE_STD_STRING_VIEW 0), which std::string_view doesn't convert to.
inline absl::string_view AbslView(std::string_view s) { return {s.data(), s.size()}; }
inline std::string_view StdView(absl::string_view s) { return {s.data(), s.size()}; }

}  // namespace meshgate::base
