// The one interface both relay backends implement (issue 17, part 1: epoll-ET
// vs io_uring for the relay loop). Completion-shaped, because io_uring is
// completion-based and an edge-triggered epoll loop turns readiness into
// completions cheaply (it calls recv/send itself and reports the result); the
// session logic in relay.cc is written once against it.
//
// Ownership of received bytes is the point where the two backends differ, so
// it is hidden here: OnData's bytes are valid only during the call, and Send()
// either sends them at once (epoll), borrows the provided buffer they sit in
// until its send completes (io_uring, zero copy), or copies what is left.
#pragma once

#include <netinet/in.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace uring_proto {

// A backend's per-socket state (each backend derives its own); opaque to sessions.
class Sock {
 public:
  virtual ~Sock() = default;
};

// What a socket's owner hears. Calls come only from Loop::Run's thread.
class SockEvents {
 public:
  virtual ~SockEvents() = default;
  virtual void OnConnected(Sock* s, int err) = 0;                 // Connect()'s result, 0 or -errno
  virtual void OnData(Sock* s, const char* data, size_t len) = 0; // valid during the call only
  virtual void OnEnd(Sock* s, int err) = 0;   // read side ended: 0 = EOF (peer's FIN), else -errno
  virtual void OnDrained(Sock* s) = 0;        // everything Send() queued on s is in the kernel
};

struct LoopStats {
  uint64_t waits = 0;       // epoll_wait / io_uring_enter calls from the loop turn
  uint64_t submits = 0;     // extra io_uring_enter calls because the SQ filled up
  uint64_t completions = 0; // epoll events / CQEs handled
  uint64_t sessions = 0;    // accepted connections
};

class Loop {
 public:
  using AcceptFn = std::function<void(int fd)>;
  virtual ~Loop() = default;
  // Accepts on a listening socket (made here, not inherited), calling
  // on_accept with each non-blocking, close-on-exec connection.
  virtual void Listen(int listen_fd, AcceptFn on_accept) = 0;
  // Takes an accepted socket; OnData starts at once.
  virtual Sock* Adopt(int fd, SockEvents* owner) = 0;
  // Non-blocking connect; OnConnected(s, 0) then OnData, or OnConnected(s, -errno).
  virtual Sock* Connect(const sockaddr_in& to, SockEvents* owner) = 0;
  // Queues bytes to s. true while s has no backlog worth pausing for; false:
  // the caller should Pause() its source until OnDrained(s).
  virtual bool Send(Sock* s, const char* data, size_t len) = 0;
  virtual void Pause(Sock* s) = 0;    // stop delivering OnData soon (bytes in flight still come)
  virtual void Resume(Sock* s) = 0;   // idempotent
  virtual void ShutdownWrite(Sock* s) = 0;  // SHUT_WR once everything queued is sent
  // No more events for s. graceful: queued bytes are sent first; otherwise
  // they are dropped (an error path).
  virtual void Close(Sock* s, bool graceful) = 0;
  // Runs until `stop` is set (checked at least every 200 ms).
  virtual void Run(const std::atomic<bool>& stop) = 0;
  virtual LoopStats Stats() const = 0;
};

std::unique_ptr<Loop> NewEpollLoop();
// nullptr with `error` set when io_uring or a feature it needs is unavailable
// (kernel.io_uring_disabled, seccomp, a kernel older than 5.19, no liburing).
std::unique_ptr<Loop> NewUringLoop(std::string& error);

}  // namespace uring_proto
