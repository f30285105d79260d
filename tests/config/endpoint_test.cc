// The compact endpoint (config/model/endpoint.h): shared label sets, packed
// details, and that every field reads back exactly as set.
#include "config/model/endpoint.h"

#include <gtest/gtest.h>

#include <map>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace meshgate::config {
namespace {

TEST(LabelSetTest, ReadsLikeTheSortedMapItReplaces) {
  const std::map<std::string, std::string> map = {{"version", "v1"}, {"app", "reviews"}, {"zone", ""}};
  const LabelSet labels = map;
  ASSERT_EQ(labels.size(), 3u);
  std::vector<std::string> keys;
  for (const auto& [key, value] : labels) keys.push_back(key);
  EXPECT_EQ(keys, (std::vector<std::string>{"app", "version", "zone"}));
  EXPECT_EQ(labels.at("app"), "reviews");
  EXPECT_EQ(labels.find("zone")->second, "");
  EXPECT_EQ(labels.find("missing"), labels.end());
  EXPECT_THROW(labels.at("missing"), std::out_of_range);
  EXPECT_EQ(labels.ToMap(), map);
  EXPECT_TRUE(LabelSet().empty());
  EXPECT_EQ(LabelSet().begin(), LabelSet().end());
}

TEST(LabelSetTest, InitializerListKeepsTheFirstValueOfARepeatedKeyAsAMapWould) {
  const LabelSet labels = {{"b", "1"}, {"a", "2"}, {"b", "3"}};
  EXPECT_EQ(labels.ToMap(), (std::map<std::string, std::string>{{"a", "2"}, {"b", "1"}}));
}

TEST(LabelSetTest, SelectorMatchesEveryLabelByValue) {
  const LabelSet labels = {{"app", "reviews"}, {"version", "v2"}};
  EXPECT_TRUE(labels.Matches({}));
  EXPECT_TRUE(labels.Matches({{"app", "reviews"}}));
  EXPECT_TRUE(labels.Matches({{"app", "reviews"}, {"version", "v2"}}));
  EXPECT_FALSE(labels.Matches({{"app", "reviews"}, {"version", "v1"}}));
  EXPECT_FALSE(labels.Matches({{"tier", "web"}}));
}

TEST(LabelSetTest, EqualityIsByContentAndInternedSetsShareOneObject) {
  LabelInterner interner;
  const LabelSet a = interner.Intern(std::map<std::string, std::string>{{"version", "v1"}});
  const LabelSet b = interner.Intern(std::map<std::string, std::string>{{"version", "v1"}});
  const LabelSet c = interner.Intern(std::map<std::string, std::string>{{"version", "v2"}});
  // "a\0" + "b" must not collide with "a" + "\0b": keys and values are NUL-separated.
  const LabelSet d = interner.Intern(std::map<std::string, std::string>{{"versionv1", ""}});
  EXPECT_TRUE(a.SharesWith(b));
  EXPECT_FALSE(a.SharesWith(c));
  EXPECT_FALSE(a == d);
  EXPECT_EQ(a, LabelSet({{"version", "v1"}}));  // a separate object, the same labels
  EXPECT_NE(a, c);
  EXPECT_TRUE(interner.Intern(LabelSet({{"version", "v1"}})).SharesWith(a));
}

TEST(EndpointDetailsTest, EveryFieldReadsBackAsSetAndEmptyOnesCostNothing) {
  EndpointDetails::Values values{};
  for (size_t i = 0; i < EndpointDetails::kFieldCount; ++i) {
    values[i] = i % 3 == 0 ? std::string_view() : std::string_view(i % 2 ? "odd-field" : "even");
  }
  const EndpointDetails details(values);
  EXPECT_EQ(details.All(), values);
  EXPECT_EQ(EndpointDetails(EndpointDetails::Values{}), EndpointDetails());
  const EndpointDetails changed = details.With(EndpointDetails::kLocality, "eu/zone-a");
  EXPECT_EQ(changed.Get(EndpointDetails::kLocality), "eu/zone-a");
  EXPECT_EQ(details.Get(EndpointDetails::kLocality), values[EndpointDetails::kLocality]);  // unchanged
  EXPECT_NE(changed, details);
  EXPECT_EQ(changed.With(EndpointDetails::kLocality, values[EndpointDetails::kLocality]), details);
}

// Istio's fallbacks (canonical service = workload name, canonical revision =
// version) are stored once; a value that differs is stored as written.
TEST(EndpointDetailsTest, DerivedFieldsEqualToTheirSourceReadBack) {
  EndpointDetails::Values values{};
  values[EndpointDetails::kWorkloadName] = "svc7-3";
  values[EndpointDetails::kCanonicalService] = "svc7-3";
  values[EndpointDetails::kVersion] = "v1";
  values[EndpointDetails::kCanonicalRevision] = "v2";
  EXPECT_EQ(EndpointDetails(values).All(), values);
  values[EndpointDetails::kCanonicalService] = "reviews";
  values[EndpointDetails::kCanonicalRevision] = "v1";
  EXPECT_EQ(EndpointDetails(values).All(), values);
  values[EndpointDetails::kWorkloadName] = "";
  EXPECT_EQ(EndpointDetails(values).All(), values);
  const EndpointDetails aliased = EndpointDetails(values).With(EndpointDetails::kWorkloadName, "reviews");
  EXPECT_EQ(aliased.Get(EndpointDetails::kCanonicalService), "reviews");
  EXPECT_EQ(aliased.With(EndpointDetails::kWorkloadName, "other").Get(EndpointDetails::kCanonicalService), "reviews");
}

TEST(EndpointDetailsTest, LongValuesAndCopiesAcrossThreads) {
  const std::string long_value(100000, 'x');  // past any 16-bit offset
  EndpointDetails::Values values{};
  values[EndpointDetails::kNetwork] = long_value;
  values[EndpointDetails::kPrincipal] = "spiffe://cluster.local/ns/a/sa/b";
  const EndpointDetails details(values);
  EXPECT_EQ(details.Get(EndpointDetails::kNetwork), long_value);
  EXPECT_EQ(details.Get(EndpointDetails::kPrincipal), "spiffe://cluster.local/ns/a/sa/b");
  // The count is atomic: copies made and dropped on two threads leave it whole.
  auto churn = [&] {
    for (int i = 0; i < 100000; ++i) {
      EndpointDetails copy = details;
      EndpointDetails moved = std::move(copy);
      ASSERT_EQ(moved.Get(EndpointDetails::kPrincipal).size(), 32u);
    }
  };
  std::thread other(churn);
  churn();
  other.join();
  EXPECT_EQ(details.Get(EndpointDetails::kNetwork).size(), long_value.size());
}

TEST(EndpointTest, AccessorsAndWorkloadRoundTrip) {
  Endpoint endpoint{"10.0.0.1", 8080};
  EXPECT_EQ(sizeof(Endpoint), 64u) << "the route table keeps one per address and port";
  EXPECT_TRUE(endpoint.hostname().empty());
  EXPECT_FALSE(endpoint.HasWorkloadName());
  endpoint.set_hostname("api.example.com");
  endpoint.set_network("net1");
  endpoint.set_locality("eu/a/b");
  endpoint.set_service_account("reviews");
  const WorkloadIdentity identity{"reviews-v2", "bookinfo", "reviews", "v2", "reviews", "v2",
                                  "spiffe://cluster.local/ns/bookinfo/sa/reviews"};
  endpoint.set_workload(identity);
  EXPECT_EQ(endpoint.hostname(), "api.example.com");
  EXPECT_EQ(endpoint.network(), "net1");
  EXPECT_EQ(endpoint.locality(), "eu/a/b");
  EXPECT_EQ(endpoint.service_account(), "reviews");
  EXPECT_EQ(endpoint.workload(), identity);
  EXPECT_TRUE(endpoint.HasWorkloadName());
  Endpoint copy = endpoint;
  copy.set_network("net2");  // copy on write: the original keeps its value
  EXPECT_EQ(endpoint.network(), "net1");
  EXPECT_NE(copy, endpoint);
  copy.set_network("net1");
  EXPECT_EQ(copy, endpoint);
}

}  // namespace
}  // namespace meshgate::config
