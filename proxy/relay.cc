#include "proxy/relay.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>

namespace meshgate::proxy {
namespace {
constexpr size_t kSpliceChunk = 64 * 1024;  // default pipe capacity
constexpr size_t kCopyBuffer = 16 * 1024;
constexpr int kRoundsPerTurn = 16;          // then yield to other sessions
}  // namespace

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
  int fds[2];
  if (::pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) return false;
  out = Pipe{fds[0], fds[1]};
  return true;
}

void PipePool::Release(Pipe pipe) {
  if (idle_.size() < max_idle_) {
    idle_.push_back(pipe);
    return;
  }
  ::close(pipe.read_fd);
  ::close(pipe.write_fd);
}

Flow::Flow(boost::asio::ip::tcp::socket& src, boost::asio::ip::tcp::socket& dst, bool splice,
           PipePool& pipes, Counter& bytes_counter)
    : src_(src), dst_(dst), splice_(splice), pipes_(pipes), bytes_counter_(bytes_counter) {}

Flow::~Flow() {
  if (!have_pipe_) return;
  if (in_pipe_ == 0) {
    pipes_.Release(pipe_);
  } else {  // bytes left in it: never hand a dirty pipe to another flow
    ::close(pipe_.read_fd);
    ::close(pipe_.write_fd);
  }
}

void Flow::Start(const std::shared_ptr<void>& owner, OnProgress on_progress, OnEnd on_end) {
  owner_ = owner;
  on_progress_ = std::move(on_progress);
  on_end_ = std::move(on_end);
  if (splice_) {
    boost::system::error_code ec;
    src_.native_non_blocking(true, ec);
    if (!ec) dst_.native_non_blocking(true, ec);
    if (ec) splice_ = false;
  }
  if (splice_) {
    PumpSplice();
  } else {
    ReadCopy();
  }
}

void Flow::Moved(size_t n) {
  bytes_ += n;
  bytes_counter_.Inc(n);
  on_progress_(n);
}

void Flow::Finish(End end) {
  if (finished_) return;
  finished_ = true;
  on_end_(end);
}

void Flow::ForwardEof() {
  boost::system::error_code ec;
  dst_.shutdown(boost::asio::ip::tcp::socket::shutdown_send, ec);  // peer may be gone: fine
  Finish(End::kEof);
}

// Alternates strictly: fill the empty pipe from src, then drain it into dst.
// Because src is read only into an empty pipe, EAGAIN from a splice into the
// pipe always means "src has nothing", never "pipe full".
void Flow::PumpSplice() {
  const int src_fd = src_.native_handle();
  const int dst_fd = dst_.native_handle();
  for (int round = 0; round < kRoundsPerTurn; ++round) {
    if (in_pipe_ > 0) {
      const ssize_t n = ::splice(pipe_.read_fd, nullptr, dst_fd, nullptr, in_pipe_,
                                 SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (n > 0) {
        in_pipe_ -= static_cast<size_t>(n);
        Moved(static_cast<size_t>(n));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        return WaitThenPump(dst_, boost::asio::socket_base::wait_write, End::kDstError);
      }
      return Finish(End::kDstError);
    }
    if (src_eof_) return ForwardEof();
    if (!have_pipe_) {
      if (!pipes_.Acquire(pipe_)) {
        if (SwitchToCopy()) return;
        return Finish(End::kSrcError);
      }
      have_pipe_ = true;
    }
    const ssize_t n = ::splice(src_fd, nullptr, pipe_.write_fd, nullptr, kSpliceChunk,
                               SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (n > 0) {
      in_pipe_ = static_cast<size_t>(n);
      continue;
    }
    if (n == 0) {
      src_eof_ = true;
      continue;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      // splice(2) stops short of TCP urgent data (inline via SO_OOBINLINE)
      // and keeps saying EAGAIN; step over the mark with one recv.
      const ssize_t urgent = ReadUrgentMark(src_fd);
      if (urgent > 0) {
        in_pipe_ = static_cast<size_t>(urgent);
        continue;
      }
      if (urgent == 0) {
        src_eof_ = true;
        continue;
      }
      if (errno != EAGAIN && errno != EWOULDBLOCK) return Finish(End::kSrcError);
      // Nothing to read and the pipe is empty: give it back while we wait.
      pipes_.Release(pipe_);
      have_pipe_ = false;
      return WaitThenPump(src_, boost::asio::socket_base::wait_read, End::kSrcError);
    }
    return Finish(End::kSrcError);
  }
  // Busy flow: let other sessions on this thread run before continuing.
  boost::asio::post(src_.get_executor(), [this, k = owner_.lock()] {
    if (!finished_) PumpSplice();
  });
}

// Resumes pumping once `socket` is ready; a failed wait ends the flow.
void Flow::WaitThenPump(boost::asio::ip::tcp::socket& socket, boost::asio::socket_base::wait_type what,
                        End on_error) {
  socket.async_wait(what, [this, on_error, k = owner_.lock()](const boost::system::error_code& ec) {
    if (ec) return Finish(on_error);
    PumpSplice();
  });
}

// At the urgent mark: moves what recv() returns into the (empty) pipe.
// Returns bytes moved, 0 at EOF, or -1 with errno (EAGAIN: not at the mark).
ssize_t Flow::ReadUrgentMark(int src_fd) {
  int at_mark = 0;
  if (::ioctl(src_fd, SIOCATMARK, &at_mark) != 0 || !at_mark) {
    errno = EAGAIN;
    return -1;
  }
  uint8_t buf[4096];
  const ssize_t n = ::recv(src_fd, buf, sizeof buf, MSG_DONTWAIT);
  if (n <= 0) return n;
  // The pipe is empty and holds 64 KiB, so this write cannot be short.
  return ::write(pipe_.write_fd, buf, static_cast<size_t>(n));
}

bool Flow::SwitchToCopy() {
  splice_ = false;
  ReadCopy();
  return true;
}

void Flow::ReadCopy() {
  if (!buffer_) buffer_ = std::make_unique<uint8_t[]>(kCopyBuffer);
  src_.async_read_some(boost::asio::buffer(buffer_.get(), kCopyBuffer),
                       [this, k = owner_.lock()](const boost::system::error_code& ec, size_t n) {
                         OnCopyRead(ec, n);
                       });
}

void Flow::OnCopyRead(const boost::system::error_code& ec, size_t n) {
  if (ec == boost::asio::error::eof) return ForwardEof();
  if (ec) return Finish(End::kSrcError);
  boost::asio::async_write(dst_, boost::asio::buffer(buffer_.get(), n),
                           [this, k = owner_.lock()](const boost::system::error_code& ec, size_t n) {
                             OnCopyWritten(ec, n);
                           });
}

void Flow::OnCopyWritten(const boost::system::error_code& ec, size_t n) {
  if (ec) return Finish(End::kDstError);
  Moved(n);
  ReadCopy();
}

}  // namespace meshgate::proxy
