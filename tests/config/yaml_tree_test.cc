// yaml::Parse: the libyaml-backed tree the config readers walk. Positions,
// scalar styles, null spellings, anchors, duplicate keys and hostile input.
#include "base/yaml/yaml_tree.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace meshgate::yaml {
namespace {

Stream MustParse(const std::string& text) {
  ParseError error;
  std::optional<Stream> stream = Parse(text, &error);
  EXPECT_TRUE(stream.has_value()) << error.line << ":" << error.column << " " << error.message;
  return stream ? std::move(*stream) : Stream();
}

ParseError MustFail(const std::string& text) {
  ParseError error;
  EXPECT_FALSE(Parse(text, &error).has_value()) << text;
  return error;
}

Node Value(const Node& map, const std::string& key) {
  for (const auto& entry : map) {
    if (entry.first.Scalar() == key) return entry.second;
  }
  return Node();
}

TEST(YamlTreeTest, MapsListsAndScalarsWithZeroBasedPositions) {
  const Stream stream = MustParse("a: 1\nlist:\n- x\n-   y\nflow: {k: v}\n");
  ASSERT_EQ(stream.documents().size(), 1u);
  const Node root = stream.documents()[0];
  ASSERT_TRUE(root.IsMap());
  EXPECT_EQ(root.size(), 3u);
  EXPECT_EQ(Value(root, "a").Scalar(), "1");
  EXPECT_EQ(Value(root, "a").Line(), 0);
  EXPECT_EQ(Value(root, "a").Column(), 3);
  const Node list = Value(root, "list");
  ASSERT_TRUE(list.IsSequence());
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[1].Scalar(), "y");
  EXPECT_EQ(list[1].Line(), 3);
  EXPECT_EQ(list[1].Column(), 4);
  EXPECT_FALSE(list[2].IsDefined());  // out of range: undefined, reads as null
  EXPECT_TRUE(list[2].IsNull());
  std::vector<std::string> items;
  for (const Node& item : list) items.push_back(item.Scalar());
  EXPECT_EQ(items, (std::vector<std::string>{"x", "y"}));
  const Node flow = Value(root, "flow");
  ASSERT_TRUE(flow.IsMap());
  EXPECT_EQ(flow.Line(), 4);
  EXPECT_EQ(flow.Column(), 6);
}

TEST(YamlTreeTest, NullSpellingsAreNullOnlyWhenPlain) {
  const Stream stream = MustParse(
      "a:\nb: ~\nc: null\nd: NULL\ne: ''\nf: 'null'\ng: !!null x\nh: nil\n");
  const Node root = stream.documents()[0];
  for (const char* key : {"a", "b", "c", "d", "g"}) {
    EXPECT_TRUE(Value(root, key).IsNull()) << key;
    EXPECT_TRUE(Value(root, key).IsDefined()) << key;
    EXPECT_FALSE(Value(root, key).IsScalar()) << key;
  }
  for (const char* key : {"e", "f", "h"}) EXPECT_TRUE(Value(root, key).IsScalar()) << key;
  EXPECT_EQ(Value(root, "f").Scalar(), "null");
}

TEST(YamlTreeTest, QuotedAndBlockScalarsAreMarkedQuoted) {
  const Stream stream = MustParse("p: 8080\ns: '8080'\nd: \"8080\"\nl: |\n  8080\n");
  const Node root = stream.documents()[0];
  EXPECT_FALSE(Value(root, "p").IsQuoted());
  EXPECT_TRUE(Value(root, "s").IsQuoted());
  EXPECT_TRUE(Value(root, "d").IsQuoted());
  EXPECT_TRUE(Value(root, "l").IsQuoted());
  EXPECT_EQ(Value(root, "l").Scalar(), "8080\n");
}

TEST(YamlTreeTest, DuplicateKeysAreKeptForTheReadersToReport) {
  const Stream stream = MustParse("k: 1\nk: 2\n");
  const Node root = stream.documents()[0];
  ASSERT_EQ(root.size(), 2u);
  std::vector<std::string> values;
  for (const auto& entry : root) values.push_back(entry.second.Scalar());
  EXPECT_EQ(values, (std::vector<std::string>{"1", "2"}));
}

TEST(YamlTreeTest, AliasesResolveToTheAnchoredNode) {
  const Stream stream = MustParse("base: &labels {app: web}\nother: *labels\n");
  const Node other = Value(stream.documents()[0], "other");
  ASSERT_TRUE(other.IsMap());
  EXPECT_EQ(Value(other, "app").Scalar(), "web");
  EXPECT_EQ(other.Line(), 0);  // the anchored node's own position
}

TEST(YamlTreeTest, UnknownAnchorIsAnErrorWithPosition) {
  const ParseError error = MustFail("a: 1\nb: *nowhere\n");
  EXPECT_EQ(error.line, 2);
  EXPECT_EQ(error.column, 4);
  EXPECT_EQ(error.message, "unknown anchor 'nowhere'");
}

TEST(YamlTreeTest, AnchorsDoNotCrossDocuments) {
  const ParseError error = MustFail("a: &x 1\n---\nb: *x\n");
  EXPECT_EQ(error.line, 3);
  EXPECT_EQ(error.message, "unknown anchor 'x'");
}

TEST(YamlTreeTest, DocumentsIncludingEmptyOnes) {
  const Stream stream = MustParse("---\na: 1\n---\n---\n- 1\n");
  ASSERT_EQ(stream.documents().size(), 3u);
  EXPECT_TRUE(stream.documents()[0].IsMap());
  EXPECT_TRUE(stream.documents()[1].IsNull());
  EXPECT_TRUE(stream.documents()[1].IsDefined());
  EXPECT_EQ(stream.documents()[1].Line(), 3);
  EXPECT_TRUE(stream.documents()[2].IsSequence());
  EXPECT_TRUE(MustParse("").documents().empty());
  EXPECT_EQ(MustParse("# only a comment\n").documents().size(), 0u);
}

TEST(YamlTreeTest, SyntaxErrorsHaveOneBasedPositionAndContext) {
  const ParseError error = MustFail("a: [1, 2\nb: 3\n");
  EXPECT_EQ(error.line, 2);
  EXPECT_EQ(error.column, 2);
  EXPECT_EQ(error.message,
            "did not find expected ',' or ']' (while parsing a flow sequence started at 1:4)");
}

TEST(YamlTreeTest, InvalidUtf8IsAReaderError) {
  const ParseError error = MustFail("a: \xff\xfe\n");
  EXPECT_EQ(error.line, 1);
  EXPECT_NE(error.message.find("invalid"), std::string::npos) << error.message;
}

TEST(YamlTreeTest, NestingIsCappedBecauseLibyamlIsQuadraticInDepth) {
  // 100 levels parse; a hostile 200k-level document is refused at level 101
  // instead of keeping libyaml's scanner busy for minutes.
  const std::string ok = std::string(kMaxDepth, '[') + std::string(kMaxDepth, ']');
  const Stream stream = MustParse(ok);
  Node node = stream.documents()[0];
  int depth = 1;
  while (node.IsSequence() && node.size() == 1) {
    node = node[0];
    ++depth;
  }
  EXPECT_EQ(depth, kMaxDepth);
  const ParseError error = MustFail(std::string(200000, '[') + std::string(200000, ']'));
  EXPECT_EQ(error.line, 1);
  EXPECT_EQ(error.column, kMaxDepth + 1);
  EXPECT_EQ(error.message, "nesting deeper than 100 levels");
}

TEST(YamlTreeTest, ExcessiveAliasingIsRefused) {
  // Each level doubles ten times over: 10^12 nodes for a reader to walk.
  std::string text = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n";
  for (int i = 1; i <= 12; ++i) {
    text += "a" + std::to_string(i) + ": &a" + std::to_string(i) + " [";
    for (int j = 0; j < 10; ++j) text += (j ? ", *a" : "*a") + std::to_string(i - 1);
    text += "]\n";
  }
  const ParseError error = MustFail(text);
  EXPECT_EQ(error.line, 1);
  EXPECT_EQ(error.message.rfind("excessive aliasing: ", 0), 0u) << error.message;
  // A few aliases, as people use them for shared labels, are fine.
  EXPECT_EQ(MustParse("l: &l {app: a}\nm: *l\nn: *l\n").documents().size(), 1u);
}

TEST(YamlTreeTest, AliasToAnEnclosingNodeIsRefused) {
  const ParseError error = MustFail("a: &loop [1, *loop]\n");
  EXPECT_EQ(error.line, 1);
  EXPECT_EQ(error.column, 14);
  EXPECT_EQ(error.message, "alias inside its own anchored node");
}

TEST(YamlTreeTest, StreamsMoveWithoutInvalidatingNodes) {
  Stream first = MustParse("a: {b: c}\n");
  const Node root = first.documents()[0];
  Stream second = std::move(first);
  EXPECT_EQ(Value(Value(root, "a"), "b").Scalar(), "c");
  EXPECT_EQ(second.documents()[0].size(), 1u);
}

}  // namespace
}  // namespace meshgate::yaml
