// The Kubernetes API client against a real TLS test API server speaking the
// wire format of "API Concepts"
// (https://kubernetes.io/docs/reference/using-api/api-concepts/). Tests wait
// on callbacks and status, never on sleeps.
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/json/serialize.hpp>

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "base/kube/api_client.h"
#include "base/kube/discovery.h"
#include "base/kube/resource_watch.h"
#include "tests/kube/test_api_server.h"

namespace meshgate::kube {
namespace {

namespace json = boost::json;
using testing::TestApiServer;
using namespace std::chrono_literals;

class KubeWatchTest : public ::testing::Test {
 protected:
  // Runs the io_context until `done` holds; false after `limit`.
  bool RunUntil(const std::function<bool()>& done, std::chrono::milliseconds limit = 20s) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      io_.restart();
      io_.run_one_for(50ms);
    }
    return true;
  }

  std::shared_ptr<ResourceWatch> StartWatch(Credentials creds, ResourceRef ref = {"", "v1", "pods", ""},
                                            WatchOptions options = FastOptions()) {
    auto client = ApiClient::Create(io_.get_executor(), std::move(creds));
    EXPECT_TRUE(client.ok()) << client.status();
    client_ = *client;
    WatchCallbacks callbacks;
    callbacks.on_sync = [this](const ObjectMap& objects) { syncs_.push_back(objects.size()); };
    callbacks.on_event = [this](EventType type, const std::string& key, const json::object&) {
      events_.push_back(std::string(EventTypeName(type)) + " " + key);
    };
    watch_ = ResourceWatch::Create(client_, std::move(ref), options, std::move(callbacks));
    watch_->Start();
    return watch_;
  }

  static WatchOptions FastOptions() {
    WatchOptions o;
    o.backoff_initial = 20ms;
    o.backoff_max = 200ms;
    return o;
  }

  bool Synced() { return watch_->status().state == SyncState::kSynced && watch_->status().lists > 0; }
  // The first watch stream is open at the server.
  bool Watching() { return Synced() && watch_->status().watching && watch_->status().watches == 1; }
  bool Has(const std::string& key) { return watch_->objects().count(key) > 0; }

  void TearDown() override {
    if (watch_) watch_->Stop();
    io_.restart();
    io_.poll();
  }

  boost::asio::io_context io_;
  TestApiServer server_;
  std::shared_ptr<ApiClient> client_;
  std::shared_ptr<ResourceWatch> watch_;
  std::vector<size_t> syncs_;
  std::vector<std::string> events_;
};

TEST_F(KubeWatchTest, ListPaginatesWithLimitAndContinue) {
  for (int i = 0; i < 7; ++i) server_.Change("add", TestApiServer::Fixture("pod.json", "pod-" + std::to_string(i)));
  WatchOptions options = FastOptions();
  options.page_size = 3;
  StartWatch(server_.Creds(), {"", "v1", "pods", ""}, options);
  ASSERT_TRUE(RunUntil([&] { return Synced(); })) << watch_->status().last_error;
  EXPECT_EQ(syncs_, std::vector<size_t>{7});
  EXPECT_EQ(server_.Counter("lists"), 3);  // 3 + 3 + 1
  EXPECT_TRUE(Has("default/pod-0"));
  EXPECT_TRUE(Has("default/pod-6"));
  EXPECT_EQ(watch_->status().resource_version, std::to_string(server_.Command({{"op", "counts"}}).at("rv").as_int64()));
  // The fixture keeps its kubectl shape through the wire.
  EXPECT_EQ(watch_->objects().at("default/pod-3").at("status").at("podIP").as_string(), "10.244.1.7");
}

TEST_F(KubeWatchTest, NamespacedEndpointSlicesAndEventsApplyInOrder) {
  server_.Change("add", TestApiServer::Fixture("endpointslice.json", "other", "prod"),
                 "/apis/discovery.k8s.io/v1", "endpointslices");
  StartWatch(server_.Creds(), {"discovery.k8s.io", "v1", "endpointslices", "default"});
  ASSERT_TRUE(RunUntil([&] { return Watching(); }));
  EXPECT_EQ(watch_->objects().size(), 0u);  // "prod" is another namespace
  auto slice = TestApiServer::Fixture("endpointslice.json", "httpbin-a");
  server_.Change("add", slice, "/apis/discovery.k8s.io/v1", "endpointslices");
  slice["endpoints"].as_array()[0].as_object()["conditions"].as_object()["ready"] = false;
  server_.Change("modify", slice, "/apis/discovery.k8s.io/v1", "endpointslices");
  server_.Change("add", TestApiServer::Fixture("endpointslice.json", "httpbin-b"), "/apis/discovery.k8s.io/v1",
                 "endpointslices");
  const int64_t last = server_.Change("delete", slice, "/apis/discovery.k8s.io/v1", "endpointslices");
  ASSERT_TRUE(RunUntil([&] { return events_.size() == 4; })) << events_.size();
  EXPECT_EQ(events_, (std::vector<std::string>{"ADDED default/httpbin-a", "MODIFIED default/httpbin-a",
                                               "ADDED default/httpbin-b", "DELETED default/httpbin-a"}));
  EXPECT_FALSE(Has("default/httpbin-a"));
  EXPECT_TRUE(Has("default/httpbin-b"));
  EXPECT_EQ(watch_->status().resource_version, std::to_string(last));
  EXPECT_EQ(watch_->status().events, 4u);
}

TEST_F(KubeWatchTest, ResumesFromBookmarkWithoutRelist) {
  StartWatch(server_.Creds());
  ASSERT_TRUE(RunUntil([&] { return Synced(); }));
  server_.Change("add", TestApiServer::Fixture("pod.json", "a"));
  const int64_t bookmark = server_.Command({{"op", "bookmark"}, {"prefix", "/api/v1"}, {"resource", "pods"}}).at("rv").as_int64();
  ASSERT_TRUE(RunUntil([&] { return watch_->status().resource_version == std::to_string(bookmark); }));
  // Compacting at the bookmark: resuming from the ADDED event's version would be 410.
  server_.Command({{"op", "compact"}});
  server_.Command({{"op", "close_watches"}});
  server_.Change("add", TestApiServer::Fixture("pod.json", "b"));
  ASSERT_TRUE(RunUntil([&] { return Has("default/b"); })) << watch_->status().last_error;
  EXPECT_EQ(watch_->status().relists, 0u);
  EXPECT_EQ(watch_->status().bookmarks, 1u);
  EXPECT_EQ(watch_->status().watches, 2u);
  EXPECT_EQ(server_.Counter("gone"), 0);
  EXPECT_EQ(syncs_.size(), 1u);
}

class KubeGoneTest : public KubeWatchTest, public ::testing::WithParamInterface<std::string> {};

// "410 Gone responses": as an ERROR event in a 200 stream, or as the HTTP status.
TEST_P(KubeGoneTest, ExpiredVersionRelists) {
  server_.Command({{"op", "gone_as"}, {"as", GetParam()}});
  server_.Change("add", TestApiServer::Fixture("pod.json", "a"));
  StartWatch(server_.Creds());
  ASSERT_TRUE(RunUntil([&] { return Watching(); }));
  // While the client is not running: end its stream, change, and compact past it.
  server_.Command({{"op", "close_watches"}});
  server_.Change("delete", TestApiServer::Fixture("pod.json", "a"));
  server_.Change("add", TestApiServer::Fixture("pod.json", "c"));
  server_.Command({{"op", "compact"}});
  ASSERT_TRUE(RunUntil([&] { return watch_->status().relists == 1 && Synced(); })) << watch_->status().last_error;
  EXPECT_EQ(syncs_, (std::vector<size_t>{1, 1}));
  EXPECT_TRUE(Has("default/c"));
  EXPECT_FALSE(Has("default/a"));
  EXPECT_EQ(server_.Counter("gone"), 1);
  EXPECT_NE(watch_->status().last_error.find("too old resource version"), std::string::npos)
      << watch_->status().last_error;
}
INSTANTIATE_TEST_SUITE_P(Kube, KubeGoneTest, ::testing::Values("event", "status"),
                         [](const auto& info) { return info.param == "event" ? "ErrorEvent" : "HttpStatus"; });

TEST_F(KubeWatchTest, ServerGoneBacksOffThenResyncs) {
  StartWatch(server_.Creds());
  ASSERT_TRUE(RunUntil([&] { return Watching(); }));
  server_.Command({{"op", "down"}});
  ASSERT_TRUE(RunUntil([&] {
    return watch_->status().state == SyncState::kBackoff && watch_->status().consecutive_failures >= 3;
  }));
  EXPECT_FALSE(watch_->status().last_error.empty());
  server_.Change("add", TestApiServer::Fixture("pod.json", "while-down"));
  server_.Command({{"op", "up"}});
  ASSERT_TRUE(RunUntil([&] { return Synced() && Has("default/while-down"); })) << watch_->status().last_error;
  EXPECT_EQ(watch_->status().relists, 0u);  // resumed from the last version
  EXPECT_EQ(watch_->status().consecutive_failures, 0u);
}

TEST_F(KubeWatchTest, RotatedTokenFileIsPickedUp) {
  // In-cluster credentials with the service account paths moved to the test's folder.
  InClusterPaths paths;
  paths.token = server_.dir() + "/token";
  paths.ca = server_.dir() + "/ca.pem";
  paths.ns = server_.dir() + "/namespace";
  paths.host = "127.0.0.1";
  paths.port = std::to_string(server_.port());
  auto creds = InClusterCredentials(paths);
  ASSERT_TRUE(creds.ok()) << creds.status();
  StartWatch(*creds);
  ASSERT_TRUE(RunUntil([&] { return Watching(); }));
  // The server moves to a new token first: the old one is refused.
  server_.Command({{"op", "token"}, {"token", "token-2"}});
  ASSERT_TRUE(RunUntil([&] { return watch_->status().last_error.find("401") != std::string::npos; }))
      << watch_->status().last_error;
  EXPECT_EQ(watch_->status().state, SyncState::kBackoff);
  // Then the kubelet rotates the file.
  server_.WriteTokenFile("token-2");
  server_.Change("add", TestApiServer::Fixture("pod.json", "after-rotation"));
  ASSERT_TRUE(RunUntil([&] { return Has("default/after-rotation"); })) << watch_->status().last_error;
  EXPECT_EQ(client_->token_reads(), 2u);
  EXPECT_GE(server_.Counter("unauthorized"), 1);
}

// The kubelet rewrites the projected ca.crt when the cluster's root rotates
// ("Projected volumes": the files are swapped in atomically). A client holding
// the old roots refuses the new server certificate until it reads the file
// again: here the file starts with another CA, then the right one is swapped
// in, then garbage (refused by name), then the right one again.
TEST_F(KubeWatchTest, RotatedCaFileIsPickedUp) {
  meshgate::testing::Pki other;
  InClusterPaths paths;
  paths.token = server_.dir() + "/token";
  paths.ca = server_.ReplaceFile("ca.crt", meshgate::testing::ToPem(other.root().cert.get()));
  paths.ns = server_.dir() + "/namespace";
  paths.host = "127.0.0.1";
  paths.port = std::to_string(server_.port());
  auto creds = InClusterCredentials(paths);
  ASSERT_TRUE(creds.ok()) << creds.status();
  EXPECT_EQ(creds->ca_file, paths.ca);
  StartWatch(*creds);
  ASSERT_TRUE(RunUntil([&] { return watch_->status().errors >= 1; }));
  EXPECT_NE(watch_->status().last_error.find("server certificate refused"), std::string::npos)
      << watch_->status().last_error;
  EXPECT_EQ(client_->ca_reads(), 1u);

  server_.ReplaceFile("ca.crt", server_.root_pem());
  ASSERT_TRUE(RunUntil([&] { return Watching(); })) << watch_->status().last_error;
  EXPECT_EQ(client_->ca_reads(), 2u);

  // A file that holds no certificate: refused with the file's name; the
  // requests in flight keep their context, the next ones fail until it is fixed.
  server_.ReplaceFile("ca.crt", "not a certificate\n");
  server_.Command({{"op", "close_watches"}});
  ASSERT_TRUE(RunUntil([&] { return watch_->status().last_error.find("CA certificates in " + paths.ca) !=
                                    std::string::npos; }))
      << watch_->status().last_error;
  EXPECT_EQ(watch_->status().state, SyncState::kBackoff);
  server_.ReplaceFile("ca.crt", server_.root_pem());
  server_.Change("add", TestApiServer::Fixture("pod.json", "after-ca-rotation"));
  ASSERT_TRUE(RunUntil([&] { return Has("default/after-ca-rotation"); })) << watch_->status().last_error;
  EXPECT_EQ(watch_->status().relists, 0u);  // resumed from the last version: no state was lost
}

TEST_F(KubeWatchTest, ServerCertificateFromAnotherCaIsRefused) {
  Credentials creds = server_.Creds();
  meshgate::testing::Pki other;
  creds.ca_pem = meshgate::testing::ToPem(other.root().cert.get());
  StartWatch(creds);
  ASSERT_TRUE(RunUntil([&] { return watch_->status().errors >= 1; }));
  EXPECT_EQ(watch_->status().state, SyncState::kBackoff);
  EXPECT_NE(watch_->status().last_error.find("server certificate refused: unable to get local issuer certificate"),
            std::string::npos)
      << watch_->status().last_error;
  EXPECT_EQ(watch_->status().lists, 0u);
}

TEST_F(KubeWatchTest, ServerCertificateForAnotherNameIsRefused) {
  Credentials creds = server_.Creds();
  creds.tls_server_name = "kubernetes.other.svc";
  StartWatch(creds);
  ASSERT_TRUE(RunUntil([&] { return watch_->status().errors >= 1; }));
  EXPECT_NE(watch_->status().last_error.find("hostname mismatch"), std::string::npos) << watch_->status().last_error;
  // The name the certificate does carry works, with SNI.
  creds.tls_server_name = "kubernetes.default.svc";
  watch_->Stop();
  StartWatch(creds);
  ASSERT_TRUE(RunUntil([&] { return Synced(); })) << watch_->status().last_error;
}

TEST_F(KubeWatchTest, MalformedLineIsReportedAndStreamReestablished) {
  StartWatch(server_.Creds());
  ASSERT_TRUE(RunUntil([&] { return Watching(); }));
  server_.Command({{"op", "raw"}, {"prefix", "/api/v1"}, {"resource", "pods"}, {"line", "{\"type\": \"ADDED\", \"object\": {\n"}});
  ASSERT_TRUE(RunUntil([&] { return watch_->status().errors >= 1; }));
  EXPECT_NE(watch_->status().last_error.find("malformed event line"), std::string::npos) << watch_->status().last_error;
  server_.Change("add", TestApiServer::Fixture("pod.json", "after-garbage"));
  ASSERT_TRUE(RunUntil([&] { return Has("default/after-garbage"); })) << watch_->status().last_error;
  EXPECT_GE(watch_->status().watches, 2u);
  EXPECT_EQ(watch_->status().relists, 0u);
}

TEST_F(KubeWatchTest, SilentWatchIsReestablished) {
  WatchOptions options = FastOptions();
  options.watch_timeout_seconds = 1;
  options.idle_slack = 200ms;
  StartWatch(server_.Creds(), {"", "v1", "pods", ""}, options);
  ASSERT_TRUE(RunUntil([&] { return Watching(); }));
  server_.Command({{"op", "stall"}, {"on", true}});  // the server ignores timeoutSeconds and says nothing
  ASSERT_TRUE(RunUntil([&] { return watch_->status().watch_timeouts >= 1 && watch_->status().watches >= 2; }));
  server_.Command({{"op", "stall"}, {"on", false}});
  server_.Change("add", TestApiServer::Fixture("pod.json", "after-silence"));
  ASSERT_TRUE(RunUntil([&] { return Has("default/after-silence"); })) << watch_->status().last_error;
  EXPECT_EQ(watch_->status().relists, 0u);
}

TEST_F(KubeWatchTest, MissingCrdIsAWarningState) {
  StartWatch(server_.Creds(), {"networking.istio.io", "v1", "serviceentries", ""});
  ASSERT_TRUE(RunUntil([&] { return watch_->status().state == SyncState::kMissing; }));
  EXPECT_NE(watch_->status().warning.find("CRD not installed"), std::string::npos) << watch_->status().warning;
  EXPECT_EQ(SyncStateName(watch_->status().state), "missing");
  // Installed later: picked up at the next look.
  server_.Command({{"op", "register"}, {"prefix", "/apis/networking.istio.io/v1"}, {"resource", "serviceentries"},
                   {"kind", "ServiceEntry"}});
  ASSERT_TRUE(RunUntil([&] { return Synced(); })) << watch_->status().last_error;
  EXPECT_TRUE(watch_->status().warning.empty());
}

TEST_F(KubeWatchTest, IstioVersionFallsBackWhenV1IsNotServed) {
  auto client = ApiClient::Create(io_.get_executor(), server_.Creds());
  ASSERT_TRUE(client.ok());
  auto resolve = [&](std::vector<std::string> served) {
    if (!served.empty()) {
      json::array versions(served.begin(), served.end());
      server_.Command({{"op", "group"}, {"name", "networking.istio.io"}, {"versions", versions}});
    }
    std::optional<absl::StatusOr<std::string>> got;
    ResolveGroupVersion(*client, "networking.istio.io", IstioNetworkingVersions(),
                        [&](absl::StatusOr<std::string> v) { got = std::move(v); });
    EXPECT_TRUE(RunUntil([&] { return got.has_value(); }));
    return got->ok() ? **got : std::string(got->status().message());
  };
  EXPECT_NE(resolve({}).find("no API group networking.istio.io"), std::string::npos);
  EXPECT_EQ(resolve({"v1alpha3"}), "v1alpha3");
  EXPECT_EQ(resolve({"v1beta1", "v1alpha3"}), "v1beta1");
  EXPECT_EQ(resolve({"v1", "v1beta1", "v1alpha3"}), "v1");
}

TEST_F(KubeWatchTest, ClientCertificateAuthenticatesWithoutToken) {
  Credentials creds = server_.Creds();
  creds.token_file.clear();
  const auto user = server_.pki().Issue(1, "spiffe://cluster.local/ns/meshgate/sa/meshgatectl");
  creds.client_cert_pem = meshgate::testing::ToPem(user.leaf.cert.get()) +
                          meshgate::testing::ToPem(user.intermediate->cert.get());
  creds.client_key_pem = meshgate::testing::ToPem(user.leaf.key.get());
  StartWatch(creds);
  ASSERT_TRUE(RunUntil([&] { return Synced(); })) << watch_->status().last_error;
  EXPECT_EQ(server_.Counter("unauthorized"), 0);
}

TEST_F(KubeWatchTest, NoTokenIsUnauthorized) {
  Credentials creds = server_.Creds();
  creds.token_file.clear();
  StartWatch(creds);
  ASSERT_TRUE(RunUntil([&] { return watch_->status().errors >= 1; }));
  EXPECT_NE(watch_->status().last_error.find("HTTP 401"), std::string::npos) << watch_->status().last_error;
}

}  // namespace
}  // namespace meshgate::kube
