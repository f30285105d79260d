// The mesh loader's peak memory against the size of what it reads (issue 15,
// item 3). Each load runs in a forked child, so the peak (VmHWM, proc(5)) is
// that load's alone: no other test's heap, no machine noise (memory, not time).
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "bench/proc_stats.h"
#include "bench/scale_mesh.h"
#include "config/mesh/mesh_loader.h"
#include "tests/support/sanitizer.h"

namespace meshgate::config {
namespace {

namespace fs = std::filesystem;

// Under AddressSanitizer (the build-san pass) the peak says nothing about
// the loader: every allocation carries redzones and freed memory sits in
// ASan's quarantine (256 MiB by default), so the same load peaks 6-7x higher
// (measured: 99x the input against 14x). The bound is checked in the normal
// build only.
using meshgate::testing::kUnderAsan;

// Peak RSS growth of a load over its input's bytes (bench/SCALE.md). Before
// any of this work: 16.2x and 18.2x. Streaming the YAML brought them to
// 14.1x and 12.1x; the compact Endpoint (64 bytes, labels interned, rare
// fields packed: config/model/endpoint.h) and freeing the read resources
// before the table is built, to 4.4x and 7.4x in the bench, 4.7x and 7.8x
// here (this process starts with more heap). The first bound is the issue's
// target, 5x at 10,000 services. What is left is the route table itself
// (SCALE.md has the breakdown).
constexpr double kTenThousandBound = 5.0;
// 20,000 services of one endpoint each: the clusters (736 bytes each plus
// their names and index entries) outweigh the 335 bytes of YAML per service.
constexpr double kOneFileBound = 8.5;

struct LoadPeak {
  long peak_growth_kib = -1;  // VmHWM after the load minus VmRSS before it
  size_t resources = 0;
};

// Loads `dir` in a child process and reports its peak RSS growth.
LoadPeak PeakOfLoad(const fs::path& dir) {
  int fds[2];
  if (::pipe(fds) != 0) return {};
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[0]);
    const long before = bench::RssKib();
    const MeshLoadResult result = LoadMesh({dir.string()}, {{".global", ".svc.cluster.local"}});
    LoadPeak out{bench::PeakRssKib() - before, result.table ? result.resources_loaded : 0};
    const bool written = ::write(fds[1], &out, sizeof out) == static_cast<ssize_t>(sizeof out);
    ::_exit(written && result.table ? 0 : 2);
  }
  ::close(fds[1]);
  LoadPeak out;
  const bool read = pid > 0 && ::read(fds[0], &out, sizeof out) == static_cast<ssize_t>(sizeof out);
  ::close(fds[0]);
  int status = 0;
  if (pid > 0) ::waitpid(pid, &status, 0);
  if (!read || !WIFEXITED(status) || WEXITSTATUS(status) != 0) return {};
  return out;
}

class LoaderMemoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (kUnderAsan) GTEST_SKIP() << "peak RSS under AddressSanitizer measures ASan's allocator, not the loader";
    dir_ = fs::temp_directory_path() / ("meshgate-loader-memory-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }
  // Loads dir_ (holding `input` bytes of YAML) in a child and bounds its
  // peak RSS growth over the input.
  void ExpectPeakWithin(uint64_t input, size_t resources, double bound) {
    const LoadPeak peak = PeakOfLoad(dir_);
    ASSERT_EQ(peak.resources, resources) << "the child's load failed";
    const double ratio = peak.peak_growth_kib * 1024.0 / static_cast<double>(input);
    std::printf("input %.1f MiB, load peak %.1f MiB: %.1fx\n", input / 1048576.0, peak.peak_growth_kib / 1024.0,
                ratio);
    EXPECT_LE(ratio, bound);
  }
  fs::path dir_;
};

// The bench's 10,000-service mesh (100 services a file, 10 endpoints each:
// 7.6 MiB). Before per-document parsing and the reserved cluster vector the
// load peaked at 16x its input; before the compact Endpoint, 14x.
TEST_F(LoaderMemoryTest, TenThousandServicesPeakWithinBound) {
  ExpectPeakWithin(bench::WriteScaleMesh(dir_, 10000, 10), 10001, kTenThousandBound);
}

// One large file (the shape of the 50 MB, 182k-ServiceEntry report, scaled
// down): the whole file's YAML tree was held while its documents were read,
// about 10x the text on its own.
TEST_F(LoaderMemoryTest, OneLargeFilePeakWithinBound) {
  ExpectPeakWithin(bench::WriteScaleMesh(dir_, 20000, 1, 0), 20001, kOneFileBound);
}

// Documents are read as they are parsed; a file that then fails to parse
// must still add nothing but its syntax error, as when it was parsed whole.
constexpr const char* kEntry =
    "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: a, namespace: ns}\n"
    "spec:\n  hosts: [a.example.com]\n  resolution: DNS\n  ports: [{number: 443, name: tls, protocol: TLS}]\n";

TEST(LoaderStreamingTest, FileThatFailsToParseAddsOnlyItsSyntaxError) {
  MeshSources sources;
  // An invalid resource (no spec.hosts) before the syntax error: its own error is not reported.
  sources.sources.push_back({"bad.yaml",
                             "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: b}\n"
                             "spec: {ports: [{number: 1, name: x}]}\n---\n" + std::string(kEntry) + "---\nkey: [1, 2\n",
                             ""});
  // Defines the same ServiceEntry as the broken file: no duplicate, the broken file's copy was taken back.
  sources.sources.push_back({"good.yaml", kEntry, ""});
  const MeshLoadResult result = LoadMeshSources(sources, {});
  ASSERT_EQ(result.errors.size(), 1u) << result.errors[0] << "\n" << result.errors.back();
  EXPECT_EQ(result.errors[0].rfind("bad.yaml:", 0), 0u) << result.errors[0];
  EXPECT_NE(result.errors[0].find("YAML syntax error"), std::string::npos) << result.errors[0];
  EXPECT_EQ(result.resources_loaded, 1u);
}

}  // namespace
}  // namespace meshgate::config
