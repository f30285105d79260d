// Syntax checks for names and addresses used across config/.
#include "config/names.h"

#include <arpa/inet.h>  // inet_pton/inet_ntop: text conversions only, no sockets

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace meshgate::config::internal {

namespace {

bool IsLabelChar(char c) { return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-'; }

std::optional<std::string> LabelProblem(std::string_view label) {
  if (label.empty()) return "empty label";
  if (label.size() > 63) return absl::StrCat("label \"", label, "\" is longer than 63 characters");
  for (char c : label) {
    if (!IsLabelChar(c)) return absl::StrCat("label \"", label, "\" has invalid character '", std::string(1, c), "'");
  }
  if (label.front() == '-' || label.back() == '-') {
    return absl::StrCat("label \"", label, "\" starts or ends with '-'");
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
  for (std::string_view label : absl::StrSplit(host, '.')) {
    if (auto problem = LabelProblem(label)) return problem;
  }
  return std::nullopt;
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
  if (!absl::EndsWithIgnoreCase(host, suffix)) return false;
  return suffix.front() == '.' || host[host.size() - suffix.size() - 1] == '.';
}

std::string AsciiLower(std::string_view text) { return absl::AsciiStrToLower(text); }

}  // namespace meshgate::config::internal
