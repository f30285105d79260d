// Binary upgrade without dropping a connection (README "Upgrades"): the
// running gateway hands its listening sockets to its successor over a unix
// socket, as HAProxy does with `stats socket ... expose-fd listeners` and
// `haproxy -x <socket>` (HAProxy management guide, "Seamless reload").
//
// The exchange, on a SOCK_SEQPACKET socket (unix(7): message boundaries are
// kept, so one message carries one descriptor with SCM_RIGHTS and its text):
//   old -> new  "meshgate-takeover/1 pid=<pid> listeners=<n>"
//   old -> new  n x "listener <role> <index> <ip:port>" + the socket
//   new -> old  "taken"      (the new one accepts on them already)
//   old -> new  "released"   (the old one stopped accepting, removed its
//                             unix socket, and drains its open sessions)
// Roles: data (index: the old process's worker), metrics, readiness, admin.
#pragma once

#include <sys/types.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "base/io/fd_passing.h"

namespace boost::asio {
class io_context;
}

namespace meshgate::proxy {

// Why a takeover did not happen, on either side (meshgate_takeover_failures_total).
enum class TakeoverFailure {
  // The new process: it starts with a normal bind instead.
  kNoSocket,        // nothing at the path
  kStaleSocket,     // a socket file nobody listens on
  kForeignSocket,   // the file or the process behind it is another uid's
  kBrokenExchange,  // no or a malformed offer, a broken listener message
  kAddressChanged,  // a handed listener is not on the configured address (bound anew)
  kNotConfirmed,    // the old process did not answer "released"
  // The old process: it keeps serving.
  kPeerUid,    // a successor of another uid
  kBusy,       // a takeover already under way
  kDraining,   // nothing to hand over
  kAbandoned,  // the successor went away before "taken"
  kCount,
};
const char* TakeoverFailureName(TakeoverFailure failure);

// Listener roles, in this order (meshgate_takeover_listeners_*_total{role}).
inline constexpr std::array<const char*, 4> kTakeoverRoles = {"data", "metrics", "readiness", "admin"};

// What takeovers did in this process, for /stats/prometheus. Written on the
// control loop, read by the metrics handler.
struct TakeoverCounters {
  std::array<std::atomic<uint64_t>, kTakeoverRoles.size()> received{};  // taken from the old process
  std::array<std::atomic<uint64_t>, kTakeoverRoles.size()> handed{};    // offered to a successor
  std::array<std::atomic<uint64_t>, static_cast<size_t>(TakeoverFailure::kCount)> failures{};
  std::atomic<uint64_t> completed{0};  // successors that took over from this process

  void Fail(TakeoverFailure why) { ++failures[static_cast<size_t>(why)]; }
  // `role` one of kTakeoverRoles; others are not counted.
  static void Count(std::array<std::atomic<uint64_t>, kTakeoverRoles.size()>& by_role, const std::string& role);
};

// One listening socket as the old process describes it.
struct HandedListener {
  std::string role;     // "data", "metrics", "readiness", "admin"
  int index = 0;        // data: the old process's worker
  std::string address;  // "ip:port" it listens on
  int fd = -1;          // the old side's (borrowed); the new side's (owned by `owned`)
  io::UniqueFd owned;
};

// The new process's side.
class TakeoverClient {
 public:
  // Connects to `path` and receives every listener. On any failure (missing,
  // stale or foreign-owned socket, a broken exchange) logs the cause and
  // returns null: the caller starts with a normal bind.
  // `counters` (may be null) counts what was received and why not.
  static std::unique_ptr<TakeoverClient> Connect(const std::string& path, TakeoverCounters* counters = nullptr);

  // The listeners of `role` that listen on `configured` (port 0: any port on
  // that IP); ownership passes to the caller. A listener of that role on
  // another address is closed with a log line (the caller binds anew).
  std::vector<io::UniqueFd> Take(const std::string& role, const std::string& configured);
  // Once accepting on what it took: "taken", then waits for "released".
  absl::Status Complete(int timeout_ms);
  pid_t old_pid() const { return old_pid_; }
  size_t received() const { return received_; }

 private:
  absl::Status Confirm(int timeout_ms);

  io::UniqueFd socket_;
  std::vector<HandedListener> listeners_;
  pid_t old_pid_ = 0;
  size_t received_ = 0;
  TakeoverCounters* counters_ = nullptr;
};

// The running process's side: serves its listeners at `path` on the control
// loop. One successor at a time; peers of another uid (SO_PEERCRED, not us
// nor root) are refused and counted.
class TakeoverServer {
 public:
  struct Hooks {
    // The listeners to hand over (fds borrowed); empty: refuse (draining).
    std::function<std::vector<HandedListener>()> listeners;
    // The successor accepts: stop accepting and drain. Called before
    // "released" is sent.
    std::function<void(pid_t successor)> on_taken;
  };
  struct Stats {
    uint64_t completed = 0;
    uint64_t refused_uid = 0;       // peer of another uid
    uint64_t refused_busy = 0;      // a takeover already under way
    uint64_t refused_draining = 0;  // nothing to hand over
    uint64_t abandoned = 0;         // the successor went away before "taken"
  };

  // `counters` (may be null, else outlives the server) counts handovers and refusals.
  static absl::StatusOr<std::unique_ptr<TakeoverServer>> Start(boost::asio::io_context& io, const std::string& path,
                                                               Hooks hooks, TakeoverCounters* counters = nullptr);
  ~TakeoverServer();  // closes; removes the socket file if it is still ours
  TakeoverServer(const TakeoverServer&) = delete;
  TakeoverServer& operator=(const TakeoverServer&) = delete;

  Stats stats() const;

 private:
  struct Impl;
  explicit TakeoverServer(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

// "ip:port" `actual` is what `configured` asks for (its port 0: any port).
bool SameListenAddress(const std::string& configured, const std::string& actual);

}  // namespace meshgate::proxy
