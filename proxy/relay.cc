#include "proxy/relay.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <sys/epoll.h>

namespace meshgate::proxy {
namespace {
constexpr size_t kSpliceChunk = 64 * 1024;  // default pipe capacity
constexpr size_t kCopyBuffer = 16 * 1024;
constexpr int kRoundsPerTurn = 16;          // then yield to other sessions
// Private errno values for Pump's helpers (outside the range the kernel uses).
constexpr int kDrained = 100001;    // a short read: wait for more
constexpr int kNoPipe = 100002;     // no pipe to be had: copy instead
constexpr int kDstFailed = 100003;  // sending to dst failed
}  // namespace

std::span<uint8_t> ScratchBuffer() {
  static thread_local uint8_t scratch[kSpliceChunk];
  return std::span<uint8_t>(scratch, sizeof scratch);
}

PipePool::~PipePool() {
  for (const Pipe& p : idle_) {
    ::close(p.read_fd);
    ::close(p.write_fd);
  }
}

bool PipePool::Acquire(Pipe& out) {
  if (!idle_.empty()) {
    out = idle_.back();
    idle_.pop_back();
    return true;
  }
  if (open_ >= max_open_) return false;
  int fds[2];
  if (::pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) return false;
  out = Pipe{fds[0], fds[1]};
  ++open_;
  return true;
}

void PipePool::SetMaxOpen(size_t max_open) {
  max_open_ = max_open;
  while (open_ > max_open_ && !idle_.empty()) {  // the rest close as they come back
    Discard(idle_.back());
    idle_.pop_back();
  }
}

void PipePool::Release(Pipe pipe) {
  if (idle_.size() < max_idle_ && open_ <= max_open_) {
    idle_.push_back(pipe);
    return;
  }
  Discard(pipe);
}

void PipePool::Discard(Pipe pipe) {
  ::close(pipe.read_fd);
  ::close(pipe.write_fd);
  --open_;
}

Flow::Flow(int src, int dst, bool splice, PipePool& pipes, Counter& bytes_counter, Counter& copy_fallbacks,
           FlowOwner& owner)
    : src_(src),
      dst_(dst),
      splice_(splice),
      pipes_(pipes),
      bytes_counter_(bytes_counter),
      copy_fallbacks_(copy_fallbacks),
      owner_(owner) {}

Flow::~Flow() {
  if (!have_pipe_) return;
  if (in_pipe_ == 0) {
    pipes_.Release(pipe_);
  } else {  // bytes left in it: never hand a dirty pipe to another flow
    pipes_.Discard(pipe_);
  }
}

void Flow::Moved(size_t n) {
  bytes_ += n;
  bytes_counter_.Inc(n);
  owner_.OnFlowProgress(*this, n);
}

void Flow::Finish(End end) {
  if (finished_) return;
  finished_ = true;
  wait_ = Wait::kNone;
  owner_.OnFlowEnd(*this, end);
}

void Flow::ForwardEof() {
  if (opposite_ == nullptr || !opposite_->finished()) ::shutdown(dst_, SHUT_WR);  // the peer may be gone: fine
  Finish(End::kEof);
}

void Flow::Start(uint32_t src_events, bool read_now) {
  wait_ = Wait::kRead;
  OnSrcEvents(read_now ? src_events | EPOLLIN : src_events);
}

void Flow::WaitFor(Wait what) {
  wait_ = what;
  if (what == Wait::kRead) {
    bulk_ = false;  // the next burst starts with a plain read
    if (have_pipe_) {
      pipes_.Release(pipe_);  // empty here: give it back while we wait
      have_pipe_ = false;
    }
  }
}

// Readiness is edge-triggered: each arrival of data (or of the peer's FIN or
// RST) is one edge on src, each time dst's send buffer frees up after a full
// one is an edge on dst. The flow acts only on the edge it waits for.
void Flow::OnSrcEvents(uint32_t events) {
  // A short read means drained, but for two things an edge announces once:
  // TCP urgent data (EPOLLPRI: recv stops short at the urgent mark with
  // bytes still queued), and the peer's FIN or an error (EPOLLRDHUP, EPOLLHUP,
  // EPOLLERR: a recv that returns the last bytes does not return the EOF
  // queued behind them). After either, the flow reads on to EAGAIN or EOF.
  if (events & kReadToEndEvents) read_to_end_ = true;
  if (wait_ == Wait::kRead && (events & (EPOLLIN | kReadToEndEvents))) Pump();
}

void Flow::OnDstEvents(uint32_t events) {
  if (wait_ == Wait::kWrite && (events & (EPOLLOUT | EPOLLHUP | EPOLLERR))) Pump();
}

// Sends what the flow holds (the pipe's bytes, or `pending_`). False when it
// stopped: dst is full (waits for it) or failed (finished).
bool Flow::Flush() {
  for (;;) {
    if (in_pipe_ == 0 && pending_size_ == pending_sent_) return true;
    const ssize_t n = in_pipe_ > 0 ? ::splice(pipe_.read_fd, nullptr, dst_, nullptr, in_pipe_,
                                              SPLICE_F_MOVE | SPLICE_F_NONBLOCK)
                                   : ::send(dst_, pending_.get() + pending_sent_, pending_size_ - pending_sent_,
                                            MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n > 0) {
      if (in_pipe_ > 0) {
        in_pipe_ -= static_cast<uint32_t>(n);
      } else if ((pending_sent_ += static_cast<uint32_t>(n)) == pending_size_) {
        pending_.reset();  // flushed: an idle flow holds no memory
        pending_size_ = pending_sent_ = 0;
      }
      Moved(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      WaitFor(Wait::kWrite);
      return false;
    }
    Finish(End::kDstError);
    return false;
  }
}

// Small reads are copied through the worker's scratch buffer: recv, then
// send, and no memory held by the flow. A read that fills the buffer means
// bulk, and the flow splices (zero-copy, through a pooled pipe) until a read
// comes up short. Whatever dst does not take at once waits in the pipe
// (splice) or in `pending_` (copy), and src is not read again until it has
// gone, so a slow reader stalls the fast writer instead of growing memory.
//
// A short recv means src is drained, so the flow waits without reading again
// to see EAGAIN: the next arrival is a new edge. The exceptions read on: a
// short splice (it stops at boundaries recv would cross), and a source whose
// urgent data or FIN an event announced (OnSrcEvents).
void Flow::Pump() {
  wait_ = Wait::kNone;
  for (int round = 0; round < kRoundsPerTurn; ++round) {
    if (!Flush()) return;
    if (src_eof_) return ForwardEof();
    const ssize_t n = bulk_ ? SpliceIn(src_) : CopyThrough(src_, dst_);
    if (n > 0) continue;
    if (n == 0) {
      src_eof_ = true;
      continue;
    }
    if (errno == EINTR) continue;
    if (errno == kDrained && read_to_end_) continue;  // read on to EAGAIN or EOF
    if (errno == kDrained || errno == EAGAIN || errno == EWOULDBLOCK) return WaitFor(Wait::kRead);
    if (errno == kNoPipe) {
      // Out of pipes (maxPipes, fd or pipe-page limits): copies from now on.
      copy_fallbacks_.Inc();
      splice_ = false;
      bulk_ = false;
      continue;
    }
    return Finish(errno == kDstFailed ? End::kDstError : End::kSrcError);
  }
  // Busy flow: let other sessions on this thread run before continuing.
  owner_.ResumeLater(*this);
}

// recv into the scratch buffer and send at once; what dst does not take goes
// to `pending_`. Returns bytes read (> 0), 0 at EOF, or -1 with errno
// (kDrained after a short read, kDstFailed when dst failed).
ssize_t Flow::CopyThrough(int src_fd, int dst_fd) {
  uint8_t* const scratch = ScratchBuffer().data();
  const size_t want = splice_ ? kSpliceChunk : kCopyBuffer;
  const ssize_t n = ::recv(src_fd, scratch, want, MSG_DONTWAIT);
  if (n <= 0) return n;
  ssize_t sent = ::send(dst_fd, scratch, static_cast<size_t>(n), MSG_DONTWAIT | MSG_NOSIGNAL);
  if (sent < 0) {
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      errno = kDstFailed;
      return -1;
    }
    sent = 0;
  }
  if (sent > 0) Moved(static_cast<size_t>(sent));
  if (sent < n) {
    pending_size_ = static_cast<uint32_t>(n - sent);
    pending_sent_ = 0;
    pending_ = std::make_unique<uint8_t[]>(pending_size_);
    std::memcpy(pending_.get(), scratch + sent, pending_size_);
    return n;  // the loop flushes it before reading again
  }
  if (static_cast<size_t>(n) == want) {
    bulk_ = splice_;  // more is likely queued: splice it (copy mode: read on)
    return n;
  }
  errno = kDrained;
  return -1;
}

// splice src into the (empty) pipe. Returns bytes moved, 0 at EOF, or -1
// with errno (kNoPipe when none can be had).
ssize_t Flow::SpliceIn(int src_fd) {
  if (!have_pipe_) {
    if (!pipes_.Acquire(pipe_)) {
      errno = kNoPipe;
      return -1;
    }
    have_pipe_ = true;
  }
  const ssize_t n = ::splice(src_fd, nullptr, pipe_.write_fd, nullptr, kSpliceChunk,
                             SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
  if (n <= 0) return n;
  in_pipe_ = static_cast<uint32_t>(n);
  // Short: the pipe empties, then a plain recv sees EAGAIN or what is left.
  if (static_cast<size_t>(n) < kSpliceChunk) bulk_ = false;
  return n;
}

}  // namespace meshgate::proxy
