// PipePool: the cap counts every open pipe (idle and in use), released pipes
// are reused before new ones are opened, and a dirty pipe is never handed out.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include <gtest/gtest.h>

#include "proxy/relay.h"

namespace meshgate::proxy {
namespace {

bool IsOpen(int fd) { return ::fcntl(fd, F_GETFD) != -1; }

bool IsOpen(const PipePool::Pipe& p) { return IsOpen(p.read_fd) && IsOpen(p.write_fd); }

bool IsClosed(const PipePool::Pipe& p) { return !IsOpen(p.read_fd) && !IsOpen(p.write_fd); }

// True when the pipe carries `byte` from its write end to its read end.
bool Carries(const PipePool::Pipe& p, char byte) {
  char got = 0;
  return ::write(p.write_fd, &byte, 1) == 1 && ::read(p.read_fd, &got, 1) == 1 && got == byte;
}

TEST(PipePoolTest, OpensWorkingNonBlockingCloseOnExecPipesUpToTheCap) {
  PipePool pool(64, 2);
  PipePool::Pipe a, b, c;
  ASSERT_TRUE(pool.Acquire(a));
  ASSERT_TRUE(pool.Acquire(b));
  EXPECT_FALSE(pool.Acquire(c)) << "a third pipe past max_open 2";
  EXPECT_NE(a.read_fd, b.read_fd);
  for (const PipePool::Pipe& p : {a, b}) {
    EXPECT_TRUE(Carries(p, 'x'));
    // The relay splices with SPLICE_F_NONBLOCK and must never block on a pipe.
    EXPECT_TRUE(::fcntl(p.read_fd, F_GETFL) & O_NONBLOCK);
    EXPECT_TRUE(::fcntl(p.write_fd, F_GETFL) & O_NONBLOCK);
    EXPECT_TRUE(::fcntl(p.read_fd, F_GETFD) & FD_CLOEXEC);
    EXPECT_TRUE(::fcntl(p.write_fd, F_GETFD) & FD_CLOEXEC);
  }
  char byte;
  EXPECT_EQ(::read(a.read_fd, &byte, 1), -1);
  EXPECT_EQ(errno, EAGAIN);
  pool.Release(a);
  pool.Release(b);
}

TEST(PipePoolTest, AReleasedPipeIsReusedBeforeANewOneIsOpened) {
  PipePool pool(64, 1);
  PipePool::Pipe first, again;
  ASSERT_TRUE(pool.Acquire(first));
  pool.Release(first);
  EXPECT_TRUE(IsOpen(first)) << "an idle pipe stays open for reuse";
  ASSERT_TRUE(pool.Acquire(again)) << "the idle pipe is there even at the cap";
  EXPECT_EQ(again.read_fd, first.read_fd);
  EXPECT_EQ(again.write_fd, first.write_fd);
  EXPECT_TRUE(Carries(again, 'y'));
  pool.Release(again);
}

TEST(PipePoolTest, TheCapCountsPipesInUseAndIdle) {
  PipePool pool(64, 2);
  PipePool::Pipe a, b, c;
  ASSERT_TRUE(pool.Acquire(a));
  ASSERT_TRUE(pool.Acquire(b));
  pool.Release(a);
  ASSERT_TRUE(pool.Acquire(c));
  EXPECT_EQ(c.read_fd, a.read_fd);
  PipePool::Pipe d;
  EXPECT_FALSE(pool.Acquire(d)) << "two open, both in use";
  pool.Release(b);
  pool.Release(c);
}

TEST(PipePoolTest, AReleaseBeyondMaxIdleClosesThePipeAndFreesItsSlot) {
  PipePool pool(1, 2);
  PipePool::Pipe a, b;
  ASSERT_TRUE(pool.Acquire(a));
  ASSERT_TRUE(pool.Acquire(b));
  pool.Release(a);  // idle: kept
  pool.Release(b);  // one idle already: closed
  EXPECT_TRUE(IsOpen(a));
  EXPECT_TRUE(IsClosed(b));
  PipePool::Pipe c, d, e;
  ASSERT_TRUE(pool.Acquire(c));
  EXPECT_EQ(c.read_fd, a.read_fd);
  ASSERT_TRUE(pool.Acquire(d)) << "the closed pipe's slot is free again";
  EXPECT_FALSE(pool.Acquire(e));
  pool.Release(c);
  pool.Release(d);
}

TEST(PipePoolTest, ADiscardedPipeIsClosedAndTheNextOneIsEmpty) {
  PipePool pool(64, 1);
  PipePool::Pipe dirty, next;
  ASSERT_TRUE(pool.Acquire(dirty));
  ASSERT_EQ(::write(dirty.write_fd, "left over", 9), 9);
  pool.Discard(dirty);
  EXPECT_TRUE(IsClosed(dirty));
  ASSERT_TRUE(pool.Acquire(next)) << "a discarded pipe frees its slot";
  char byte;
  EXPECT_EQ(::read(next.read_fd, &byte, 1), -1) << "bytes of a discarded pipe reached another";
  EXPECT_EQ(errno, EAGAIN);
  pool.Release(next);
}

TEST(PipePoolTest, ACapOfZeroOpensNothing) {
  PipePool pool(64, 0);
  PipePool::Pipe p;
  EXPECT_FALSE(pool.Acquire(p));
}

TEST(PipePoolTest, DestroyingThePoolClosesItsIdlePipes) {
  PipePool::Pipe a, b;
  {
    PipePool pool;
    ASSERT_TRUE(pool.Acquire(a));
    ASSERT_TRUE(pool.Acquire(b));
    pool.Release(a);
    pool.Release(b);
    EXPECT_TRUE(IsOpen(a) && IsOpen(b));
  }
  EXPECT_TRUE(IsClosed(a));
  EXPECT_TRUE(IsClosed(b));
}

}  // namespace
}  // namespace meshgate::proxy

namespace meshgate::proxy {
namespace {

// maxPipes reloads: a lower cap closes idle pipes over it at once and the
// rest as they come back; a higher one lets the pool grow again.
TEST(PipePoolReloadTest, ALowerCapClosesPipesOverItAndAHigherOneLetsThePoolGrow) {
  PipePool pool(64, 4);
  PipePool::Pipe held[4];
  for (auto& p : held) ASSERT_TRUE(pool.Acquire(p));
  PipePool::Pipe extra;
  EXPECT_FALSE(pool.Acquire(extra));
  pool.Release(held[0]);
  pool.Release(held[1]);  // two idle, two in use
  pool.SetMaxOpen(1);     // both idle ones close: two open, both in use
  EXPECT_FALSE(pool.Acquire(extra));
  pool.Release(held[2]);  // over the cap: closed, not kept
  EXPECT_FALSE(pool.Acquire(extra));
  pool.Release(held[3]);  // now at the cap: kept idle
  ASSERT_TRUE(pool.Acquire(extra));
  PipePool::Pipe more;
  EXPECT_FALSE(pool.Acquire(more));
  pool.SetMaxOpen(2);
  EXPECT_TRUE(pool.Acquire(more));
  pool.Release(extra);
  pool.Release(more);
}

}  // namespace
}  // namespace meshgate::proxy
