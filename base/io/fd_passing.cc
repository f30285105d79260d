#include "base/io/fd_passing.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "fmt/format.h"

namespace meshgate::io {

namespace {

constexpr size_t kMaxMessage = 4096;

std::string Errno(int e) { return std::strerror(e); }

// sockaddr_un for `path`; "@name" is Linux's abstract namespace (unix(7)).
bool UnixAddress(const std::string& path, sockaddr_un& addr, socklen_t& len) {
  addr = {};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(addr.sun_path)) return false;
  std::memcpy(addr.sun_path, path.data(), path.size());
  if (path[0] == '@') addr.sun_path[0] = '\0';
  len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + (path[0] == '@' ? 0 : 1));
  return true;
}

// Whether a unix socket bound to `path` listens, from /proc/net/unix (proc(5):
// the Flags column has __SO_ACCEPTCON, 0x10000, on listening sockets). Read
// rather than probed with a connect, which a live server would take as a
// takeover attempt.
bool SomeoneListensOn(const std::string& path) {
  std::ifstream in("/proc/net/unix");
  std::string line;
  std::getline(in, line);  // the header
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string num, refs, protocol, flags, type, state, inode, bound;
    if (!(fields >> num >> refs >> protocol >> flags >> type >> state >> inode >> bound)) continue;
    if (bound == path && (std::strtoul(flags.c_str(), nullptr, 16) & 0x10000) != 0) return true;
  }
  return false;
}

// A file already at the path of our listening socket: removed only if it is
// a socket we own (a stale one); anything else is someone else's.
absl::Status ClearStaleSocket(const std::string& path) {
  struct stat st {};
  if (lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return absl::OkStatus();
    return absl::UnavailableError(fmt::format("{}: {}", path, Errno(errno)));
  }
  if (!S_ISSOCK(st.st_mode)) {
    return absl::FailedPreconditionError(fmt::format("{} exists and is not a socket: refusing to replace it", path));
  }
  if (st.st_uid != geteuid()) {
    return absl::PermissionDeniedError(
        fmt::format("{} is a socket owned by uid {}, not ours ({}): refusing to replace it", path, st.st_uid, geteuid()));
  }
  // Ours, but is it stale? A live one (a process that has not handed over)
  // must stay: removing it would orphan that process's takeover socket.
  if (SomeoneListensOn(path)) {
    return absl::FailedPreconditionError(fmt::format("{} is in use by a running process: refusing to replace it", path));
  }
  if (unlink(path.c_str()) != 0 && errno != ENOENT) {
    return absl::UnavailableError(fmt::format("{}: cannot remove the stale socket: {}", path, Errno(errno)));
  }
  return absl::OkStatus();
}

}  // namespace

void UniqueFd::Reset() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

absl::StatusOr<UniqueFd> ListenUnixSeqpacket(const std::string& path) {
  sockaddr_un addr;
  socklen_t len = 0;
  if (path.empty() || path[0] == '@' || !UnixAddress(path, addr, len)) {
    return absl::InvalidArgumentError(fmt::format("\"{}\": not a usable unix socket path (at most 107 bytes)", path));
  }
  if (auto status = ClearStaleSocket(path); !status.ok()) return status;
  UniqueFd fd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd.valid()) return absl::UnavailableError(fmt::format("socket: {}", Errno(errno)));
  // The mode comes from the umask at bind(2) (unix(7): "the socket's file
  // permissions are those of the process umask"); 0177 gives 0600. The window
  // is one call on the control thread; SO_PEERCRED is checked regardless.
  const mode_t old_mask = umask(0177);
  const int bound = ::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), len);
  const int bind_errno = errno;
  umask(old_mask);
  if (bound != 0) return absl::UnavailableError(fmt::format("bind {}: {}", path, Errno(bind_errno)));
  if (chmod(path.c_str(), 0600) != 0 || ::listen(fd.get(), 4) != 0) {
    const int e = errno;
    unlink(path.c_str());
    return absl::UnavailableError(fmt::format("listen {}: {}", path, Errno(e)));
  }
  return fd;
}

std::optional<PeerCredentials> PeerOf(int fd) {
  ucred cred{};
  socklen_t len = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return std::nullopt;
  return PeerCredentials{cred.pid, cred.uid};
}

bool TrustedUid(uid_t uid) { return uid == geteuid() || uid == 0; }

UnixConnection ConnectUnixSeqpacket(const std::string& path) {
  UnixConnection out;
  auto fail = [&](ConnectFailure why, std::string text) {
    out.fd.Reset();
    out.failure = why;
    out.error = std::move(text);
    return std::move(out);
  };
  sockaddr_un addr;
  socklen_t len = 0;
  if (!UnixAddress(path, addr, len)) return fail(ConnectFailure::kOther, "not a usable unix socket path");
  struct stat st {};
  if (path[0] != '@') {
    if (lstat(path.c_str(), &st) != 0) {
      return fail(errno == ENOENT ? ConnectFailure::kMissing : ConnectFailure::kOther,
                  fmt::format("no socket at {}: {}", path, Errno(errno)));
    }
    if (!S_ISSOCK(st.st_mode)) return fail(ConnectFailure::kNotSocket, fmt::format("{} is not a socket", path));
    if (!TrustedUid(st.st_uid)) {
      return fail(ConnectFailure::kForeignOwner,
                  fmt::format("{} is owned by uid {}, neither us ({}) nor root", path, st.st_uid, geteuid()));
    }
  }
  out.fd = UniqueFd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  if (!out.fd.valid()) return fail(ConnectFailure::kOther, fmt::format("socket: {}", Errno(errno)));
  if (::connect(out.fd.get(), reinterpret_cast<sockaddr*>(&addr), len) != 0) {
    const int e = errno;
    if (e == ECONNREFUSED) {
      return fail(ConnectFailure::kStale, fmt::format("{} is stale: nobody listens on it ({})", path, Errno(e)));
    }
    return fail(ConnectFailure::kOther, fmt::format("connect {}: {}", path, Errno(e)));
  }
  const auto peer = PeerOf(out.fd.get());
  if (!peer) return fail(ConnectFailure::kOther, fmt::format("SO_PEERCRED: {}", Errno(errno)));
  if (!TrustedUid(peer->uid)) {
    return fail(ConnectFailure::kForeignOwner,
                fmt::format("the process behind {} (pid {}) runs as uid {}, neither us ({}) nor root", path, peer->pid,
                            peer->uid, geteuid()));
  }
  out.peer_pid = peer->pid;
  return out;
}

bool SendMessage(int socket, const std::string& text, int fd, std::string& error) {
  if (text.empty() || text.size() > kMaxMessage) {
    error = "message must be 1..4096 bytes";
    return false;
  }
  iovec iov{const_cast<char*>(text.data()), text.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  if (fd >= 0) {
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));
  }
  ssize_t n;
  do {
    n = ::sendmsg(socket, &msg, MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n != static_cast<ssize_t>(text.size())) {
    error = n < 0 ? Errno(errno) : "short send";
    return false;
  }
  return true;
}

namespace {

// The descriptors of one received message; any beyond the first are closed
// (a peer must not make us hold descriptors we did not ask for).
absl::Status TakeDescriptor(msghdr& msg, UniqueFd& out) {
  size_t count = 0;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < n; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      if (count++ == 0) {
        out = UniqueFd(fd);
      } else {
        ::close(fd);
      }
    }
  }
  if (count > 1) return absl::InvalidArgumentError(fmt::format("{} descriptors in one message (at most 1)", count));
  if ((msg.msg_flags & MSG_CTRUNC) != 0) return absl::InvalidArgumentError("control message truncated (MSG_CTRUNC)");
  if ((msg.msg_flags & MSG_TRUNC) != 0) return absl::InvalidArgumentError("message longer than 4096 bytes");
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ReceivedMessage> ReceiveMessage(int socket, int timeout_ms) {
  pollfd p{socket, POLLIN, 0};
  int ready;
  do {
    ready = ::poll(&p, 1, timeout_ms);
  } while (ready < 0 && errno == EINTR);
  if (ready == 0) return absl::DeadlineExceededError(fmt::format("no message within {} ms", timeout_ms));
  if (ready < 0) return absl::UnavailableError(fmt::format("poll: {}", Errno(errno)));
  std::string text(kMaxMessage, '\0');
  iovec iov{text.data(), text.size()};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 4)] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n;
  do {
    n = ::recvmsg(socket, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return absl::UnavailableError(fmt::format("recvmsg: {}", Errno(errno)));
  ReceivedMessage out;
  if (auto status = TakeDescriptor(msg, out.fd); !status.ok()) return status;
  if (n == 0) return absl::UnavailableError("the peer closed the connection");
  text.resize(static_cast<size_t>(n));
  out.text = std::move(text);
  return out;
}

absl::StatusOr<std::string> ListeningTcpAddress(int fd) {
  int type = 0, listening = 0;
  socklen_t len = sizeof type;
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0) return absl::InvalidArgumentError(Errno(errno));
  len = sizeof listening;
  if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0) return absl::InvalidArgumentError(Errno(errno));
  if (type != SOCK_STREAM) return absl::InvalidArgumentError("not a stream socket");
  if (!listening) return absl::InvalidArgumentError("not listening (SO_ACCEPTCONN is 0)");
  sockaddr_storage ss{};
  len = sizeof ss;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return absl::InvalidArgumentError(Errno(errno));
  char ip[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
    return fmt::format("{}:{}", ip, ntohs(a->sin_port));
  }
  if (ss.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
    inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
    return fmt::format("[{}]:{}", ip, ntohs(a->sin6_port));
  }
  return absl::InvalidArgumentError("not a TCP socket");
}

bool SdNotify(const std::string& state, std::string* error) {
  const char* target = std::getenv("NOTIFY_SOCKET");
  if (target == nullptr || *target == '\0') return false;
  sockaddr_un addr;
  socklen_t len = 0;
  if (!UnixAddress(target, addr, len)) {
    if (error != nullptr) *error = fmt::format("NOTIFY_SOCKET \"{}\" is not a usable unix socket path", target);
    return false;
  }
  UniqueFd fd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  const bool sent = fd.valid() && ::sendto(fd.get(), state.data(), state.size(), MSG_NOSIGNAL,
                                           reinterpret_cast<sockaddr*>(&addr), len) == static_cast<ssize_t>(state.size());
  if (!sent && error != nullptr) *error = fmt::format("sd_notify to {}: {}", target, Errno(errno));
  return sent;
}

}  // namespace meshgate::io
