// Two clusters' CA material from meshgatectl, and real mTLS peers holding
// it: a cluster-2 `openssl s_server` and a cluster-1 `openssl s_client`.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <tuple>
#include <vector>

#include "gtest/gtest.h"
#include "tests/control/run_command.h"
#include "tests/support/meshgate_process.h"

extern char** environ;

namespace meshgate::testing {

// DIR/root, DIR/cluster1 and DIR/cluster2 (intermediates), DIR/sleep (a
// cluster-1 workload) and DIR/httpbin (cluster 2); ECDSA for speed.
inline void MakeCaMaterial(const std::string& dir) {
  ASSERT_EQ(Ctl("ca root --key-type ecdsa --out " + dir + "/root").code, 0);
  for (const char* c : {"cluster1", "cluster2"}) {
    const CmdResult r =
        Ctl("ca intermediate --key-type ecdsa --root " + dir + "/root --cluster " + c + " --out " + dir + "/" + c);
    ASSERT_EQ(r.code, 0) << r.out;
  }
  for (const auto& [cluster, spiffe, out] :
       {std::tuple<const char*, const char*, const char*>{"cluster1", "spiffe://cluster.local/ns/foo/sa/sleep", "sleep"},
        {"cluster2", "spiffe://cluster.local/ns/bar/sa/httpbin", "httpbin"}}) {
    const CmdResult r = Ctl(std::string("ca workload --dir ") + dir + "/" + cluster + " --spiffe " + spiffe +
                            " --out " + dir + "/" + out);
    ASSERT_EQ(r.code, 0) << r.out;
  }
}

// `openssl s_server -www` with cluster 2's httpbin identity, requiring a
// client certificate that chains to the shared root. It binds a port of its
// own choosing and is ready when it prints "ACCEPT 127.0.0.1:PORT".
class OpensslServer {
 public:
  explicit OpensslServer(const std::string& dir) : out_(dir + "/s_server.out") {
    const std::vector<std::string> args = {
        "/usr/bin/openssl", "s_server", "-accept", "127.0.0.1:0", "-cert",
        dir + "/httpbin/cert.pem", "-key", dir + "/httpbin/key.pem", "-cert_chain",
        dir + "/httpbin/cert-chain.pem", "-CAfile", dir + "/httpbin/root-cert.pem", "-Verify", "2",
        "-verify_return_error", "-www"};
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, out_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    if (posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), environ) != 0) pid_ = -1;
    posix_spawn_file_actions_destroy(&actions);
    if (pid_ > 0) WaitFor([&] { return (port_ = AcceptPort()) != 0; }, 10000);
  }
  ~OpensslServer() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    int status = 0;
    ::waitpid(pid_, &status, 0);
  }
  OpensslServer(const OpensslServer&) = delete;
  OpensslServer& operator=(const OpensslServer&) = delete;

  // The port it listens on; 0 when it did not come up (see Output()).
  uint16_t port() const { return port_; }
  std::string Output() const { return Read(out_); }

 private:
  uint16_t AcceptPort() const {
    const std::string text = Read(out_);
    const size_t at = text.find("ACCEPT 127.0.0.1:");
    const size_t end = text.find('\n', at);
    if (at == std::string::npos || end == std::string::npos) return 0;
    const size_t digits = at + std::strlen("ACCEPT 127.0.0.1:");
    return static_cast<uint16_t>(std::atoi(text.substr(digits, end - digits).c_str()));
  }

  std::string out_;
  pid_t pid_ = -1;
  uint16_t port_ = 0;
};

// One HTTP/1.0 request with cluster 1's sleep identity to 127.0.0.1:port
// with `sni`, verifying the server against the shared root.
inline CmdResult MtlsCall(const std::string& dir, uint16_t port, const std::string& sni) {
  return Shell("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | timeout 10 openssl s_client -connect 127.0.0.1:" +
               std::to_string(port) + " -servername " + sni + " -cert " + dir + "/sleep/cert.pem -key " + dir +
               "/sleep/key.pem -cert_chain " + dir + "/sleep/cert-chain.pem -CAfile " + dir +
               "/sleep/root-cert.pem -verify_return_error -ign_eof -alpn istio-peer-exchange,istio");
}

}  // namespace meshgate::testing
