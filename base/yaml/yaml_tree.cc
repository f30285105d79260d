// libyaml events -> a Stream of immutable node trees, iteratively (no recursion,
// so a deeply nested hostile document costs memory, not the stack).
#include "base/yaml/yaml_tree.h"

#include <yaml.h>

#include <algorithm>
#include <deque>
#include <string_view>
#include <unordered_map>

namespace meshgate::yaml {

namespace {

const std::string& EmptyString() {
  static const std::string* const empty = new std::string();
  return *empty;
}

bool IsNullSpelling(std::string_view text) {
  return text.empty() || text == "~" || text == "null" || text == "Null" || text == "NULL";
}

constexpr std::string_view kNullTag = "tag:yaml.org,2002:null";

// Owns one libyaml event for the duration of a loop iteration.
struct Event {
  yaml_event_t event;
  ~Event() { yaml_event_delete(&event); }
};

struct Parser {
  yaml_parser_t parser;
  Parser() { yaml_parser_initialize(&parser); }
  ~Parser() { yaml_parser_delete(&parser); }
};

ParseError ErrorOf(const yaml_parser_t& parser) {
  ParseError error;
  const yaml_mark_t& mark = parser.problem ? parser.problem_mark : parser.context_mark;
  error.line = static_cast<int>(mark.line) + 1;
  error.column = static_cast<int>(mark.column) + 1;
  error.message = parser.problem ? parser.problem : "invalid YAML";
  if (parser.problem_value != -1 && parser.error == YAML_READER_ERROR) {
    error.message += " (byte offset " + std::to_string(parser.problem_offset) + ")";
  }
  if (parser.context != nullptr) {
    error.message += " (";
    error.message += parser.context;
    if (parser.context_mark.index != mark.index) {
      error.message += " started at " + std::to_string(parser.context_mark.line + 1) + ":" +
                       std::to_string(parser.context_mark.column + 1);
    }
    error.message += ")";
  }
  if (parser.error == YAML_MEMORY_ERROR) error.message = "out of memory";
  return error;
}

}  // namespace

struct Stream::Arena {
  std::deque<NodeData> nodes;  // stable addresses
};

Stream::Stream() : arena_(std::make_unique<Arena>()) {}
Stream::Stream(Stream&&) noexcept = default;
Stream& Stream::operator=(Stream&&) noexcept = default;
Stream::~Stream() = default;

bool Node::IsNull() const { return data_ == nullptr || data_->kind == NodeData::Kind::kNull; }
bool Node::IsScalar() const { return data_ != nullptr && data_->kind == NodeData::Kind::kScalar; }
bool Node::IsSequence() const {
  return data_ != nullptr && data_->kind == NodeData::Kind::kSequence;
}
bool Node::IsMap() const { return data_ != nullptr && data_->kind == NodeData::Kind::kMap; }
const std::string& Node::Scalar() const {
  return data_ != nullptr && data_->kind == NodeData::Kind::kScalar ? data_->scalar : EmptyString();
}
bool Node::IsQuoted() const { return data_ != nullptr && data_->quoted; }
int Node::Line() const { return data_ != nullptr ? data_->line : -1; }
int Node::Column() const { return data_ != nullptr ? data_->column : -1; }

size_t Node::size() const {
  if (IsSequence()) return data_->children.size();
  if (IsMap()) return data_->children.size() / 2;
  return 0;
}

Node Node::operator[](size_t i) const {
  if (!IsSequence() || i >= data_->children.size()) return Node();
  return Node(data_->children[i]);
}

Node::Iterator Node::begin() const { return Iterator(data_, 0); }
Node::Iterator Node::end() const { return Iterator(data_, size()); }

Node::Item Node::Iterator::operator*() const {
  Item item;
  if (node_->kind == NodeData::Kind::kMap) {
    item.first = Node(node_->children[2 * index_]);
    item.second = Node(node_->children[2 * index_ + 1]);
  } else {
    static_cast<Node&>(item) = Node(node_->children[index_]);
  }
  return item;
}

Node::Iterator& Node::Iterator::operator++() {
  ++index_;
  return *this;
}

class Builder {
 public:
  explicit Builder(Stream& stream) : stream_(stream) {}
  // With a callback, each complete document goes to it and is then freed.
  Builder(Stream& stream, const std::function<void(const Node&)>* on_document)
      : stream_(stream), on_document_(on_document) {}

  // False (with `error` set) on an alias to an unknown anchor.
  bool Add(const yaml_event_t& event, ParseError* error) {
    switch (event.type) {
      case YAML_SCALAR_EVENT: {
        const auto& s = event.data.scalar;
        NodeData& node = New(event.start_mark);
        node.scalar.assign(reinterpret_cast<const char*>(s.value), s.length);
        node.quoted = s.style != YAML_PLAIN_SCALAR_STYLE;
        const bool null_tag = s.tag != nullptr && reinterpret_cast<const char*>(s.tag) == kNullTag;
        const bool null = null_tag || (s.plain_implicit && !node.quoted && IsNullSpelling(node.scalar));
        node.kind = null ? NodeData::Kind::kNull : NodeData::Kind::kScalar;
        if (null) node.scalar.clear();
        Anchor(s.anchor, node);
        Attach(&node);
        return true;
      }
      case YAML_SEQUENCE_START_EVENT:
      case YAML_MAPPING_START_EVENT: {
        const bool map = event.type == YAML_MAPPING_START_EVENT;
        NodeData& node = New(event.start_mark);
        node.kind = map ? NodeData::Kind::kMap : NodeData::Kind::kSequence;
        Anchor(map ? event.data.mapping_start.anchor : event.data.sequence_start.anchor, node);
        if (open_.size() >= static_cast<size_t>(kMaxDepth)) {
          return Fail(event.start_mark, "nesting deeper than " + std::to_string(kMaxDepth) +
                                            " levels", error);
        }
        open_.push_back(&node);
        return true;
      }
      case YAML_SEQUENCE_END_EVENT:
      case YAML_MAPPING_END_EVENT: {
        // Attached once complete, so its expanded size is known to the parent.
        NodeData* node = open_.back();
        open_.pop_back();
        Attach(node);
        return true;
      }
      case YAML_ALIAS_EVENT: {
        const auto it = anchors_.find(reinterpret_cast<const char*>(event.data.alias.anchor));
        if (it == anchors_.end()) {
          return Fail(event.start_mark,
                      "unknown anchor '" +
                          std::string(reinterpret_cast<const char*>(event.data.alias.anchor)) +
                          "'",
                      error);
        }
        if (it->second == nullptr) {
          return Fail(event.start_mark, "alias inside its own anchored node", error);
        }
        Attach(it->second);
        return true;
      }
      case YAML_DOCUMENT_START_EVENT:
        document_ = nullptr;
        anchors_.clear();  // anchors are per document
        document_mark_ = event.start_mark;
        document_nodes_ = 0;
        return true;
      case YAML_DOCUMENT_END_EVENT:
        if (document_ == nullptr) document_ = &New(document_mark_);  // empty document: null
        if (document_->expanded > kMaxExpandedNodes &&
            document_->expanded > kMaxAliasRatio * document_nodes_) {
          return Fail(document_mark_,
                      "excessive aliasing: " + std::to_string(document_nodes_) +
                          " nodes expand to more than " + std::to_string(document_->expanded),
                      error);
        }
        if (on_document_ == nullptr) {
          stream_.documents_.push_back(Node(document_));
          return true;
        }
        (*on_document_)(Node(document_));
        document_ = nullptr;
        pending_anchors_.clear();
        anchors_.clear();
        stream_.arena_->nodes.clear();
        return true;
      default:
        return true;
    }
  }

 private:
  static bool Fail(const yaml_mark_t& mark, std::string message, ParseError* error) {
    error->line = static_cast<int>(mark.line) + 1;
    error->column = static_cast<int>(mark.column) + 1;
    error->message = std::move(message);
    return false;
  }

  NodeData& New(const yaml_mark_t& mark) {
    ++document_nodes_;
    NodeData& node = stream_.arena_->nodes.emplace_back();
    node.line = static_cast<int>(mark.line);
    node.column = static_cast<int>(mark.column);
    return node;
  }

  // A collection's anchor is usable once the collection is complete; until then
  // an alias to it would make a cycle.
  void Anchor(const yaml_char_t* anchor, const NodeData& node) {
    if (anchor == nullptr) return;
    const bool complete = node.kind == NodeData::Kind::kScalar || node.kind == NodeData::Kind::kNull;
    anchors_[reinterpret_cast<const char*>(anchor)] = complete ? &node : nullptr;
    if (!complete) pending_anchors_.emplace_back(&node, reinterpret_cast<const char*>(anchor));
  }

  void Attach(const NodeData* node) {
    for (auto it = pending_anchors_.begin(); it != pending_anchors_.end(); ++it) {
      if (it->first == node) {
        anchors_[it->second] = node;
        pending_anchors_.erase(it);
        break;
      }
    }
    if (open_.empty()) {
      document_ = node;
      return;
    }
    NodeData& parent = *open_.back();
    parent.children.push_back(node);
    parent.expanded = std::min<uint64_t>(parent.expanded + node->expanded, uint64_t{1} << 62);
  }

  Stream& stream_;
  const std::function<void(const Node&)>* on_document_ = nullptr;
  std::vector<NodeData*> open_;
  const NodeData* document_ = nullptr;
  yaml_mark_t document_mark_{};
  uint64_t document_nodes_ = 0;
  std::vector<std::pair<const NodeData*, std::string>> pending_anchors_;
  std::unordered_map<std::string, const NodeData*> anchors_;
};

namespace {

// Feeds every event of `text` to `builder`; false on the first error.
bool Run(std::string_view text, Builder& builder, ParseError* error) {
  Parser p;
  yaml_parser_set_input_string(&p.parser, reinterpret_cast<const unsigned char*>(text.data()),
                               text.size());
  for (;;) {
    Event e;
    if (!yaml_parser_parse(&p.parser, &e.event)) {
      *error = ErrorOf(p.parser);
      return false;
    }
    if (!builder.Add(e.event, error)) return false;
    if (e.event.type == YAML_STREAM_END_EVENT) return true;
  }
}

}  // namespace

std::optional<Stream> Parse(const std::string& text, ParseError* error) {
  Stream stream;
  Builder builder(stream);
  if (!Run(text, builder, error)) return std::nullopt;
  return stream;
}

bool ParseEach(std::string_view text, ParseError* error,
               const std::function<void(const Node& document)>& on_document) {
  Stream scratch;
  Builder builder(scratch, &on_document);
  return Run(text, builder, error);
}

}  // namespace meshgate::yaml
