// Backend 2: a per-thread io_uring loop (liburing). Multishot accept,
// multishot recv into a provided-buffer ring, one send SQE in flight per
// socket, every SQE of a loop turn submitted by the one io_uring_enter that
// also waits (io_uring_submit_and_wait_timeout), no SQPOLL (it would spin a
// kernel thread on one of the two cores). References: io_uring_setup(2),
// io_uring_prep_recv_multishot(3), io_uring_register_buf_ring(3),
// io_uring_prep_multishot_accept(3), and the liburing examples
// (examples/proxy.c, "send_ring"/"recv multishot" in its man pages).
#include <errno.h>
#include <liburing.h>
#include <netinet/tcp.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "loop.h"

namespace uring_proto {
namespace {

constexpr unsigned kRingEntries = 4096;
constexpr unsigned kBufs = 1024;          // provided buffers per thread (a power of 2)
constexpr unsigned kBufSize = 16 * 1024;  // one TLS record fits
constexpr uint16_t kGroup = 0;
constexpr size_t kSendBacklog = 256 * 1024;  // queued bytes before the source is paused
constexpr unsigned kRearmAt = 16;            // free buffers before a starved recv is re-armed

enum Op : uintptr_t { kAccept = 1, kRecv = 2, kSend = 3, kConnect = 4, kOpMask = 7 };  // user_data 0: a cancel

struct Chunk {
  int bid = -1;          // a borrowed provided buffer, or -1: `copy` holds the bytes
  const char* data = nullptr;
  size_t len = 0;
  size_t off = 0;
  std::string copy;
};

class UringSock final : public Sock {
 public:
  int fd = -1;
  SockEvents* owner = nullptr;
  Loop::AcceptFn on_accept;  // listeners only
  std::deque<Chunk> queue;
  size_t queued = 0;
  sockaddr_in addr{};        // the connect SQE reads it after submission
  bool recv_armed = false, send_inflight = false, connect_inflight = false, accept_armed = false;
  bool paused = false, cancel_sent = false, read_ended = false, starved = false;
  bool shut_wanted = false, closing = false, broken = false;
  int ops() const { return recv_armed + send_inflight + connect_inflight + accept_armed; }
};

UringSock* U(Sock* s) { return static_cast<UringSock*>(s); }

class UringLoop final : public Loop {
 public:
  ~UringLoop() override {
    io_uring_queue_exit(&ring_);
    if (br_ != nullptr) munmap(br_, kBufs * sizeof(io_uring_buf));
  }

  // "" on success.
  std::string Init() {
    io_uring_params p{};
    p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;  // 6.1+: task work only when we wait
    int rc = io_uring_queue_init_params(kRingEntries, &ring_, &p);
    if (rc == -EINVAL) {
      p = {};
      p.flags = IORING_SETUP_COOP_TASKRUN;
      rc = io_uring_queue_init_params(kRingEntries, &ring_, &p);
    }
    if (rc < 0) return std::string("io_uring_queue_init: ") + strerror(-rc);
    void* mem = mmap(nullptr, kBufs * sizeof(io_uring_buf), PROT_READ | PROT_WRITE,
                     MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (mem == MAP_FAILED) return "mmap of the buffer ring failed";
    br_ = static_cast<io_uring_buf_ring*>(mem);
    io_uring_buf_ring_init(br_);
    io_uring_buf_reg reg{};
    reg.ring_addr = reinterpret_cast<uint64_t>(mem);
    reg.ring_entries = kBufs;
    reg.bgid = kGroup;
    rc = io_uring_register_buf_ring(&ring_, &reg, 0);
    if (rc < 0) return std::string("io_uring_register_buf_ring (5.19+): ") + strerror(-rc);
    bufs_.reset(new char[size_t{kBufs} * kBufSize]);
    for (unsigned i = 0; i < kBufs; ++i) {
      io_uring_buf_ring_add(br_, Buf(i), kBufSize, i, io_uring_buf_ring_mask(kBufs), i);
    }
    io_uring_buf_ring_advance(br_, kBufs);
    free_bufs_ = kBufs;
    return "";
  }

  void Listen(int fd, AcceptFn on_accept) override {
    auto* s = new UringSock;
    s->fd = fd;
    s->on_accept = std::move(on_accept);
    ArmAccept(s);
  }

  Sock* Adopt(int fd, SockEvents* owner) override {
    auto* s = new UringSock;
    s->fd = fd;
    s->owner = owner;
    ArmRecv(s);
    return s;
  }

  Sock* Connect(const sockaddr_in& to, SockEvents* owner) override {
    auto* s = new UringSock;
    s->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    s->owner = owner;
    s->addr = to;
    int one = 1;
    setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    io_uring_sqe* sqe = Sqe();
    io_uring_prep_connect(sqe, s->fd, reinterpret_cast<sockaddr*>(&s->addr), sizeof s->addr);
    io_uring_sqe_set_data64(sqe, Tag(s, kConnect));
    s->connect_inflight = true;
    return s;
  }

  bool Send(Sock* sock, const char* data, size_t len) override {
    UringSock* s = U(sock);
    if (s->broken || len == 0) return true;
    Chunk c;
    c.len = len;
    if (cur_bid_ >= 0 && !cur_borrowed_ && data >= cur_data_ && data + len <= cur_data_ + cur_len_) {
      c.bid = cur_bid_;  // zero copy: the buffer goes back to the ring when the send completes
      c.data = data;
      cur_borrowed_ = true;
    } else {
      c.copy.assign(data, len);
    }
    s->queue.push_back(std::move(c));
    s->queued += len;
    if (!s->send_inflight && !s->connect_inflight) SubmitSend(s);
    return s->queued < kSendBacklog;
  }

  void Pause(Sock* sock) override {
    UringSock* s = U(sock);
    s->paused = true;
    if (s->recv_armed && !s->cancel_sent) {
      io_uring_sqe* sqe = Sqe();
      io_uring_prep_cancel64(sqe, Tag(s, kRecv), 0);
      io_uring_sqe_set_data64(sqe, 0);
      s->cancel_sent = true;
    }
  }

  void Resume(Sock* sock) override {
    UringSock* s = U(sock);
    if (!s->paused) return;
    s->paused = false;
    if (!s->recv_armed && !s->read_ended && !s->connect_inflight) ArmRecv(s);  // else ECANCELED re-arms
  }

  void ShutdownWrite(Sock* sock) override {
    UringSock* s = U(sock);
    s->shut_wanted = true;
    if (s->queue.empty() && !s->connect_inflight) shutdown(s->fd, SHUT_WR);
  }

  void Close(Sock* sock, bool graceful) override {
    UringSock* s = U(sock);
    s->owner = nullptr;
    s->closing = true;
    if (graceful && !s->broken && !s->queue.empty()) return;  // OnSend finishes it
    DropQueue(s);
    if (s->ops() > 0) {  // recv, send or connect still armed: cancel them, close when all came back
      io_uring_sqe* sqe = Sqe();
      io_uring_prep_cancel_fd(sqe, s->fd, IORING_ASYNC_CANCEL_ALL);
      io_uring_sqe_set_data64(sqe, 0);
    }
    MaybeFinish(s);
  }

  void Run(const std::atomic<bool>& stop) override {
    __kernel_timespec ts{0, 200 * 1000 * 1000};
    while (!stop.load(std::memory_order_relaxed)) {
      io_uring_cqe* cqe = nullptr;
      io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr);  // one io_uring_enter per turn
      ++stats_.waits;
      unsigned head, n = 0;
      io_uring_for_each_cqe(&ring_, head, cqe) {
        Handle(cqe->user_data, cqe->res, cqe->flags);
        ++n;
      }
      io_uring_cq_advance(&ring_, n);
      stats_.completions += n;
      RearmStarved();
      graveyard_.clear();
    }
  }

  LoopStats Stats() const override { return stats_; }

 private:
  char* Buf(unsigned bid) { return bufs_.get() + size_t{bid} * kBufSize; }
  static uint64_t Tag(UringSock* s, Op op) { return reinterpret_cast<uintptr_t>(s) | op; }

  io_uring_sqe* Sqe() {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    while (sqe == nullptr) {  // the SQ is full: flush it early (rare with 4096 entries)
      io_uring_submit(&ring_);
      ++stats_.submits;
      sqe = io_uring_get_sqe(&ring_);
    }
    return sqe;
  }

  void ArmAccept(UringSock* l) {
    io_uring_sqe* sqe = Sqe();
    io_uring_prep_multishot_accept(sqe, l->fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, Tag(l, kAccept));
    l->accept_armed = true;
  }

  void ArmRecv(UringSock* s) {
    io_uring_sqe* sqe = Sqe();
    io_uring_prep_recv_multishot(sqe, s->fd, nullptr, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = kGroup;
    io_uring_sqe_set_data64(sqe, Tag(s, kRecv));
    s->recv_armed = true;
    s->cancel_sent = false;
  }

  void SubmitSend(UringSock* s) {
    Chunk& c = s->queue.front();
    const char* p = (c.bid >= 0 ? c.data : c.copy.data()) + c.off;
    io_uring_sqe* sqe = Sqe();
    io_uring_prep_send(sqe, s->fd, p, c.len - c.off, MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, Tag(s, kSend));
    s->send_inflight = true;
  }

  void Recycle(int bid) {
    if (bid < 0) return;
    io_uring_buf_ring_add(br_, Buf(bid), kBufSize, bid, io_uring_buf_ring_mask(kBufs), 0);
    io_uring_buf_ring_advance(br_, 1);
    ++free_bufs_;
  }

  void DropQueue(UringSock* s) {
    for (Chunk& c : s->queue) Recycle(c.bid);
    s->queue.clear();
    s->queued = 0;
  }

  void MaybeFinish(UringSock* s) {
    if (!s->closing || s->fd < 0 || s->ops() > 0 || s->owner != nullptr) return;
    if (!s->queue.empty() && !s->broken) return;  // a graceful close still sending
    if (s->starved) std::erase(starved_, s);
    close(s->fd);
    s->fd = -1;
    graveyard_.emplace_back(s);
  }

  void Handle(uint64_t data, int res, unsigned flags) {
    if (data == 0) return;  // a cancel's own completion
    auto* s = reinterpret_cast<UringSock*>(data & ~uint64_t{kOpMask});
    switch (static_cast<Op>(data & kOpMask)) {
      case kAccept: return OnAccept(s, res, flags);
      case kRecv: OnRecv(s, res, flags); break;
      case kSend: OnSend(s, res); break;
      case kConnect: OnConnect(s, res); break;
      default: return;
    }
    MaybeFinish(s);
  }

  void OnAccept(UringSock* l, int res, unsigned flags) {
    if (res >= 0) {
      ++stats_.sessions;
      l->on_accept(res);
    }
    if (!(flags & IORING_CQE_F_MORE)) ArmAccept(l);  // ended (an error such as EMFILE, or overflow)
  }

  void OnRecv(UringSock* s, int res, unsigned flags) {
    bool more = flags & IORING_CQE_F_MORE;
    if (!more) s->recv_armed = false;
    if (res > 0) {
      int bid = static_cast<int>(flags >> IORING_CQE_BUFFER_SHIFT);
      --free_bufs_;
      Deliver(s, bid, res);
      if (!more && s->owner && !s->paused && !s->read_ended) ArmRecv(s);
      return;
    }
    if (res == -ENOBUFS || (res == -ECANCELED && !s->read_ended)) {
      if (s->owner && !s->paused && !s->recv_armed) {
        if (res == -ENOBUFS) {
          s->starved = true;
          starved_.push_back(s);
        } else {
          ArmRecv(s);  // resumed while the cancel was in flight
        }
      }
      return;
    }
    if (more) return;
    s->read_ended = true;
    if (s->owner) s->owner->OnEnd(s, res);  // 0: EOF
  }

  void Deliver(UringSock* s, int bid, int len) {
    if (s->owner == nullptr) return Recycle(bid);
    cur_bid_ = bid;
    cur_data_ = Buf(bid);
    cur_len_ = len;
    cur_borrowed_ = false;
    s->owner->OnData(s, cur_data_, len);
    if (!cur_borrowed_) Recycle(bid);
    cur_bid_ = -1;
  }

  void OnSend(UringSock* s, int res) {
    s->send_inflight = false;
    if (res < 0) {
      s->broken = true;
      DropQueue(s);
    } else if (!s->queue.empty()) {
      Chunk& c = s->queue.front();
      c.off += res;
      if (c.off == c.len) {
        s->queued -= c.len;
        Recycle(c.bid);
        s->queue.pop_front();
      }
    }
    if (!s->queue.empty()) return SubmitSend(s);
    if (s->shut_wanted && !s->broken) shutdown(s->fd, SHUT_WR);
    if (s->owner) s->owner->OnDrained(s);
  }

  void OnConnect(UringSock* s, int res) {
    s->connect_inflight = false;
    if (s->owner == nullptr) return;
    s->owner->OnConnected(s, res);
    if (res != 0 || s->owner == nullptr) return;
    if (!s->recv_armed && !s->paused) ArmRecv(s);
    if (!s->queue.empty() && !s->send_inflight) SubmitSend(s);
    if (s->shut_wanted && s->queue.empty()) shutdown(s->fd, SHUT_WR);
  }

  void RearmStarved() {
    if (starved_.empty() || free_bufs_ < kRearmAt) return;
    for (UringSock* s : starved_) {
      s->starved = false;
      if (s->owner && !s->paused && !s->recv_armed && !s->read_ended && s->fd >= 0) ArmRecv(s);
    }
    starved_.clear();
  }

  io_uring ring_{};
  io_uring_buf_ring* br_ = nullptr;
  std::unique_ptr<char[]> bufs_;
  unsigned free_bufs_ = 0;
  int cur_bid_ = -1;  // the provided buffer being delivered by OnData, for Send's borrow
  const char* cur_data_ = nullptr;
  size_t cur_len_ = 0;
  bool cur_borrowed_ = false;
  std::vector<UringSock*> starved_;  // recv ended on ENOBUFS; re-armed once buffers return
  std::vector<std::unique_ptr<UringSock>> graveyard_;
  LoopStats stats_;
};

}  // namespace

std::unique_ptr<Loop> NewUringLoop(std::string& error) {
  auto loop = std::make_unique<UringLoop>();
  error = loop->Init();
  if (!error.empty()) return nullptr;
  return loop;
}

}  // namespace uring_proto
