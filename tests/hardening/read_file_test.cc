// The bounded config reader (base/read_file.h) and what uses it: every kind
// of file a config path may name that is not a readable regular file gets a
// specific error, at once, and sizes are capped (issue 15, items 2 and 3).
#include "base/read_file.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "base/io/http_server.h"
#include "config/mesh/mesh_loader.h"
#include "config/model/route_table.h"
#include "config/settings/gateway_config.h"
#include "config/settings/serve_config.h"
#include "gtest/gtest.h"
#include "tests/support/meshgate_process.h"

namespace meshgate {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

std::string Message(const absl::StatusOr<std::string>& r) { return std::string(r.status().message()); }

TEST(ReadConfigFileTest, ARegularFileIsReadWhole) {
  TempDir dir;
  const std::string text(300000, 'x');
  const auto r = base::ReadConfigFile(dir.Write("a.yaml", text));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, text);
  const auto empty = base::ReadConfigFile(dir.Write("empty.yaml", ""));
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(*empty, "");
}

TEST(ReadConfigFileTest, EachFailureNamesTheFileAndTheReason) {
  TempDir dir;
  const std::string missing = dir.path() + "/missing.yaml";
  EXPECT_EQ(Message(base::ReadConfigFile(missing)), missing + ": no such file");
  EXPECT_TRUE(absl::IsNotFound(base::ReadConfigFile(missing).status()));
  EXPECT_EQ(Message(base::ReadConfigFile(dir.path())), dir.path() + ": is a directory");
  const std::string loop = dir.path() + "/loop.yaml";
  fs::create_symlink(loop, loop);  // a link to itself: ELOOP
  EXPECT_EQ(Message(base::ReadConfigFile(loop)), loop + ": too many levels of symbolic links");
  const std::string notdir = dir.Write("file", "x") + "/under.yaml";
  EXPECT_EQ(Message(base::ReadConfigFile(notdir)), notdir + ": a component of the path is not a directory");
}

// A FIFO without a writer: open(2) would block forever without O_NONBLOCK.
TEST(ReadConfigFileTest, AFifoIsRefusedAtOnce) {
  TempDir dir;
  const std::string fifo = dir.path() + "/mesh.yaml";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0644), 0);
  EXPECT_EQ(Message(base::ReadConfigFile(fifo)), fifo + ": is a FIFO (named pipe), not a regular file");
}

TEST(ReadConfigFileTest, DevicesSocketsAndPseudoFilesAreRefused) {
  EXPECT_EQ(Message(base::ReadConfigFile("/dev/zero")), "/dev/zero: is a device, not a regular file");
  EXPECT_EQ(Message(base::ReadConfigFile("/dev/null")), "/dev/null: is a device, not a regular file");
  // /proc/self/mem is a regular file of size 0 whose read(2) at offset 0 fails with EIO.
  EXPECT_EQ(Message(base::ReadConfigFile("/proc/self/mem")),
            "/proc/self/mem: is a /proc or /sys pseudo file, not a regular file (copy it to a file first)");
  EXPECT_NE(Message(base::ReadConfigFile("/proc/self/status")).find("pseudo file"), std::string::npos);
  TempDir dir;
  const std::string path = dir.path() + "/s.sock";
  const int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  EXPECT_EQ(Message(base::ReadConfigFile(path)), path + ": is a socket, not a regular file");
  close(fd);
}

TEST(ReadConfigFileTest, OverTheCapIsRefusedWithSizeAndCap) {
  TempDir dir;
  const std::string path = dir.Write("big.yaml", std::string(5000, 'x'));
  const auto r = base::ReadConfigFile(path, 4096);
  EXPECT_TRUE(absl::IsResourceExhausted(r.status()));
  EXPECT_EQ(Message(r), path + ": 5000 bytes, over the cap of 4096 bytes (limits.maxConfigFileBytes)");
  EXPECT_TRUE(base::ReadConfigFile(path, 5000).ok());
}

// The mesh loader: a refused file is that file's error; the total cap spans files.
TEST(MeshReadLimitsTest, PerFileAndTotalCaps) {
  TempDir dir;
  dir.Write("mesh/a.yaml", std::string(3000, '#'));
  dir.Write("mesh/b.yaml", std::string(3000, '#'));
  base::ConfigReadLimits limits{.max_file_bytes = 4096, .max_total_bytes = 5000};
  const config::MeshSources sources = config::ReadMeshSources({dir.path() + "/mesh"}, limits);
  ASSERT_EQ(sources.sources.size(), 2u);
  EXPECT_EQ(sources.sources[0].error, "");
  EXPECT_EQ(sources.sources[1].error, dir.path() + "/mesh/b.yaml: 3000 bytes brings the mesh to 6000 bytes, over the "
                                                   "cap of 5000 bytes (limits.maxConfigBytes)");
  const config::MeshLoadResult zero = config::LoadMesh({"/dev/zero"}, {}, config::MeshLoadOptions{});
  ASSERT_EQ(zero.errors.size(), 1u);
  EXPECT_EQ(zero.errors[0], "/dev/zero: is a device, not a regular file");
}

TEST(MeshReadLimitsTest, MeshgateYamlAndServeYamlReadTheLimits) {
  const auto gw = config::ParseGatewayConfig("limits: {maxConfigFileBytes: 1048576, maxConfigBytes: 2097152}\n",
                                             "gw.yaml", "");
  ASSERT_TRUE(gw.ok()) << gw.status();
  EXPECT_EQ(gw->config_read_limits.max_file_bytes, 1048576u);
  EXPECT_EQ(gw->config_read_limits.max_total_bytes, 2097152u);
  EXPECT_EQ(config::GatewayConfig{}.config_read_limits.max_file_bytes, 64u << 20);
  EXPECT_EQ(config::GatewayConfig{}.config_read_limits.max_total_bytes, 256u << 20);
  const auto bad = config::ParseGatewayConfig("limits: {maxConfigFileBytes: 4096, maxConfigBytes: 2048}\n",
                                              "gw.yaml", "");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("limits.maxConfigFileBytes"), std::string::npos) << bad.status();
  const auto serve = config::ParseServeConfig(
      "limits: {maxConfigBytes: 1048576}\nclusters: [{name: c1, network: n1, gateway: 10.0.0.1, mesh: [m/]}]\n",
      "serve.yaml", "");
  ASSERT_TRUE(serve.ok()) << serve.status();
  EXPECT_EQ(serve->config_read_limits.max_total_bytes, 1048576u);
}

TEST(SettingsReadTest, ConfigFileErrorsSayWhatIsWrong) {
  TempDir dir;
  EXPECT_EQ(config::LoadGatewayConfig(dir.path()).status().message(), dir.path() + ": is a directory");
  const std::string fifo = dir.path() + "/gw.yaml";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0644), 0);
  EXPECT_EQ(config::LoadGatewayConfig(fifo).status().message(), fifo + ": is a FIFO (named pipe), not a regular file");
  EXPECT_EQ(config::LoadServeConfig(fifo).status().message(), fifo + ": is a FIFO (named pipe), not a regular file");
  EXPECT_EQ(config::LoadServeConfig(dir.path()).status().message(), dir.path() + ": is a directory");
}

// Istio builds "outbound_.<port>_.<subset>_.<host>" with strconv.Itoa and
// matches it as an exact string: a port with leading zeros is no route.
TEST(SniPortTest, LeadingZerosAreABadSni) {
  config::SniTarget target;
  EXPECT_FALSE(config::ParseSni("outbound_.09000_._.httpbin.bar.global", target));
  EXPECT_FALSE(config::ParseSni("outbound_.00_._.httpbin.bar.global", target));
  EXPECT_FALSE(config::ParseSni("outbound_.08000_.v1_.httpbin.bar.global", target));
  ASSERT_TRUE(config::ParseSni("outbound_.9000_._.httpbin.bar.global", target));
  EXPECT_EQ(target.port, 9000);
}

TEST(EchoForBodyTest, BoundedAndEscaped) {
  EXPECT_EQ(io::EchoForBody("abc"), "abc");
  EXPECT_EQ(io::EchoForBody(std::string("a\r\nb\0\\", 6)), "a\\x0d\\x0ab\\x00\\x5c");
  const std::string echoed = io::EchoForBody(std::string(15000, 'y'));
  EXPECT_EQ(echoed, std::string(256, 'y') + "...(15000 bytes)");
}

}  // namespace
}  // namespace meshgate
