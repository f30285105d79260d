// A read-only YAML document tree with a position on every node, built from
// libyaml's event parser. It replaces yaml-cpp on the config path: yaml-cpp 0.7
// scans about 2 MB/s, which alone put a 10,000-service mesh over the 2 s load
// target, and loops forever on a stray top-level ','. libyaml scans ~20 MB/s.
//
// Only what the config readers need: scalars (with "was it quoted"), lists,
// maps with their keys in document order (duplicates kept, so the readers can
// report them), null, aliases resolved to the anchored node.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace meshgate::yaml {

struct NodeData;

// A handle to a node of a Stream; the default handle is "undefined" (an absent
// key), which reads as null. Cheap to copy; valid while its Stream lives.
class Node {
 public:
  Node() = default;
  explicit Node(const NodeData* data) : data_(data) {}

  bool IsDefined() const { return data_ != nullptr; }
  bool IsNull() const;
  bool IsScalar() const;
  bool IsSequence() const;
  bool IsMap() const;
  // The text of a scalar ("" for anything else).
  const std::string& Scalar() const;
  // A quoted scalar is a string whatever it spells ("8080", "true").
  bool IsQuoted() const;
  // 0-based, as libyaml counts; -1 when undefined.
  int Line() const;
  int Column() const;

  // Items of a list, entries of a map, 0 otherwise.
  size_t size() const;
  // The i-th item of a list (undefined when out of range or not a list).
  Node operator[](size_t i) const;

  // Iterating a list yields its items (as Node); iterating a map yields
  // entries with .first (key) and .second (value), as yaml-cpp did.
  struct Item;
  class Iterator;
  Iterator begin() const;
  Iterator end() const;

 private:
  const NodeData* data_ = nullptr;
};

struct Node::Item : Node {
  Node first;
  Node second;
};

class Node::Iterator {
 public:
  using iterator_category = std::input_iterator_tag;
  using value_type = Item;
  using difference_type = std::ptrdiff_t;
  using pointer = void;
  using reference = Item;

  Iterator(const NodeData* node, size_t index) : node_(node), index_(index) {}
  Item operator*() const;
  Iterator& operator++();
  bool operator==(const Iterator& other) const { return index_ == other.index_; }

 private:
  const NodeData* node_;
  size_t index_;
};

struct NodeData {
  enum class Kind : uint8_t { kNull, kScalar, kSequence, kMap };
  Kind kind = Kind::kNull;
  bool quoted = false;
  int line = 0;
  int column = 0;
  std::string scalar;
  // Nodes in this subtree with aliases expanded (saturating): what a reader walking
  // it would visit.
  uint64_t expanded = 1;
  // A list's items; a map's keys and values, alternating.
  std::vector<const NodeData*> children;
};

// Every document of one YAML text. Movable; nodes stay where they are.
class Stream {
 public:
  Stream();
  Stream(Stream&&) noexcept;
  Stream& operator=(Stream&&) noexcept;
  ~Stream();

  const std::vector<Node>& documents() const { return documents_; }

 private:
  friend class Builder;
  struct Arena;
  std::unique_ptr<Arena> arena_;
  std::vector<Node> documents_;
};

// 1-based position and libyaml's words, e.g. "did not find expected ',' or ']'
// (while parsing a flow sequence started at 3:7)".
struct ParseError {
  int line = 0;
  int column = 0;
  std::string message;
};

// Hostile-input limits. libyaml's scanner is quadratic in flow nesting depth,
// and aliases can make a small document a huge tree for a reader to walk
// ("billion laughs"); Kubernetes' own YAML decoder bounds both the same way.
inline constexpr int kMaxDepth = 100;
inline constexpr uint64_t kMaxExpandedNodes = 4'000'000;  // ...unless at most
inline constexpr uint64_t kMaxAliasRatio = 10;            // this times the real nodes

// Parses every document of `text`. On a syntax error returns no stream.
std::optional<Stream> Parse(const std::string& text, ParseError* error);

// Parses `text` one document at a time: each document's tree is built, handed
// to `on_document` and freed before the next one is parsed, so a large stream
// costs one document's tree, not every document's (a 50 MB mesh file is
// ~180,000 documents; their trees together took ~10x the text). The same
// limits and errors as Parse, but on an error the documents before it have
// already been handed over: false, with `error` set.
bool ParseEach(std::string_view text, ParseError* error,
               const std::function<void(const Node& document)>& on_document);

}  // namespace meshgate::yaml
