// One direction of a relayed connection, src -> dst, driven by the worker's
// edge-triggered reactor (proxy/reactor.h). In splice mode (the default)
// small reads are copied through a per-worker scratch buffer and bulk is
// spliced (zero-copy) through a pooled pipe; copy mode only copies. Either
// way at most one chunk is in flight, so a slow reader stalls the fast writer
// instead of growing memory, and an idle flow holds no buffer and no pipe.
#pragma once

#include <sys/epoll.h>
#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <span>
#include <vector>

#include "proxy/stats.h"

namespace meshgate::proxy {

// Per-worker pool of pipes. A flow holds a pipe only while bytes are in it,
// so idle connections pin no pipes (and no file descriptors beyond sockets).
class PipePool {
 public:
  struct Pipe {
    int read_fd = -1;
    int write_fd = -1;
  };
  // max_open: pipes this pool may have at once (idle and in use).
  explicit PipePool(size_t max_idle = 64, size_t max_open = SIZE_MAX)
      : max_idle_(max_idle), max_open_(max_open) {}
  ~PipePool();
  PipePool(const PipePool&) = delete;
  PipePool& operator=(const PipePool&) = delete;

  // False when no pipe can be had (the cap, or fd and pipe-page limits):
  // the caller falls back to copying.
  bool Acquire(Pipe& out);
  // A new cap (a reload); pipes over it close as they come back.
  void SetMaxOpen(size_t max_open);
  // Only empty pipes may be returned.
  void Release(Pipe pipe);
  // A pipe with bytes still in it is closed, never reused.
  void Discard(Pipe pipe);

 private:
  size_t max_idle_;
  size_t max_open_;
  size_t open_ = 0;  // idle and in use
  std::vector<Pipe> idle_;
};

// The worker thread's scratch buffer (64 KiB): the relay's copies and the
// hello reads go through it, so no session holds a buffer of its own.
std::span<uint8_t> ScratchBuffer();

// Events after which a short read no longer means the socket is drained:
// urgent data (recv stops at the urgent mark) and the peer's FIN or an error
// (the EOF queued behind the last bytes). Read on to EAGAIN or EOF after one.
inline constexpr uint32_t kReadToEndEvents = EPOLLPRI | EPOLLRDHUP | EPOLLHUP | EPOLLERR;

class FlowOwner;

class Flow {
 public:
  enum class End { kEof, kSrcError, kDstError };
  // What the flow waits for: src readable, or dst writable.
  enum class Wait : uint8_t { kNone, kRead, kWrite };

  // src and dst are non-blocking sockets registered with the reactor; the
  // flow never closes them.
  Flow(int src, int dst, bool splice, PipePool& pipes, Counter& bytes_counter, Counter& copy_fallbacks,
       FlowOwner& owner);
  ~Flow();
  Flow(const Flow&) = delete;
  Flow& operator=(const Flow&) = delete;

  // The other direction: when it has finished, this flow's EOF is not
  // forwarded with shutdown(), since the owner closes both sockets next and
  // close() sends the same FIN after the queued bytes.
  void SetOpposite(const Flow* opposite) { opposite_ = opposite; }
  // Starts relaying: `src_events`, what src reported before the flow existed;
  // read_now: src may hold bytes no event announced. Otherwise the flow only
  // waits for src's next edge.
  void Start(uint32_t src_events, bool read_now);
  // Moves what can be moved now; then waits (waiting()), yields through the
  // owner (FlowOwner::ResumeLater), or ends (FlowOwner::OnFlowEnd).
  void Pump();
  // The owner's dispatch: src reported `events`; Pump() if they are what the
  // flow waits for. Likewise for dst. The owner passes src's events even when
  // the flow cannot use them (and, at the start, those from before it
  // existed): a queued FIN is seen from the event, not from a short read.
  void OnSrcEvents(uint32_t events);
  void OnDstEvents(uint32_t events);
  Wait waiting() const { return wait_; }
  uint64_t bytes() const { return bytes_; }
  bool finished() const { return finished_; }

 private:
  ssize_t CopyThrough(int src_fd, int dst_fd);
  ssize_t SpliceIn(int src_fd);
  bool Flush();  // false: stopped (waiting or finished)
  void Moved(size_t n);
  void Finish(End end);
  void ForwardEof();
  void WaitFor(Wait what);

  int src_;
  int dst_;
  bool splice_;
  Wait wait_ = Wait::kNone;
  bool bulk_ = false;     // the last read filled the buffer: splice
  // src has had TCP urgent data, or its FIN (or an error) is queued: a
  // short read no longer means drained, so read on to EAGAIN or EOF.
  bool read_to_end_ = false;
  bool src_eof_ = false;
  bool finished_ = false;
  PipePool& pipes_;
  Counter& bytes_counter_;
  Counter& copy_fallbacks_;
  FlowOwner& owner_;
  const Flow* opposite_ = nullptr;
  PipePool::Pipe pipe_;
  bool have_pipe_ = false;
  uint32_t in_pipe_ = 0;
  uint32_t pending_size_ = 0;
  uint32_t pending_sent_ = 0;
  std::unique_ptr<uint8_t[]> pending_;   // copied bytes dst has not taken yet
  uint64_t bytes_ = 0;
};

// Whoever owns the flows (the session) hears of their progress and end
// through this, not through type-erased callbacks: a relaying session is
// small, and it is most of what an idle connection costs.
class FlowOwner {
 public:
  // Bytes moved, for idle tracking and byte counts.
  virtual void OnFlowProgress(const Flow& flow, size_t n) = 0;
  // Once, when a flow stops: after forwarding EOF (dst shut for writing) or
  // on an error on either side.
  virtual void OnFlowEnd(const Flow& flow, Flow::End end) = 0;
  // The flow moved its share for this turn and has more: call its Pump()
  // again after the reactor's other events (unless the owner closed).
  virtual void ResumeLater(Flow& flow) = 0;

 protected:
  ~FlowOwner() = default;
};

}  // namespace meshgate::proxy
