// Syntax checks for names and addresses used across config/.
#include "base/names.h"

#include <arpa/inet.h>  // inet_pton/inet_ntop: text conversions only, no sockets

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace meshgate::base {

namespace {

bool IsLabelChar(char c) { return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-'; }

std::optional<std::string> LabelProblem(std::string_view label) {
  if (label.empty()) return "empty label";
  const absl::string_view quoted = AbslView(label);
  if (label.size() > 63) return absl::StrCat("label \"", quoted, "\" is longer than 63 characters");
  for (char c : label) {
    if (!IsLabelChar(c)) {
      return absl::StrCat("label \"", quoted, "\" has invalid character '", std::string(1, c), "'");
    }
  }
  if (label.front() == '-' || label.back() == '-') {
    return absl::StrCat("label \"", quoted, "\" starts or ends with '-'");
  }
  return std::nullopt;
}

}  // namespace

bool IsDns1123Label(std::string_view label) {
  if (label.empty() || label.size() > 63) return false;
  for (char c : label) {
    if (!(absl::ascii_islower(static_cast<unsigned char>(c)) ||
          absl::ascii_isdigit(static_cast<unsigned char>(c)) || c == '-')) {
      return false;
    }
  }
  return label.front() != '-' && label.back() != '-';
}

std::optional<std::string> FqdnProblem(std::string_view host) {
  if (host.empty()) return "empty host name";
  if (host.size() > 253) return "longer than 253 characters";
  while (true) {
    const size_t dot = host.find('.');
    if (auto problem = LabelProblem(host.substr(0, dot))) return problem;
    if (dot == std::string_view::npos) return std::nullopt;
    host.remove_prefix(dot + 1);
  }
}

bool IsDomainSuffix(std::string_view suffix) {
  return suffix.size() > 1 && suffix.front() == '.' && !FqdnProblem(suffix.substr(1));
}

std::optional<std::string> CanonicalIp(std::string_view text) {
  if (text.empty() || text.size() >= INET6_ADDRSTRLEN) return std::nullopt;
  const std::string s(text);
  unsigned char buf[16];
  char out[INET6_ADDRSTRLEN];
  const int family = s.find(':') == std::string::npos ? AF_INET : AF_INET6;
  if (inet_pton(family, s.c_str(), buf) != 1) return std::nullopt;
  if (inet_ntop(family, buf, out, sizeof out) == nullptr) return std::nullopt;
  return std::string(out);
}

bool HasLabelSuffix(std::string_view host, std::string_view suffix) {
  if (suffix.empty() || host.size() <= suffix.size()) return false;
  if (!EqualsIgnoreCase(host.substr(host.size() - suffix.size()), suffix)) return false;
  return suffix.front() == '.' || host[host.size() - suffix.size() - 1] == '.';
}

bool ParsePortNumber(std::string_view text, uint16_t& port) {
  if (text.empty() || text.size() > 5) return false;
  uint32_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    value = value * 10 + static_cast<uint32_t>(c - '0');
  }
  if (value == 0 || value > 65535) return false;
  port = static_cast<uint16_t>(value);
  return true;
}

std::string AsciiLower(std::string_view text) {
  std::string out(text);
  absl::AsciiStrToLower(&out);
  return out;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (absl::ascii_tolower(static_cast<unsigned char>(a[i])) !=
        absl::ascii_tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

bool StartsWithIgnoreCase(std::string_view text, std::string_view prefix) {
  return text.size() >= prefix.size() && EqualsIgnoreCase(text.substr(0, prefix.size()), prefix);
}

bool HostMatches(std::string_view pattern, std::string_view host) {
  if (pattern == "*") return true;
  if (pattern.starts_with("*.")) {
    const std::string_view suffix = pattern.substr(1);  // ".example.com"
    return host.size() > suffix.size() && host.ends_with(suffix);
  }
  return pattern == host;
}

std::optional<std::string> WildcardHostProblem(std::string_view host) {
  if (host == "*") return std::nullopt;
  std::string_view rest = host;
  if (rest.starts_with("*.")) rest.remove_prefix(2);
  if (rest.find('*') != std::string_view::npos) {
    return "'*' is allowed only as the whole first label, as in \"*.example.com\"";
  }
  return FqdnProblem(rest);
}

std::string ResolveShortName(std::string_view host, std::string_view ns,
                             std::string_view cluster_domain) {
  if (host.find('.') != std::string_view::npos || host == "*") return std::string(host);
  return absl::StrCat(AbslView(host), ".", AbslView(ns), ".svc.", AbslView(cluster_domain));
}

namespace {

bool IsLabelNameChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
}

std::optional<std::string> LabelNameProblem(std::string_view name, std::string_view what) {
  const absl::string_view quoted = AbslView(name);
  const absl::string_view kind = AbslView(what);
  if (name.size() > 63) return absl::StrCat(kind, " \"", quoted, "\" is longer than 63 characters");
  for (char c : name) {
    if (!IsLabelNameChar(c)) {
      return absl::StrCat(kind, " \"", quoted, "\" has invalid character '", std::string(1, c),
                          "'");
    }
  }
  if (!absl::ascii_isalnum(static_cast<unsigned char>(name.front())) ||
      !absl::ascii_isalnum(static_cast<unsigned char>(name.back()))) {
    return absl::StrCat(kind, " \"", quoted, "\" must start and end with a letter or digit");
  }
  return std::nullopt;
}

}  // namespace

std::optional<std::string> LabelKeyProblem(std::string_view key) {
  std::string_view name = key;
  if (const size_t slash = key.rfind('/'); slash != std::string_view::npos) {
    const std::string_view prefix = key.substr(0, slash);
    if (auto problem = FqdnProblem(AsciiLower(prefix)); problem || prefix != AsciiLower(prefix)) {
      return absl::StrCat("label key prefix \"", AbslView(prefix),
                          "\" is not a lowercase DNS name");
    }
    name = key.substr(slash + 1);
  }
  if (name.empty()) return absl::StrCat("label key \"", AbslView(key), "\" has an empty name");
  return LabelNameProblem(name, "label key");
}

std::optional<std::string> LabelValueProblem(std::string_view value) {
  if (value.empty()) return std::nullopt;
  return LabelNameProblem(value, "label value");
}

bool SelectorMatches(const std::map<std::string, std::string>& selector,
                     const std::map<std::string, std::string>& labels) {
  for (const auto& [key, value] : selector) {
    const auto it = labels.find(key);
    if (it == labels.end() || it->second != value) return false;
  }
  return true;
}

}  // namespace meshgate::base
