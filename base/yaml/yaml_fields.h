// Typed reads of YAML nodes for the config loaders. Problems are reported as
// "file:line:column: subject: field.path: what is wrong" and collected, never thrown.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/yaml/yaml_tree.h"

namespace meshgate::yaml {

// 1-based line and column of a node; zeros for an undefined node.
struct Position {
  int line = 0;
  int column = 0;
  bool known() const { return line > 0; }
};
Position PositionOf(const yaml::Node& node);

// "file:line:column", the prefix of every located message.
std::string Located(std::string_view file, Position at);

// "a map", "a list", "a string", "null": for "must be X, got Y".
std::string_view TypeName(const yaml::Node& node);

inline bool IsMissing(const yaml::Node& node) { return !node.IsDefined() || node.IsNull(); }

// Field paths as users write them: "spec.ports[0].name".
std::string FieldPath(std::string_view parent, std::string_view key);
std::string IndexPath(std::string_view parent, size_t index);

// Collects errors and warnings with a common prefix. The subject names the
// resource being read ("ServiceEntry foo/httpbin"); its position stands in for
// nodes without one. Validation order isn't file order, so messages reach the
// output vectors sorted by position when the sink goes out of scope.
class ErrorSink {
 public:
  // Istio adds fields over time, so its resources warn about unknown fields;
  // meshgate's own config rejects them (a typo there is a silent misconfiguration).
  enum class UnknownFields { kError, kWarning };

  // Without a warnings vector, warnings are reported as errors.
  ErrorSink(std::string file, std::vector<std::string>* errors,
            std::vector<std::string>* warnings = nullptr,
            UnknownFields unknown_fields = UnknownFields::kError)
      : file_(std::move(file)),
        errors_(errors),
        warnings_(warnings),
        unknown_fields_(unknown_fields) {}
  ~ErrorSink();
  ErrorSink(const ErrorSink&) = delete;
  ErrorSink& operator=(const ErrorSink&) = delete;

  // Off for sources whose text has no lines a person wrote (objects from the
  // Kubernetes API): messages then name the subject ("Kind ns/name") and the
  // field path, without file:line:column.
  void set_positions(bool on) { positions_ = on; }
  void SetSubject(std::string subject, Position at) {
    subject_ = std::move(subject);
    subject_at_ = at;
  }
  void Add(const yaml::Node& at, std::string_view field, std::string_view message);
  void AddAt(Position at, std::string_view field, std::string_view message);
  void Warn(const yaml::Node& at, std::string_view field, std::string_view message);
  void WarnAt(Position at, std::string_view field, std::string_view message);
  std::string Format(Position at, std::string_view field, std::string_view message) const;

  // Errors added so far (warnings don't count).
  size_t count() const { return errors_pending_.size(); }
  UnknownFields unknown_fields() const { return unknown_fields_; }

 private:
  using Pending = std::vector<std::pair<Position, std::string>>;
  Position OrSubject(Position at) const { return at.known() ? at : subject_at_; }
  static void Flush(Pending& pending, std::vector<std::string>* out);

  std::string file_;
  std::string subject_;
  Position subject_at_;
  bool positions_ = true;
  std::vector<std::string>* errors_;
  std::vector<std::string>* warnings_;
  UnknownFields unknown_fields_;
  Pending errors_pending_;
  Pending warnings_pending_;
};

// A map entry with its key node, so "required" and "null" point at the right line.
struct MapEntry {
  yaml::Node key;
  yaml::Node value;
  bool found = false;
  bool present() const { return found; }
};
MapEntry Lookup(const yaml::Node& map, std::string_view key);

// Reports non-scalar keys, duplicate keys and keys not in `known` (as errors or
// warnings, as the sink says). False if any error was reported.
bool CheckFields(const yaml::Node& map, std::string_view path,
                 std::initializer_list<std::string_view> known, ErrorSink& sink);
// Reports non-scalar and duplicate keys only (for free-form maps such as labels).
bool CheckKeys(const yaml::Node& map, std::string_view path, ErrorSink& sink);

bool ExpectMap(const yaml::Node& node, std::string_view path, ErrorSink& sink);
bool ExpectList(const yaml::Node& node, std::string_view path, ErrorSink& sink);

// The common shape of a list of objects: reports `list` if it is no list and
// each item that is no map; calls fn(item, item_path, index) for the maps.
// False when `list` is no list.
template <typename Fn>
bool ForEachMap(const yaml::Node& list, std::string_view path, ErrorSink& sink, Fn&& fn) {
  if (!ExpectList(list, path, sink)) return false;
  for (size_t i = 0; i < list.size(); ++i) {
    const yaml::Node node = list[i];
    const std::string item = IndexPath(path, i);
    if (ExpectMap(node, item, sink)) fn(node, item, i);
  }
  return true;
}

// Reports "required" at the key (or at `parent` when the key is absent).
bool Require(const MapEntry& entry, const yaml::Node& parent, std::string_view path,
             ErrorSink& sink);

// Scalars of any style read as text; maps, lists and null are errors.
std::optional<std::string> ReadString(const yaml::Node& node, std::string_view path,
                                      ErrorSink& sink);
// Plain (unquoted) decimal integers in [min, max]: what the Kubernetes API accepts.
std::optional<int64_t> ReadInt(const yaml::Node& node, std::string_view path, int64_t min,
                               int64_t max, ErrorSink& sink);
// A list of strings (e.g. exportTo); type errors only.
bool CheckStringList(const yaml::Node& node, std::string_view path, ErrorSink& sink);
// true/false (YAML 1.2 core schema spellings, as Kubernetes reads them).
std::optional<bool> ReadBool(const yaml::Node& node, std::string_view path, ErrorSink& sink);
// A string-to-string map such as labels; type errors only.
std::optional<std::map<std::string, std::string>> ReadStringMap(const yaml::Node& node,
                                                                std::string_view path,
                                                                ErrorSink& sink);

// A list of strings: reports `list` if it is no list and each item that is
// no string; calls fn(item, item_path, text) for the strings.
template <typename Fn>
bool ForEachString(const yaml::Node& list, std::string_view path, ErrorSink& sink, Fn&& fn) {
  if (!ExpectList(list, path, sink)) return false;
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string item = IndexPath(path, i);
    if (auto text = ReadString(list[i], item, sink)) fn(list[i], item, *text);
  }
  return true;
}

// Calls read(value) when `key` is present and not null.
template <typename F>
void IfPresent(const yaml::Node& map, std::string_view key, F read) {
  const MapEntry entry = Lookup(map, key);
  if (entry.present() && !entry.value.IsNull()) read(entry.value);
}

}  // namespace meshgate::yaml
