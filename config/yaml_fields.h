// Typed reads of yaml-cpp nodes for the config loaders. Problems are reported as
// "file:line: subject: field.path: what is wrong" and collected, never thrown.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace meshgate::config::internal {

// YAML::LoadAll, minus a yaml-cpp 0.7 bug: a stray top-level ',' makes it loop
// forever appending null documents (jbeder/yaml-cpp#1040, fixed upstream by #1319).
// Throws YAML::ParserException for that case as for any syntax error.
std::vector<YAML::Node> LoadAllDocuments(const std::string& text);

// 1-based line of a node; 0 when yaml-cpp has no position for it.
int LineOf(const YAML::Node& node);

// "a map", "a list", "a string", "null": for "must be X, got Y".
std::string_view TypeName(const YAML::Node& node);

inline bool IsMissing(const YAML::Node& node) { return !node.IsDefined() || node.IsNull(); }

// Field paths as users write them: "spec.ports[0].name".
std::string FieldPath(std::string_view parent, std::string_view key);
std::string IndexPath(std::string_view parent, size_t index);

// Collects errors with a common prefix. The subject names the resource being read
// ("ServiceEntry foo/httpbin"); its line stands in for nodes without a position.
// Validation order isn't file order, so errors reach `errors` sorted by line when
// the sink goes out of scope.
class ErrorSink {
 public:
  ErrorSink(std::string file, std::vector<std::string>* errors)
      : file_(std::move(file)), errors_(errors) {}
  ~ErrorSink();
  ErrorSink(const ErrorSink&) = delete;
  ErrorSink& operator=(const ErrorSink&) = delete;

  void SetSubject(std::string subject, int line) {
    subject_ = std::move(subject);
    subject_line_ = line;
  }
  void Add(const YAML::Node& at, std::string_view field, std::string_view message);
  void AddAtLine(int line, std::string_view field, std::string_view message);
  // Formats like an error, for warnings that share the prefix.
  std::string Format(int line, std::string_view field, std::string_view message) const;

  size_t count() const { return pending_.size(); }

 private:
  int LineOrSubject(int line) const { return line > 0 ? line : subject_line_; }

  std::string file_;
  std::string subject_;
  int subject_line_ = 0;
  std::vector<std::string>* errors_;
  std::vector<std::pair<int, std::string>> pending_;
};

// A map entry with its key node, so "required" and "null" point at the right line.
struct MapEntry {
  YAML::Node key;
  YAML::Node value;
  bool found = false;
  bool present() const { return found; }
};
MapEntry Lookup(const YAML::Node& map, std::string_view key);

// Reports non-scalar keys, duplicate keys and keys not in `known`. False if any.
bool CheckFields(const YAML::Node& map, std::string_view path,
                 std::initializer_list<std::string_view> known, ErrorSink& sink);
// Reports non-scalar and duplicate keys only (for free-form maps such as labels).
bool CheckKeys(const YAML::Node& map, std::string_view path, ErrorSink& sink);

bool ExpectMap(const YAML::Node& node, std::string_view path, ErrorSink& sink);
bool ExpectList(const YAML::Node& node, std::string_view path, ErrorSink& sink);

// Reports "required" at the key (or at `parent` when the key is absent).
bool Require(const MapEntry& entry, const YAML::Node& parent, std::string_view path,
             ErrorSink& sink);

// Scalars of any style read as text; maps, lists and null are errors.
std::optional<std::string> ReadString(const YAML::Node& node, std::string_view path,
                                      ErrorSink& sink);
// Plain (unquoted) decimal integers in [min, max]: what the Kubernetes API accepts.
std::optional<int64_t> ReadInt(const YAML::Node& node, std::string_view path, int64_t min,
                               int64_t max, ErrorSink& sink);
// A list of strings (e.g. exportTo); type errors only.
bool CheckStringList(const YAML::Node& node, std::string_view path, ErrorSink& sink);

}  // namespace meshgate::config::internal
