// The test API server as a child process (see test_api_server.h).
#include "tests/kube/test_api_server.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace meshgate::kube::testing {

namespace json = boost::json;

namespace {

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  if (!out) throw std::runtime_error("cannot write " + path);
}

std::string ReadLine(FILE* in) {
  std::string line;
  for (int c; (c = std::fgetc(in)) != EOF && c != '\n';) line += static_cast<char>(c);
  return line;
}

}  // namespace

TestApiServer::TestApiServer() {
  const char* tmp = std::getenv("TMPDIR");
  std::string templ = std::string(tmp != nullptr ? tmp : "/tmp") + "/kube-api-XXXXXX";
  if (mkdtemp(templ.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  dir_ = templ;
  // The API server's certificate names the service and, like a real one, its IP.
  // (Pki::Issue joins DNS SANs with ",DNS:", so the IP SAN rides on the last one.)
  const auto server = pki_.Issue(1, "spiffe://cluster.local/ns/default/sa/kube-apiserver",
                                 {"kubernetes.default.svc", "localhost,IP:127.0.0.1"});
  WriteFile(dir_ + "/server.pem", meshgate::testing::ToPem(server.leaf.cert.get()) +
                                      meshgate::testing::ToPem(server.intermediate->cert.get()));
  WriteFile(dir_ + "/server.key", meshgate::testing::ToPem(server.leaf.key.get()));
  WriteFile(dir_ + "/ca.pem", root_pem());
  WriteTokenFile("token-1");

  int in[2], out[2];
  if (pipe(in) != 0 || pipe(out) != 0) throw std::runtime_error("pipe failed");
  pid_ = fork();
  if (pid_ == 0) {
    dup2(in[0], 0);
    dup2(out[1], 1);
    close(in[1]);
    close(out[0]);
    const std::string cert = dir_ + "/server.pem", key = dir_ + "/server.key", ca = dir_ + "/ca.pem";
    execl(PYTHON3_BIN, PYTHON3_BIN, API_SERVER_PY, "--cert", cert.c_str(), "--key", key.c_str(), "--ca",
          ca.c_str(), "--token", "token-1", static_cast<char*>(nullptr));
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  to_ = fdopen(in[1], "w");
  from_ = fdopen(out[0], "r");
  const std::string hello = ReadLine(from_);
  json::value v = json::parse(hello);
  port_ = static_cast<uint16_t>(v.at("port").as_int64());
}

TestApiServer::~TestApiServer() {
  if (to_ != nullptr) fclose(to_);  // EOF on stdin stops the server
  if (pid_ > 0) {
    int status = 0;
    waitpid(pid_, &status, 0);
  }
  if (from_ != nullptr) fclose(from_);
  std::system(("rm -rf '" + dir_ + "'").c_str());
}

json::object TestApiServer::Command(json::object command) {
  const std::string line = json::serialize(command) + "\n";
  std::fputs(line.c_str(), to_);
  std::fflush(to_);
  const std::string reply = ReadLine(from_);
  json::value v = json::parse(reply);
  EXPECT_FALSE(v.as_object().contains("error")) << line << " -> " << reply;
  return v.as_object();
}

json::object TestApiServer::Fixture(const std::string& file, const std::string& name, const std::string& ns) {
  std::ifstream in(std::string(FIXTURES_DIR) + "/" + file);
  std::stringstream text;
  text << in.rdbuf();
  json::object o = json::parse(text.str()).as_object();
  o["metadata"].as_object()["name"] = name;
  o["metadata"].as_object()["namespace"] = ns;
  return o;
}

int64_t TestApiServer::Change(const std::string& op, const json::object& object, const std::string& prefix,
                              const std::string& resource) {
  return Command({{"op", op}, {"prefix", prefix}, {"resource", resource}, {"object", object}}).at("rv").as_int64();
}

Credentials TestApiServer::Creds() const {
  Credentials c;
  c.source = "test";
  c.host = "127.0.0.1";
  c.port = port_;
  c.ca_pem = root_pem();
  c.token_file = dir_ + "/token";
  return c;
}

void TestApiServer::WriteTokenFile(const std::string& token) { ReplaceFile("token", token + "\n"); }

std::string TestApiServer::ReplaceFile(const std::string& name, const std::string& text) {
  const std::string path = dir_ + "/" + name;
  WriteFile(path + ".new", text);
  if (std::rename((path + ".new").c_str(), path.c_str()) != 0) throw std::runtime_error("rename failed");
  return path;
}

}  // namespace meshgate::kube::testing
