// Typed YAML reads that collect "file:line:column: subject: field: problem" errors.
#include "base/yaml/yaml_fields.h"

#include <algorithm>
#include <limits>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "base/names.h"

namespace meshgate::yaml {

Position PositionOf(const yaml::Node& node) {
  if (!node.IsDefined()) return {};
  return {node.Line() + 1, node.Column() + 1};
}

std::string Located(std::string_view file, Position at) {
  return absl::StrCat(base::AbslView(file), ":", at.line, ":", at.column);
}

std::string_view TypeName(const yaml::Node& node) {
  if (!node.IsDefined() || node.IsNull()) return "null";
  if (node.IsMap()) return "a map";
  if (node.IsSequence()) return "a list";
  return "a string";
}

std::string FieldPath(std::string_view parent, std::string_view key) {
  if (parent.empty()) return std::string(key);
  return absl::StrCat(base::AbslView(parent), ".", base::AbslView(key));
}

std::string IndexPath(std::string_view parent, size_t index) {
  return absl::StrCat(base::AbslView(parent), "[", index, "]");
}

ErrorSink::~ErrorSink() {
  Flush(errors_pending_, errors_);
  Flush(warnings_pending_, warnings_ != nullptr ? warnings_ : errors_);
}

void ErrorSink::Flush(Pending& pending, std::vector<std::string>* out) {
  std::stable_sort(pending.begin(), pending.end(), [](const auto& a, const auto& b) {
    return std::tie(a.first.line, a.first.column) < std::tie(b.first.line, b.first.column);
  });
  for (auto& [at, text] : pending) out->push_back(std::move(text));
}

std::string ErrorSink::Format(Position at, std::string_view field, std::string_view message) const {
  std::string out;
  if (positions_) {
    out = absl::StrCat(Located(file_, OrSubject(at)), ": ");
  } else if (subject_.empty()) {
    out = absl::StrCat(base::AbslView(file_), ": ");
  }
  if (!subject_.empty()) absl::StrAppend(&out, subject_, ": ");
  if (!field.empty()) absl::StrAppend(&out, base::AbslView(field), ": ");
  absl::StrAppend(&out, base::AbslView(message));
  return out;
}

void ErrorSink::Add(const yaml::Node& at, std::string_view field, std::string_view message) {
  AddAt(PositionOf(at), field, message);
}

void ErrorSink::AddAt(Position at, std::string_view field, std::string_view message) {
  errors_pending_.emplace_back(OrSubject(at), Format(at, field, message));
}

void ErrorSink::Warn(const yaml::Node& at, std::string_view field, std::string_view message) {
  WarnAt(PositionOf(at), field, message);
}

void ErrorSink::WarnAt(Position at, std::string_view field, std::string_view message) {
  if (warnings_ == nullptr) return AddAt(at, field, message);
  warnings_pending_.emplace_back(OrSubject(at), Format(at, field, message));
}

MapEntry Lookup(const yaml::Node& map, std::string_view key) {
  if (!map.IsMap()) return {};
  for (const auto& pair : map) {
    if (pair.first.IsScalar() && pair.first.Scalar() == key) return {pair.first, pair.second, true};
  }
  return {};
}

namespace {

bool CheckMapKeys(const yaml::Node& map, std::string_view path,
                  const std::initializer_list<std::string_view>* known, ErrorSink& sink) {
  bool ok = true;
  // Views into the document's own scalars; maps are small, so a scan beats hashing.
  std::vector<std::string_view> seen;
  for (const auto& pair : map) {
    const yaml::Node& key = pair.first;
    if (!key.IsScalar()) {
      sink.Add(key, path, absl::StrCat("keys must be strings, got ", base::AbslView(TypeName(key))));
      ok = false;
      continue;
    }
    const std::string& name = key.Scalar();
    if (std::find(seen.begin(), seen.end(), name) != seen.end()) {
      sink.Add(key, FieldPath(path, name), "duplicate key");
      ok = false;
      continue;
    }
    seen.push_back(name);
    if (known == nullptr) continue;
    bool is_known = false;
    for (std::string_view k : *known) is_known = is_known || k == name;
    if (is_known) continue;
    std::string expected;
    for (std::string_view k : *known) {
      absl::StrAppend(&expected, expected.empty() ? "" : ", ", base::AbslView(k));
    }
    if (sink.unknown_fields() == ErrorSink::UnknownFields::kWarning) {
      sink.Warn(key, FieldPath(path, name),
                absl::StrCat("unknown field, ignored (known: ", expected, ")"));
    } else {
      sink.Add(key, FieldPath(path, name),
               absl::StrCat("unknown field (expected one of: ", expected, ")"));
      ok = false;
    }
  }
  return ok;
}

}  // namespace

bool CheckFields(const yaml::Node& map, std::string_view path,
                 std::initializer_list<std::string_view> known, ErrorSink& sink) {
  return CheckMapKeys(map, path, &known, sink);
}

bool CheckKeys(const yaml::Node& map, std::string_view path, ErrorSink& sink) {
  return CheckMapKeys(map, path, nullptr, sink);
}

bool ExpectMap(const yaml::Node& node, std::string_view path, ErrorSink& sink) {
  if (node.IsMap()) return true;
  sink.Add(node, path, absl::StrCat("must be a map, got ", base::AbslView(TypeName(node))));
  return false;
}

bool ExpectList(const yaml::Node& node, std::string_view path, ErrorSink& sink) {
  if (node.IsSequence()) return true;
  sink.Add(node, path, absl::StrCat("must be a list, got ", base::AbslView(TypeName(node))));
  return false;
}

bool Require(const MapEntry& entry, const yaml::Node& parent, std::string_view path,
             ErrorSink& sink) {
  if (!entry.present()) {
    sink.Add(parent, path, "required");
    return false;
  }
  if (entry.value.IsNull()) {
    sink.Add(entry.key, path, "required (is null)");
    return false;
  }
  return true;
}

std::optional<std::string> ReadString(const yaml::Node& node, std::string_view path,
                                      ErrorSink& sink) {
  if (node.IsScalar()) return node.Scalar();
  sink.Add(node, path, absl::StrCat("must be a string, got ", base::AbslView(TypeName(node))));
  return std::nullopt;
}

std::optional<int64_t> ReadInt(const yaml::Node& node, std::string_view path, int64_t min,
                               int64_t max, ErrorSink& sink) {
  if (!node.IsScalar()) {
    sink.Add(node, path, absl::StrCat("must be an integer, got ", base::AbslView(TypeName(node))));
    return std::nullopt;
  }
  const std::string& text = node.Scalar();
  if (node.IsQuoted()) {  // quoted: a string in Kubernetes' eyes
    sink.Add(node, path, absl::StrCat("must be an integer, got the string \"", text, "\""));
    return std::nullopt;
  }
  std::string_view digits = text;
  const bool negative = !digits.empty() && digits.front() == '-';
  if (negative) digits.remove_prefix(1);
  bool all_digits = !digits.empty();
  for (char c : digits) all_digits = all_digits && c >= '0' && c <= '9';
  if (!all_digits) {
    sink.Add(node, path, absl::StrCat("must be an integer, got \"", text, "\""));
    return std::nullopt;
  }
  // 18 digits always fit in int64_t; longer is out of any range we accept.
  int64_t value = 0;
  const bool fits = digits.size() <= 18;
  if (fits) {
    for (char c : digits) value = value * 10 + (c - '0');
    if (negative) value = -value;
  }
  if (!fits || value < min || value > max) {
    sink.Add(node, path, absl::StrCat("must be ", min, "..", max, ", got ", text));
    return std::nullopt;
  }
  return value;
}

bool CheckStringList(const yaml::Node& node, std::string_view path, ErrorSink& sink) {
  if (!ExpectList(node, path, sink)) return false;
  bool ok = true;
  for (size_t i = 0; i < node.size(); ++i) {
    ok = ReadString(node[i], IndexPath(path, i), sink).has_value() && ok;
  }
  return ok;
}

std::optional<bool> ReadBool(const yaml::Node& node, std::string_view path, ErrorSink& sink) {
  if (node.IsScalar() && !node.IsQuoted()) {
    const std::string& text = node.Scalar();
    if (text == "true" || text == "True" || text == "TRUE") return true;
    if (text == "false" || text == "False" || text == "FALSE") return false;
  }
  if (node.IsScalar()) {
    sink.Add(node, path, absl::StrCat("must be true or false, got \"", node.Scalar(), "\""));
  } else {
    sink.Add(node, path, absl::StrCat("must be true or false, got ", base::AbslView(TypeName(node))));
  }
  return std::nullopt;
}

std::optional<std::map<std::string, std::string>> ReadStringMap(const yaml::Node& node,
                                                                std::string_view path,
                                                                ErrorSink& sink) {
  if (!ExpectMap(node, path, sink) || !CheckKeys(node, path, sink)) return std::nullopt;
  std::map<std::string, std::string> out;
  bool ok = true;
  for (const auto& pair : node) {
    const std::string& key = pair.first.Scalar();
    if (auto value = ReadString(pair.second, FieldPath(path, key), sink)) {
      out[key] = *value;
    } else {
      ok = false;
    }
  }
  if (!ok) return std::nullopt;
  return out;
}

}  // namespace meshgate::yaml
