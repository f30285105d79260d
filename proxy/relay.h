// One direction of a relayed connection, src -> dst. In splice mode (the
// default) small reads are copied through a per-worker scratch buffer and
// bulk is spliced (zero-copy) through a pooled pipe; copy mode uses a buffer
// of its own. Either way at most one chunk is in flight, so a slow reader
// stalls the fast writer instead of growing memory, and an idle flow holds no
// buffer and no pipe.
// Included only by proxy sources: it pulls in Asio.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <vector>

#include <boost/asio/basic_waitable_timer.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "proxy/stats.h"

namespace meshgate::proxy {

// The data path's sockets and timers name their executor exactly (a worker's
// io_context) instead of Asio's type-erased any_io_executor: every pending
// operation is smaller, and completions skip the type erasure.
using Socket = boost::asio::basic_stream_socket<boost::asio::ip::tcp, boost::asio::io_context::executor_type>;
using Timer = boost::asio::basic_waitable_timer<std::chrono::steady_clock,
                                                boost::asio::wait_traits<std::chrono::steady_clock>,
                                                boost::asio::io_context::executor_type>;

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

class FlowOwner;

class Flow {
 public:
  enum class End { kEof, kSrcError, kDstError };

  Flow(Socket& src, Socket& dst, bool splice,
       PipePool& pipes, Counter& bytes_counter, Counter& copy_fallbacks);
  ~Flow();
  Flow(const Flow&) = delete;
  Flow& operator=(const Flow&) = delete;

  // Every pending handler holds a strong reference from `keepalive` (the
  // owner's), so the owner outlives them; the flow keeps only a weak one.
  void Start(const std::shared_ptr<void>& keepalive, FlowOwner& owner);
  uint64_t bytes() const { return bytes_; }
  bool finished() const { return finished_; }

 private:
  void Pump();
  ssize_t CopyThrough(int src_fd, int dst_fd);
  ssize_t SpliceIn(int src_fd);
  void WaitThenPump(Socket& socket, boost::asio::socket_base::wait_type what,
                    End on_error);
  void ReadCopy();
  void OnCopyRead(const boost::system::error_code& ec, size_t n);
  void OnCopyWritten(const boost::system::error_code& ec, size_t n);
  void Moved(size_t n);
  void Finish(End end);
  void ForwardEof();

  Socket& src_;
  Socket& dst_;
  bool splice_;
  PipePool& pipes_;
  Counter& bytes_counter_;
  Counter& copy_fallbacks_;
  PipePool::Pipe pipe_;
  bool have_pipe_ = false;
  size_t in_pipe_ = 0;
  bool bulk_ = false;                    // the last read filled the buffer: splice
  std::unique_ptr<uint8_t[]> pending_;   // copied bytes dst has not taken yet
  size_t pending_size_ = 0;
  size_t pending_sent_ = 0;
  bool src_eof_ = false;
  bool finished_ = false;
  uint64_t bytes_ = 0;
  std::unique_ptr<uint8_t[]> buffer_;  // copy mode only
  std::weak_ptr<void> keepalive_;
  FlowOwner* owner_ = nullptr;
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

 protected:
  ~FlowOwner() = default;
};

}  // namespace meshgate::proxy
