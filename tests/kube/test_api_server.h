// Runs tests/kube/api_server.py (the test Kubernetes API server) as a child
// process over TLS with a certificate from the test PKI, and drives it with
// one JSON command per line on its stdin.
#pragma once

#include <sys/types.h>

#include <boost/json/object.hpp>

#include <string>

#include "base/kube/credentials.h"
#include "tests/support/pki.h"

namespace meshgate::kube::testing {

class TestApiServer {
 public:
  TestApiServer();
  ~TestApiServer();
  TestApiServer(const TestApiServer&) = delete;
  TestApiServer& operator=(const TestApiServer&) = delete;

  // One command ({"op": ...}); its reply. Fails the test on {"error": ...}.
  boost::json::object Command(boost::json::object command);

  // A fixture (tests/kube/fixtures/<file>) named `name` in `ns`.
  static boost::json::object Fixture(const std::string& file, const std::string& name,
                                     const std::string& ns = "default");
  // add/modify/delete on "/api/v1" pods (or another prefix/resource); the new resourceVersion.
  int64_t Change(const std::string& op, const boost::json::object& object, const std::string& prefix = "/api/v1",
                 const std::string& resource = "pods");
  int64_t Counter(const std::string& name) { return Command({{"op", "counts"}}).at(name).as_int64(); }

  // Credentials for 127.0.0.1:port: the test root as CA, the token file.
  Credentials Creds() const;
  // Replaces the token file the way the kubelet does (a new file renamed in).
  void WriteTokenFile(const std::string& token);
  // Replaces dir()/name the same way; its path.
  std::string ReplaceFile(const std::string& name, const std::string& text);

  uint16_t port() const { return port_; }
  const std::string& dir() const { return dir_; }
  const meshgate::testing::Pki& pki() const { return pki_; }
  std::string root_pem() const { return meshgate::testing::ToPem(pki_.root().cert.get()); }

 private:
  meshgate::testing::Pki pki_;
  std::string dir_;
  pid_t pid_ = -1;
  FILE* to_ = nullptr;
  FILE* from_ = nullptr;
  uint16_t port_ = 0;
};

}  // namespace meshgate::kube::testing
