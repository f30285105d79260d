// meshgatectl ca: run as users run it, then the output is checked with
// OpenSSL itself (`openssl verify` and the X509 API), and used for mTLS
// through meshgate between openssl s_client and s_server.
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "base/yaml/yaml_tree.h"
#include "gtest/gtest.h"
#include "tests/control/mesh_pki.h"
#include "tests/support/mesh_yaml.h"
#include "tests/control/run_command.h"
#include "tests/support/meshgate_process.h"
#include "tests/support/tls_peers.h"

namespace {

namespace fs = std::filesystem;

using meshgate::testing::CmdResult;
using meshgate::testing::Ctl;
using meshgate::testing::Shell;

using meshgate::testing::Read;

struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
using Cert = std::unique_ptr<X509, X509Free>;

Cert Load(const std::string& path) {
  const std::string pem = Read(path);
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  Cert cert(PEM_read_bio_X509(bio, nullptr, nullptr, nullptr));
  BIO_free(bio);
  return cert;
}

std::string Subject(X509* cert) {
  char buf[512];
  X509_NAME_oneline(X509_get_subject_name(cert), buf, sizeof buf);
  return buf;
}

bool Critical(X509* cert, int nid) {
  const int at = X509_get_ext_by_NID(cert, nid, -1);
  return at >= 0 && X509_EXTENSION_get_critical(X509_get_ext(cert, at)) == 1;
}

std::vector<std::string> Sans(X509* cert) {
  std::vector<std::string> out;
  auto* names = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  for (int i = 0; names != nullptr && i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* gn = sk_GENERAL_NAME_value(names, i);
    const ASN1_STRING* s = gn->type == GEN_URI ? gn->d.uniformResourceIdentifier
                           : gn->type == GEN_DNS ? gn->d.dNSName
                                                 : nullptr;
    if (s != nullptr) {
      out.push_back(std::string(gn->type == GEN_URI ? "URI:" : "DNS:") +
                    std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)), ASN1_STRING_length(s)));
    }
  }
  GENERAL_NAMES_free(names);
  return out;
}

// Seconds from now to notAfter.
long SecondsLeft(X509* cert) {
  int days = 0, seconds = 0;
  ASN1_TIME_diff(&days, &seconds, nullptr, X509_get0_notAfter(cert));
  return days * 86400L + seconds;
}

class CaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/meshgatectl-test-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string P(const std::string& rel) const { return dir_ + "/" + rel; }

  void MakeMesh() { ASSERT_NO_FATAL_FAILURE(meshgate::testing::MakeCaMaterial(dir_)); }

  std::string dir_;
};

TEST_F(CaTest, OpensslVerifiesEveryCertificateAgainstTheSharedRoot) {
  MakeMesh();
  for (const char* c : {"cluster1", "cluster2"}) {
    const CmdResult r = Shell("openssl verify -CAfile " + P("root/root-cert.pem") + " " + P(c) + "/ca-cert.pem");
    EXPECT_EQ(r.code, 0) << r.out;
  }
  for (const char* w : {"sleep", "httpbin"}) {
    // The walkthrough's check: leaf, with the intermediate as untrusted.
    const CmdResult r = Shell("openssl verify -CAfile " + P(w) + "/root-cert.pem -untrusted " + P(w) +
                        "/cert-chain.pem " + P(w) + "/cert.pem");
    EXPECT_EQ(r.code, 0) << r.out;
  }
  // A workload of cluster 1 verifies with cluster 2's root bundle: one root.
  EXPECT_EQ(Read(P("cluster1/root-cert.pem")), Read(P("cluster2/root-cert.pem")));
  // And an unrelated root does not.
  ASSERT_EQ(Ctl("ca root --key-type ecdsa --out " + P("other")).code, 0);
  EXPECT_NE(Shell("openssl verify -CAfile " + P("other/root-cert.pem") + " -untrusted " +
                  P("sleep/cert-chain.pem") + " " + P("sleep/cert.pem"))
                .code,
            0);
}

TEST_F(CaTest, ExtensionsAreIstios) {
  MakeMesh();
  const Cert root = Load(P("root/root-cert.pem"));
  EXPECT_EQ(Subject(root.get()), "/O=Istio/CN=Root CA");
  EXPECT_TRUE(X509_get_extension_flags(root.get()) & EXFLAG_CA);
  EXPECT_TRUE(Critical(root.get(), NID_basic_constraints));
  EXPECT_TRUE(Critical(root.get(), NID_key_usage));
  EXPECT_TRUE(X509_get_key_usage(root.get()) & KU_KEY_CERT_SIGN);
  EXPECT_TRUE(X509_get_key_usage(root.get()) & KU_DIGITAL_SIGNATURE);
  EXPECT_NEAR(SecondsLeft(root.get()), 3650L * 86400, 3600);

  const Cert inter = Load(P("cluster1/ca-cert.pem"));
  EXPECT_EQ(Subject(inter.get()), "/O=Istio/CN=Intermediate CA/L=cluster1");
  EXPECT_TRUE(Critical(inter.get(), NID_basic_constraints));
  EXPECT_EQ(X509_get_pathlen(inter.get()), 0);
  EXPECT_TRUE(X509_get_key_usage(inter.get()) & KU_KEY_CERT_SIGN);
  EXPECT_EQ(Sans(inter.get()), std::vector<std::string>{"DNS:istiod.istio-system.svc"});
  EXPECT_NEAR(SecondsLeft(inter.get()), 730L * 86400, 3600);
  // cert-chain.pem: the intermediate, then the root.
  EXPECT_EQ(Read(P("cluster1/cert-chain.pem")), Read(P("cluster1/ca-cert.pem")) + Read(P("root/root-cert.pem")));

  const Cert leaf = Load(P("sleep/cert.pem"));
  EXPECT_EQ(X509_NAME_entry_count(X509_get_subject_name(leaf.get())), 0);
  EXPECT_EQ(Sans(leaf.get()), std::vector<std::string>{"URI:spiffe://cluster.local/ns/foo/sa/sleep"});
  EXPECT_TRUE(Critical(leaf.get(), NID_subject_alt_name));
  EXPECT_FALSE(X509_get_extension_flags(leaf.get()) & EXFLAG_CA);
  EXPECT_TRUE(X509_get_extended_key_usage(leaf.get()) & XKU_SSL_SERVER);
  EXPECT_TRUE(X509_get_extended_key_usage(leaf.get()) & XKU_SSL_CLIENT);
  EXPECT_NEAR(SecondsLeft(leaf.get()), 24 * 3600, 60);
  EXPECT_EQ(Read(P("sleep/cert-chain.pem")), Read(P("sleep/cert.pem")) + Read(P("cluster1/ca-cert.pem")));
}

TEST_F(CaTest, DefaultKeysAreRsa4096) {
  ASSERT_EQ(Ctl("ca root --out " + P("root")).code, 0);
  const Cert root = Load(P("root/root-cert.pem"));
  EVP_PKEY* key = X509_get0_pubkey(root.get());
  EXPECT_EQ(EVP_PKEY_get_base_id(key), EVP_PKEY_RSA);
  EXPECT_EQ(EVP_PKEY_get_bits(key), 4096);
}

TEST_F(CaTest, PrivateKeysAreOwnerOnlyAndNeverOverwrittenWithoutForce) {
  MakeMesh();
  for (const char* key : {"root/root-key.pem", "cluster1/ca-key.pem", "sleep/key.pem"}) {
    struct stat st {};
    ASSERT_EQ(::stat(P(key).c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u) << key;
  }
  const std::string before = Read(P("root/root-key.pem"));
  const CmdResult again = Ctl("ca root --key-type ecdsa --out " + P("root"));
  EXPECT_EQ(again.code, 1);
  EXPECT_NE(again.out.find("refusing to overwrite a private key (use --force)"), std::string::npos) << again.out;
  EXPECT_EQ(Read(P("root/root-key.pem")), before);
  EXPECT_EQ(Ctl("ca root --key-type ecdsa --force --out " + P("root")).code, 0);
  EXPECT_NE(Read(P("root/root-key.pem")), before);
}

TEST_F(CaTest, SecretIsTheCacertsLayout) {
  MakeMesh();
  const CmdResult r = Ctl("ca secret --dir " + P("cluster1"));
  ASSERT_EQ(r.code, 0) << r.out;
  meshgate::yaml::ParseError error;
  auto stream = meshgate::yaml::Parse(r.out, &error);
  ASSERT_TRUE(stream.has_value()) << error.message;
  const auto doc = stream->documents().at(0);
  std::map<std::string, std::string> data;
  std::string kind, name, ns;
  for (const auto& e : doc) {
    if (e.first.Scalar() == "kind") kind = e.second.Scalar();
    if (e.first.Scalar() == "metadata") {
      for (const auto& m : e.second) {
        if (m.first.Scalar() == "name") name = m.second.Scalar();
        if (m.first.Scalar() == "namespace") ns = m.second.Scalar();
      }
    }
    if (e.first.Scalar() == "data") {
      for (const auto& d : e.second) {
        std::string decoded;
        ASSERT_TRUE(absl::Base64Unescape(d.second.Scalar(), &decoded));
        data[d.first.Scalar()] = decoded;
      }
    }
  }
  EXPECT_EQ(kind, "Secret");
  EXPECT_EQ(name, "cacerts");
  EXPECT_EQ(ns, "istio-system");
  ASSERT_EQ(data.size(), 4u);
  for (const char* f : {"ca-cert.pem", "ca-key.pem", "cert-chain.pem", "root-cert.pem"}) {
    EXPECT_EQ(data[f], Read(P(std::string("cluster1/") + f))) << f;
  }
}

TEST_F(CaTest, VerifyPrintsEachCheckAndFailsOnAMismatchedKey) {
  MakeMesh();
  for (const char* d : {"root", "cluster1", "sleep"}) {
    const CmdResult r = Ctl("ca verify --dir " + P(d));
    EXPECT_EQ(r.code, 0) << d << "\n" << r.out;
    EXPECT_EQ(r.out.find("FAIL"), std::string::npos) << r.out;
    EXPECT_GE(std::count(r.out.begin(), r.out.end(), '\n'), 4) << r.out;
  }
  // cluster2's key does not belong to cluster1's certificate.
  fs::copy_file(P("cluster2/ca-key.pem"), P("cluster1/ca-key.pem"), fs::copy_options::overwrite_existing);
  const CmdResult bad = Ctl("ca verify --dir " + P("cluster1"));
  EXPECT_EQ(bad.code, 1);
  EXPECT_NE(bad.out.find("FAIL ca-key.pem matches ca-cert.pem: it does not"), std::string::npos) << bad.out;
  // A chain from another cluster does not verify.
  fs::copy_file(P("httpbin/cert-chain.pem"), P("sleep/cert-chain.pem"), fs::copy_options::overwrite_existing);
  EXPECT_EQ(Ctl("ca verify --dir " + P("sleep")).code, 1);
}

TEST_F(CaTest, BadInvocationsSayWhatIsWrong) {
  EXPECT_EQ(Ctl("ca intermediate --root " + P("nowhere") + " --cluster c --out " + P("c")).code, 1);
  const CmdResult missing = Ctl("ca intermediate --out " + P("c"));
  EXPECT_EQ(missing.code, 2);
  EXPECT_NE(missing.out.find("--root is required"), std::string::npos) << missing.out;
  ASSERT_EQ(Ctl("ca root --key-type ecdsa --out " + P("root")).code, 0);
  ASSERT_EQ(Ctl("ca intermediate --key-type ecdsa --root " + P("root") + " --cluster c1 --out " + P("c1")).code, 0);
  const CmdResult spiffe = Ctl("ca workload --dir " + P("c1") + " --spiffe not-a-spiffe-id --out " + P("w"));
  EXPECT_EQ(spiffe.code, 1);
  EXPECT_NE(spiffe.out.find("--spiffe must be a SPIFFE ID"), std::string::npos) << spiffe.out;
  EXPECT_EQ(Ctl("ca root --key-type dsa --out " + P("x")).code, 1);
  EXPECT_EQ(Ctl("frobnicate").code, 2);
}

}  // namespace

// --- meshgatectl's certificates, end to end through meshgate -----------------------------

namespace {

using meshgate::testing::OpensslServer;

TEST_F(CaTest, Cluster1WorkloadReachesCluster2BackendThroughMeshgateWithMutualTls) {
  MakeMesh();
  OpensslServer server(dir_);
  const uint16_t backend_port = server.port();
  ASSERT_NE(backend_port, 0) << server.Output();
  ASSERT_TRUE(meshgate::testing::WaitFor(
      [&] {
        const int fd = meshgate::testing::ConnectTcp(backend_port);
        if (fd >= 0) ::close(fd);
        return fd >= 0;
      },
      5000));
  std::ofstream(P("httpbin.yaml"))
      << "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\n"
         "metadata: {name: httpbin, namespace: bar}\n"
         "spec:\n  hosts: [httpbin.bar.svc.cluster.local]\n"
         "  ports: [{number: 8000, name: http, protocol: HTTP}]\n  resolution: STATIC\n"
         "  endpoints: [{address: 127.0.0.1, ports: {http: "
      << backend_port << "}}]\n---\n" << meshgate::testing::kCrossNetworkGateway;
  meshgate::testing::MeshgateProcess gw({"--mesh", P("httpbin.yaml")});
  ASSERT_TRUE(gw.running()) << gw.Log();
  const CmdResult client = meshgate::testing::MtlsCall(dir_, gw.port(), "outbound_.8000_._.httpbin.bar.global");
  EXPECT_EQ(client.code, 0) << client.out;
  EXPECT_NE(client.out.find("Verify return code: 0 (ok)"), std::string::npos) << client.out;
  EXPECT_NE(client.out.find("HTTP/1.0 200 ok"), std::string::npos) << client.out;  // s_server -www answered
  // The chain the client verified is the backend's, issued by cluster 2's
  // intermediate: meshgate relayed TLS, it did not terminate it.
  EXPECT_NE(client.out.find("i:O = Istio, CN = Intermediate CA, L = cluster2"), std::string::npos) << client.out;
  EXPECT_EQ(gw.Stop(), 0);
  EXPECT_EQ(gw.Counter("upstream_cx_total"), 1u) << gw.Stats();
}

}  // namespace
