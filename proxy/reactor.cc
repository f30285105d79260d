#include "proxy/reactor.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

namespace meshgate::proxy {
namespace {
// epoll_event.data: the slot in bits 2-33, the tag in bits 0-1, the
// generation in bits 34-63 (30 bits: a slot is reused a billion times before
// a stale event could match it, and a stale event is at most one turn old).
constexpr uint64_t kWakeData = UINT64_MAX;
constexpr uint32_t kGenMask = (1u << 30) - 1;

uint64_t Pack(Reactor::Handle h, unsigned tag) {
  return (static_cast<uint64_t>(h.gen & kGenMask) << 34) | (static_cast<uint64_t>(h.slot) << 2) | (tag & 3u);
}
}  // namespace

Reactor::Reactor() {
  epfd_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (epfd_ < 0) throw std::system_error(errno, std::generic_category(), "epoll_create1");
  wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd_ < 0) {
    const int err = errno;
    ::close(epfd_);
    throw std::system_error(err, std::generic_category(), "eventfd");
  }
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLET;
  ev.data.u64 = kWakeData;
  ::epoll_ctl(epfd_, EPOLL_CTL_ADD, wake_fd_, &ev);
}

Reactor::~Reactor() {
  ::close(wake_fd_);
  ::close(epfd_);
}

Reactor::Handle Reactor::Register(Pollable* owner) {
  uint32_t slot;
  if (!free_slots_.empty()) {
    slot = free_slots_.back();
    free_slots_.pop_back();
  } else {
    slot = static_cast<uint32_t>(slots_.size());
    slots_.push_back({});
  }
  slots_[slot].owner = owner;
  return Handle{slot, slots_[slot].gen};
}

void Reactor::Unregister(Handle& handle) {
  if (!handle.valid()) return;
  Slot& s = slots_[handle.slot];
  s.owner = nullptr;
  s.gen = (s.gen + 1) & kGenMask;
  free_slots_.push_back(handle.slot);
  handle = Handle{};
}

int Reactor::Add(int fd, Handle handle, unsigned tag) {
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLPRI | EPOLLET;
  ev.data.u64 = Pack(handle, tag);
  return ::epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) == 0 ? 0 : errno;
}

void Reactor::Remove(int fd) { ::epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr); }

void Reactor::Dispatch(const epoll_event& event) {
  const uint64_t data = event.data.u64;
  if (data == kWakeData) {
    uint64_t count;
    while (::read(wake_fd_, &count, sizeof count) > 0) {
    }
    return RunPosted();
  }
  const auto slot = static_cast<uint32_t>((data >> 2) & 0xffffffffu);
  const auto gen = static_cast<uint32_t>(data >> 34);
  if (slot >= slots_.size()) return;
  const Slot& s = slots_[slot];
  if (s.owner == nullptr || s.gen != gen) return;  // unregistered since
  s.owner->OnEvents(static_cast<unsigned>(data & 3u), event.events);
}

void Reactor::Arm(Timer& timer, Clock::time_point when) {
  if (timer.armed()) HeapRemove(timer.index_);
  timer.when_ = when;
  timer.index_ = static_cast<uint32_t>(heap_.size());
  heap_.push_back(&timer);
  HeapUp(timer.index_);
}

void Reactor::Cancel(Timer& timer) {
  if (timer.armed()) HeapRemove(timer.index_);
}

void Reactor::HeapSwap(uint32_t a, uint32_t b) {
  std::swap(heap_[a], heap_[b]);
  heap_[a]->index_ = a;
  heap_[b]->index_ = b;
}

void Reactor::HeapUp(uint32_t i) {
  while (i > 0) {
    const uint32_t parent = (i - 1) / 2;
    if (heap_[parent]->when_ <= heap_[i]->when_) return;
    HeapSwap(i, parent);
    i = parent;
  }
}

void Reactor::HeapDown(uint32_t i) {
  const auto n = static_cast<uint32_t>(heap_.size());
  for (;;) {
    uint32_t least = i;
    const uint32_t left = 2 * i + 1;
    const uint32_t right = left + 1;
    if (left < n && heap_[left]->when_ < heap_[least]->when_) least = left;
    if (right < n && heap_[right]->when_ < heap_[least]->when_) least = right;
    if (least == i) return;
    HeapSwap(i, least);
    i = least;
  }
}

void Reactor::HeapRemove(uint32_t i) {
  Timer* removed = heap_[i];
  const auto last = static_cast<uint32_t>(heap_.size() - 1);
  if (i != last) {
    HeapSwap(i, last);
    heap_.pop_back();
    HeapDown(i);
    HeapUp(i);
  } else {
    heap_.pop_back();
  }
  removed->index_ = Timer::kNone;
}

size_t Reactor::RunTimers() {
  size_t ran = 0;
  while (!heap_.empty() && heap_.front()->when_ <= now_) {
    Timer* due = heap_.front();
    HeapRemove(0);
    due->OnTimer();  // may re-arm itself or others
    ++ran;
  }
  return ran;
}

void Reactor::Defer(std::function<void()> fn) { deferred_.push_back(std::move(fn)); }

size_t Reactor::RunDeferred() {
  // What runs may defer more: that waits for the next turn, so a busy flow
  // cannot starve the wait for other sockets' events.
  running_.swap(deferred_);
  for (auto& fn : running_) fn();
  const size_t ran = running_.size();
  running_.clear();
  return ran;
}

void Reactor::Post(std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> lock(posted_mu_);
    posted_.push_back(std::move(fn));
  }
  const uint64_t one = 1;
  (void)!::write(wake_fd_, &one, sizeof one);
}

void Reactor::RunPosted() {
  std::vector<std::function<void()>> batch;
  {
    std::lock_guard<std::mutex> lock(posted_mu_);
    batch.swap(posted_);
  }
  for (auto& fn : batch) fn();
}

void Reactor::Stop() {
  stop_.store(true, std::memory_order_release);
  const uint64_t one = 1;
  (void)!::write(wake_fd_, &one, sizeof one);
}

int Reactor::WaitMillis(Clock::duration max_wait) const {
  if (!deferred_.empty()) return 0;
  Clock::duration wait = max_wait;
  if (!heap_.empty()) wait = std::min(wait, heap_.front()->when_ - Clock::now());
  if (wait <= Clock::duration::zero()) return 0;
  // Round up: waking a little late is fine, waking early spins.
  const auto ms = std::chrono::ceil<std::chrono::milliseconds>(wait).count();
  return ms > INT32_MAX ? -1 : static_cast<int>(ms);
}

bool Reactor::RunOnce(Clock::duration max_wait) {
  epoll_event events[kMaxEvents];
  const int n = ::epoll_wait(epfd_, events, kMaxEvents, WaitMillis(max_wait));
  now_ = Clock::now();
  for (int i = 0; i < n; ++i) Dispatch(events[i]);
  const size_t timers = RunTimers();
  const size_t deferred = RunDeferred();
  return n > 0 || timers > 0 || deferred > 0;
}

void Reactor::Run() {
  while (!stopped()) RunOnce(std::chrono::hours(1));
}

}  // namespace meshgate::proxy
