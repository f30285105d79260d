// `meshgate --probe`, the container image's HEALTHCHECK, against the real
// binary: it reads the readiness address from the same meshgate.yaml the
// gateway runs with (so it follows `readiness:` wherever it moves, instead of
// a hard-coded 127.0.0.1:15021), maps a wildcard bind to loopback, and exits
// 0 only on HTTP 200. Every failure is exit 1 with a reason: Docker's
// HEALTHCHECK treats 1 as unhealthy and reserves 2
// (https://docs.docker.com/reference/dockerfile/#healthcheck).
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/support/meshgate_process.h"
#include "tests/support/mesh_yaml.h"
#include "tests/support/ports.h"

namespace meshgate::testing {
namespace {

class ProbeTest : public ::testing::Test {
 protected:
  // A running gateway with readiness on 127.0.0.1:<kernel-picked port>.
  std::unique_ptr<MeshgateProcess> Start(std::vector<std::string> extra = {}) {
    dir_.Write("mesh/gateway.yaml", kCrossNetworkGateway);
    std::vector<std::string> args = {"--config", dir_.Write("gw.yaml", "threads: 1\nmesh: [mesh/]\n")};
    args.insert(args.end(), extra.begin(), extra.end());
    auto gw = std::make_unique<MeshgateProcess>(args);
    EXPECT_TRUE(gw->running()) << gw->Log();
    return gw;
  }
  static std::string PortOf(const std::string& address) { return address.substr(address.rfind(':') + 1); }

  TempDir dir_;
};

TEST_F(ProbeTest, ReadsReadinessFromTheConfigFileAndPassesWhenReady) {
  auto gw = Start();
  const std::string ready = gw->readiness_address();
  ASSERT_FALSE(ready.empty()) << gw->Log();
  // The config as a Deployment writes it: a wildcard bind, probed on loopback.
  const std::string config = dir_.Write("probe.yaml", "readiness: 0.0.0.0:" + PortOf(ready) + "\nmesh: [mesh/]\n");
  const RunResult r = RunMeshgate({"--probe", "--config", config});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("http://127.0.0.1:" + PortOf(ready) + "/healthz/ready: HTTP 200"), std::string::npos) << r.out;
}

TEST_F(ProbeTest, TheReadinessFlagOverridesTheFile) {
  auto gw = Start();
  ReservedPort nothing;  // the file points where nothing listens
  const std::string config = dir_.Write("probe.yaml", "readiness: " + nothing.address() + "\n");
  EXPECT_EQ(RunMeshgate({"--probe", "--config", config}).exit_code, 1);
  const RunResult r = RunMeshgate({"--probe", "--config", config, "--readiness", gw->readiness_address()});
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

TEST_F(ProbeTest, DrainingIsUnhealthyWithTheReason) {
  auto gw = Start({"--drain-delay", "30s"});
  const std::string ready = gw->readiness_address();
  gw->SendSigterm();
  ASSERT_TRUE(gw->WaitForLog("draining (SIGTERM)", 1, 5000)) << gw->Log();
  const RunResult r = RunMeshgate({"--probe", "--readiness", ready});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("HTTP 503 draining"), std::string::npos) << r.err;
}

TEST_F(ProbeTest, NothingListeningIsUnhealthy) {
  ReservedPort nothing;
  const RunResult r = RunMeshgate({"--probe", "--readiness", nothing.address()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("meshgate: probe: http://" + nothing.address() + "/healthz/ready: no answer"),
            std::string::npos)
      << r.err;
}

TEST_F(ProbeTest, ConfigProblemsAreExitOneWithAReason) {
  struct Case {
    std::vector<std::string> args;
    std::string says;
  };
  const std::vector<Case> cases = {
      {{"--config", dir_.path() + "/missing.yaml"}, "missing.yaml"},
      {{"--config", dir_.Write("off.yaml", "readiness: off\n")}, "readiness is off"},
      {{"--readiness", "off"}, "readiness is off"},
      {{"--config", dir_.Write("zero.yaml", "readiness: 127.0.0.1:0\n")}, "port 0 (picked by the kernel)"},
      {{"--readiness", "localhost:15021"}, "--readiness"},
      {{"--config", dir_.Write("bad.yaml", "readiness: [1, 2]\n")}, "readiness"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> args = {"--probe"};
    args.insert(args.end(), c.args.begin(), c.args.end());
    const RunResult r = RunMeshgate(args);
    EXPECT_EQ(r.exit_code, 1) << c.says << ": " << r.err;
    EXPECT_NE(r.err.find("meshgate: probe: "), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(c.says), std::string::npos) << r.err;
  }
}

}  // namespace
}  // namespace meshgate::testing
