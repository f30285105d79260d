// MeshParseCache (issue 14, part 3): a load with the cache gives exactly the
// messages and clusters of a load without it, on the first load and when one
// source changed, including a duplicate across sources and a broken source.
#include <string>

#include "config/mesh/mesh_loader.h"
#include "gtest/gtest.h"

namespace meshgate::config {
namespace {

// Istio ServiceEntry: https://istio.io/latest/docs/reference/config/networking/service-entry/
std::string Entry(const std::string& name, int port) {
  return R"({"apiVersion":"networking.istio.io/v1","kind":"ServiceEntry","metadata":{"name":")" + name +
         R"(","namespace":"ns"},"spec":{"hosts":[")" + name +
         R"(.ns.svc.cluster.local"],"location":"MESH_INTERNAL","resolution":"STATIC","ports":[{"number":80,"name":"tcp","protocol":"TCP"}],"endpoints":[{"address":"10.0.0.1","ports":{"tcp":)" +
         std::to_string(port) + "}}]}}";
}

void ExpectSame(const MeshLoadResult& cached, const MeshLoadResult& plain) {
  EXPECT_EQ(cached.errors, plain.errors);
  EXPECT_EQ(cached.warnings, plain.warnings);
  EXPECT_EQ(cached.resources_loaded, plain.resources_loaded);
  ASSERT_EQ(cached.table == nullptr, plain.table == nullptr);
  if (!plain.table) return;
  ASSERT_EQ(cached.table->clusters().size(), plain.table->clusters().size());
  for (size_t i = 0; i < plain.table->clusters().size(); ++i) {
    EXPECT_TRUE(SameContent(cached.table->clusters()[i], plain.table->clusters()[i])) << i;
  }
}

MeshSources Sources(int b_port, bool duplicate, bool broken) {
  MeshSources s;
  s.sources.push_back({"kubernetes ServiceEntry ns/a", Entry("a", 8080), "", false});
  s.sources.push_back({"kubernetes ServiceEntry ns/b", Entry("b", b_port), "", false});
  s.sources.push_back({"b.yaml", Entry("c", 8080), "", true});
  if (duplicate) s.sources.push_back({"copy.yaml", Entry("a", 9999), "", true});
  if (broken) s.sources.push_back({"kubernetes ServiceEntry ns/d", R"({"kind":"ServiceEntry","metadata":{"name":"d"},"spec":{"hosts":7}})", "", false});
  return s;
}

TEST(MeshParseCacheTest, LoadsAsWithoutItWhenOneSourceChanges) {
  MeshParseCache cache;
  for (int port : {8080, 8081, 8081, 9090}) {
    const MeshSources s = Sources(port, false, false);
    ExpectSame(LoadMeshSources(s, {}, {}, &cache), LoadMeshSources(s, {}, {}));
    EXPECT_EQ(cache.size(), 3u);
  }
}

TEST(MeshParseCacheTest, DuplicatesAndErrorsReadTheSame) {
  MeshParseCache cache;
  for (int round = 0; round < 2; ++round) {
    const MeshSources s = Sources(8080 + round, true, true);
    const MeshLoadResult plain = LoadMeshSources(s, {}, {});
    ASSERT_FALSE(plain.errors.empty());
    ExpectSame(LoadMeshSources(s, {}, {}, &cache), plain);
    EXPECT_EQ(cache.size(), 4u) << "the broken source is not held";
  }
  // The duplicate gone: the cached copy of "a" is kept again.
  ExpectSame(LoadMeshSources(Sources(8080, false, false), {}, {}, &cache), LoadMeshSources(Sources(8080, false, false), {}, {}));
  EXPECT_EQ(cache.size(), 3u);
}

}  // namespace
}  // namespace meshgate::config
