// Unix-domain plumbing for handing listening sockets from one process to
// another: a safely created owner-only listening socket, the peer's
// credentials, one descriptor per message with SCM_RIGHTS, and the systemd
// readiness datagram. Plain POSIX, no Asio: the caller decides how to wait.
//
// References: unix(7) (SOCK_SEQPACKET, SCM_RIGHTS, SO_PEERCRED), cmsg(3)
// (CMSG_SPACE / CMSG_FIRSTHDR / CMSG_DATA), recvmsg(2) (MSG_CTRUNC,
// MSG_CMSG_CLOEXEC), sd_notify(3) (the NOTIFY_SOCKET datagram protocol).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"

namespace meshgate::io {

// A descriptor closed on destruction.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() { Reset(); }
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.Release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) {
      Reset();
      fd_ = other.Release();
    }
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int Release() {
    const int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void Reset();

 private:
  int fd_ = -1;
};

// Listens on a SOCK_SEQPACKET unix socket at `path`, mode 0600. A file
// already at `path` is unlinked only when it is a socket owned by our
// effective uid (a stale one left by a crash, or the previous owner's after
// it let go); anything else (a regular file, a socket of another user) is
// refused with an error naming it, never removed.
absl::StatusOr<UniqueFd> ListenUnixSeqpacket(const std::string& path);

// Why connecting to `path` failed, told apart so the caller can say which.
enum class ConnectFailure {
  kNone,
  kMissing,       // no file at the path (ENOENT)
  kStale,         // a socket file with nobody listening (ECONNREFUSED)
  kForeignOwner,  // the file, or the process behind it, belongs to another uid
  kNotSocket,     // something else lives at the path
  kOther,
};
struct UnixConnection {
  UniqueFd fd;
  ConnectFailure failure = ConnectFailure::kNone;
  std::string error;  // empty on success
  pid_t peer_pid = 0;
};
// Connects a SOCK_SEQPACKET socket to `path`. The file must be a socket
// owned by us or root, and so must the listening process (SO_PEERCRED).
UnixConnection ConnectUnixSeqpacket(const std::string& path);

// The peer of a connected unix socket (SO_PEERCRED, unix(7)).
struct PeerCredentials {
  pid_t pid = 0;
  uid_t uid = 0;
};
std::optional<PeerCredentials> PeerOf(int fd);
// Our effective uid, or root, may hand over our sockets.
bool TrustedUid(uid_t uid);

// One message of up to 4 KiB text with at most one descriptor attached
// (SCM_RIGHTS). fd < 0: text only. Blocking; false with `error` set on failure.
bool SendMessage(int socket, const std::string& text, int fd, std::string& error);
struct ReceivedMessage {
  std::string text;
  UniqueFd fd;  // invalid when none came; received close-on-exec
};
// Reads one message; an error names the cause (the peer closed, a truncated
// control message, more than one descriptor...). Waits up to timeout_ms.
absl::StatusOr<ReceivedMessage> ReceiveMessage(int socket, int timeout_ms);

// "ip:port" of a TCP socket that is listening (SO_ACCEPTCONN), or an error
// saying what it is instead.
absl::StatusOr<std::string> ListeningTcpAddress(int fd);

// sd_notify(3) without libsystemd: one datagram with `state` ("READY=1\n
// MAINPID=123") to $NOTIFY_SOCKET (a path, or "@name" for the abstract
// namespace). False (and nothing sent) when NOTIFY_SOCKET is unset.
bool SdNotify(const std::string& state, std::string* error = nullptr);

}  // namespace meshgate::io
