// Downward API labels: key="go-quoted value" lines.
#include "config/settings/pod_info.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sys/stat.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/names.h"

namespace meshgate::config {

namespace {

constexpr size_t kMaxPodInfoBytes = 1 << 20;

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

void AppendUtf8(uint32_t cp, std::string& out) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// One escape after the backslash at quoted[i]; advances i past it.
bool Unescape(std::string_view quoted, size_t& i, std::string& out) {
  if (++i >= quoted.size()) return false;
  const char c = quoted[i++];
  static constexpr std::string_view kSimple = "abfnrtv\\\"'";
  static constexpr std::string_view kValues = "\a\b\f\n\r\t\v\\\"'";
  if (const size_t k = kSimple.find(c); k != std::string_view::npos) {
    out += kValues[k];
    return true;
  }
  const int digits = c == 'x' ? 2 : c == 'u' ? 4 : c == 'U' ? 8 : 0;
  if (digits == 0) {
    if (c < '0' || c > '7' || i + 2 > quoted.size()) return false;  // \ooo
    uint32_t v = static_cast<uint32_t>(c - '0');
    for (int k = 0; k < 2; ++k, ++i) {
      if (quoted[i] < '0' || quoted[i] > '7') return false;
      v = v * 8 + static_cast<uint32_t>(quoted[i] - '0');
    }
    if (v > 255) return false;
    out += static_cast<char>(v);
    return true;
  }
  if (i + digits > quoted.size()) return false;
  uint32_t v = 0;
  for (int k = 0; k < digits; ++k, ++i) {
    const int h = HexValue(quoted[i]);
    if (h < 0) return false;
    v = v * 16 + static_cast<uint32_t>(h);
  }
  if (c == 'x') {
    out += static_cast<char>(v);
  } else {
    if (v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return false;
    AppendUtf8(v, out);
  }
  return true;
}

// `"..."` as Go's %q writes it; false when it is not exactly one quoted string.
bool UnquoteGo(std::string_view quoted, std::string& out) {
  if (quoted.size() < 2 || quoted.front() != '"' || quoted.back() != '"') return false;
  quoted = quoted.substr(1, quoted.size() - 2);
  for (size_t i = 0; i < quoted.size();) {
    if (quoted[i] == '"') return false;
    if (quoted[i] != '\\') {
      out += quoted[i++];
      continue;
    }
    if (!Unescape(quoted, i, out)) return false;
  }
  return true;
}

}  // namespace

absl::StatusOr<std::map<std::string, std::string>> ParsePodLabels(std::string_view text,
                                                                  std::string_view name) {
  std::map<std::string, std::string> labels;
  size_t line_number = 0;
  for (absl::string_view line : absl::StrSplit(absl::string_view(text.data(), text.size()), '\n')) {
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;
    const auto where = [&] { return absl::StrCat(absl::string_view(name.data(), name.size()), ":", line_number, ": "); };
    const size_t eq = line.find('=');
    if (eq == absl::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat(where(), "expected key=\"value\""));
    }
    const std::string key(line.substr(0, eq));
    if (auto problem = base::LabelKeyProblem(key)) {
      return absl::InvalidArgumentError(absl::StrCat(where(), "label key \"", key, "\": ", *problem));
    }
    std::string value;
    if (!UnquoteGo(std::string_view(line.data() + eq + 1, line.size() - eq - 1), value)) {
      return absl::InvalidArgumentError(
          absl::StrCat(where(), "the value of \"", key, "\" is not one double-quoted string"));
    }
    labels[key] = std::move(value);
  }
  return labels;
}

absl::StatusOr<std::map<std::string, std::string>> LoadPodLabels(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    return absl::NotFoundError(absl::StrCat(path, ": ", std::strerror(errno)));
  }
  if (!S_ISREG(st.st_mode)) return absl::InvalidArgumentError(absl::StrCat(path, ": not a regular file"));
  if (static_cast<size_t>(st.st_size) > kMaxPodInfoBytes) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": larger than 1 MiB"));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in.is_open()) return absl::NotFoundError(absl::StrCat(path, ": ", std::strerror(errno)));
  std::string text(static_cast<size_t>(st.st_size), '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  if (in.bad()) return absl::InternalError(absl::StrCat(path, ": read failed"));
  text.resize(static_cast<size_t>(in.gcount()));
  return ParsePodLabels(text, path);
}

}  // namespace meshgate::config
