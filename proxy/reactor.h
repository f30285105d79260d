// The data path's event loop: one per worker thread, an edge-triggered epoll
// where every socket is registered once, for its lifetime, for all it will
// ever wait on (EPOLLIN|EPOLLOUT|EPOLLRDHUP|EPOLLPRI|EPOLLET). Nothing is
// re-armed per wait (no epoll_ctl(MOD)), no object is allocated per pending
// wait, and a closed socket leaves epoll with its close(), not an
// epoll_ctl(DEL). The owner of a socket keeps its own state ("waiting to
// read", "waiting to write") and acts on the edges it is told of.
//
// Also here, because the worker thread runs nothing else: deadlines (an
// intrusive binary heap, no allocation per timer), work posted from other
// threads (an eventfd wakes the loop), and work deferred to the end of the
// current turn (a busy flow yielding, a finished session's delete).
//
// Events are delivered through a slot table with a generation per slot, not
// through a bare pointer in epoll_event.data: a descriptor that outlives its
// owner in the kernel (another reference to the same open file, e.g. a child
// between fork and exec) can then only reach a dead slot, never freed memory.
#pragma once

#include <sys/epoll.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <vector>

namespace meshgate::proxy {

// Whoever owns registered descriptors hears of their events through this.
class Pollable {
 public:
  // tag: which of the owner's descriptors (0-3, as given to Reactor::Add);
  // events: the EPOLL* bits the kernel reported.
  virtual void OnEvents(unsigned tag, uint32_t events) = 0;

 protected:
  ~Pollable() = default;
};

class Reactor {
 public:
  using Clock = std::chrono::steady_clock;

  // An intrusive deadline: armed at most once at a time; the reactor calls
  // OnTimer() once when it expires. Disarmed by Cancel(), by firing, or by
  // its destructor's owner calling Cancel() first (the reactor asserts nothing
  // about a destroyed armed timer: the owner must cancel).
  class Timer {
   public:
    bool armed() const { return index_ != kNone; }
    Clock::time_point deadline() const { return when_; }

   protected:
    Timer() = default;
    ~Timer() = default;
    Timer(const Timer&) = delete;
    Timer& operator=(const Timer&) = delete;
    virtual void OnTimer() = 0;

   private:
    friend class Reactor;
    static constexpr uint32_t kNone = UINT32_MAX;
    Clock::time_point when_{};
    uint32_t index_ = kNone;  // position in the heap
  };

  // A timer that runs a function: for the worker's few periodic jobs.
  class FunctionTimer final : public Timer {
   public:
    explicit FunctionTimer(std::function<void()> fn) : fn_(std::move(fn)) {}

   private:
    void OnTimer() override { fn_(); }
    std::function<void()> fn_;
  };

  // A registered owner: the slot and the generation it was given.
  struct Handle {
    uint32_t slot = UINT32_MAX;
    uint32_t gen = 0;
    bool valid() const { return slot != UINT32_MAX; }
  };

  Reactor();  // throws std::system_error if epoll or the eventfd cannot be had
  ~Reactor();
  Reactor(const Reactor&) = delete;
  Reactor& operator=(const Reactor&) = delete;

  // This thread only. An owner gets a handle; its descriptors are added under
  // it. Unregister() stops every later event from reaching it (the
  // descriptors themselves leave epoll when closed).
  Handle Register(Pollable* owner);
  void Unregister(Handle& handle);
  // Adds `fd` for edge-triggered IN, OUT, RDHUP and PRI. Returns 0, or the
  // errno of a failed epoll_ctl.
  int Add(int fd, Handle handle, unsigned tag);
  // Takes `fd` out of epoll: only for a descriptor that may outlive its
  // close() here (a listener another process also holds).
  void Remove(int fd);

  void Arm(Timer& timer, Clock::time_point when);
  void Cancel(Timer& timer);

  // This thread: runs `fn` after this turn's events (before the next wait).
  void Defer(std::function<void()> fn);
  // Any thread: runs `fn` on the loop's thread, soon.
  void Post(std::function<void()> fn);

  // Runs until Stop() (any thread).
  void Run();
  void Stop();
  // One turn: waits at most `max_wait` for events (less when a timer is due
  // or work is deferred), then runs what is ready. True when anything ran.
  // For tests and Run().
  bool RunOnce(Clock::duration max_wait);
  // The time at the start of this turn's dispatch: one clock read per turn.
  Clock::time_point now() const { return now_; }
  bool stopped() const { return stop_.load(std::memory_order_acquire); }

 private:
  struct Slot {
    Pollable* owner = nullptr;
    uint32_t gen = 0;
  };
  static constexpr int kMaxEvents = 256;

  void Dispatch(const epoll_event& event);
  size_t RunTimers();
  size_t RunDeferred();
  void RunPosted();
  int WaitMillis(Clock::duration max_wait) const;
  void HeapUp(uint32_t i);
  void HeapDown(uint32_t i);
  void HeapSwap(uint32_t a, uint32_t b);
  void HeapRemove(uint32_t i);

  int epfd_ = -1;
  int wake_fd_ = -1;  // eventfd: Post() and Stop() from other threads
  std::vector<Slot> slots_;
  std::vector<uint32_t> free_slots_;
  std::vector<Timer*> heap_;
  std::vector<std::function<void()>> deferred_;
  std::vector<std::function<void()>> running_;  // deferred_ being run
  std::mutex posted_mu_;
  std::vector<std::function<void()>> posted_;
  std::atomic<bool> stop_{false};
  Clock::time_point now_ = Clock::now();
};

}  // namespace meshgate::proxy
