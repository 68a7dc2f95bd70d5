// The fd table: reuse of numbers, dup2 over an open fd, close_range, close-on-exec at exec, seeding and
// reconciling from /proc (full listings and the per-sample numbers-only one), closes made past close()
// found by reuse or by /proc, and the counter identity open == seeded + opened - closed.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>

#include "model/fd_table.h"

namespace memlens::model {
namespace {

FdEntry file(int fd, const std::string& path, double t, bool cloexec = false, int32_t stack = 1) {
  FdEntry e;
  e.fd = fd;
  e.path = path;
  e.opened_at_s = t;
  e.cloexec = cloexec;
  e.flags = cloexec ? O_CLOEXEC : 0;
  e.stack_id = stack;
  e.opened_by = "openat";
  return e;
}

proc::ProcFd listed(int fd, const std::string& target, FdType type, uint64_t inode, bool cloexec = false) {
  proc::ProcFd f;
  f.fd = fd;
  f.target = target;
  f.type = type;
  f.inode = inode;
  f.flags = cloexec ? O_CLOEXEC : 0;
  return f;
}

void expect_identity(const FdTable& t) {
  EXPECT_EQ(t.open_count(), t.seeded_total() + t.opened_total() - t.closed_total());
}

TEST(FdTable, CloseThenOpenReusesTheNumber) {
  FdTable t;
  t.open(file(5, "/a", 1.0));
  EXPECT_TRUE(t.close(5, 1.5));
  t.open(file(5, "/b", 2.0, false, 7));
  ASSERT_TRUE(t.find(5));
  EXPECT_EQ(t.find(5)->path, "/b");
  EXPECT_EQ(t.find(5)->stack_id, 7);
  EXPECT_EQ(t.find(5)->opened_at_s, 2.0);
  EXPECT_EQ(t.open_count(), 1u);
  EXPECT_EQ(t.opened_total(), 2u);
  EXPECT_EQ(t.closed_total(), 1u);
  EXPECT_EQ(t.closed_unseen(), 0u);
  expect_identity(t);
}

TEST(FdTable, OpenOverAnOpenNumberCountsAMissedClose) {
  FdTable t;
  t.open(file(5, "/a", 1.0));
  t.open(file(5, "/b", 2.0));
  EXPECT_EQ(t.find(5)->path, "/b");
  EXPECT_EQ(t.closed_unseen(), 1u);
  expect_identity(t);
}

TEST(FdTable, Dup2OverAnOpenFdReplacesIt) {
  FdTable t;
  t.open(file(3, "/a", 1.0, true));
  t.open(file(4, "/b", 1.5, true));
  t.duplicate(3, 4, false, true, 2.0, 9, "dup2");
  ASSERT_EQ(t.open_count(), 2u);
  EXPECT_EQ(t.find(4)->path, "/a");
  EXPECT_EQ(t.find(4)->opened_by, "dup2");
  EXPECT_EQ(t.find(4)->stack_id, 9);
  EXPECT_FALSE(t.find(4)->cloexec);  // dup2 clears close-on-exec on the copy
  EXPECT_TRUE(t.find(3)->cloexec);
  EXPECT_EQ(t.closed_total(), 1u);  // b's file
  EXPECT_EQ(t.closed_unseen(), 0u);
  expect_identity(t);
  // dup2(fd, fd) changes nothing.
  t.duplicate(3, 3, false, true, 3.0, 1, "dup2");
  EXPECT_EQ(t.open_count(), 2u);
  EXPECT_TRUE(t.find(3)->cloexec);
  expect_identity(t);
}

TEST(FdTable, CloseRangeClosesOnlyTheRange) {
  FdTable t;
  for (int fd = 3; fd < 10; ++fd) t.open(file(fd, "/f" + std::to_string(fd), 1.0));
  EXPECT_EQ(t.close_range(5, 7, 2.0), 3u);
  EXPECT_EQ(t.open_count(), 4u);
  EXPECT_TRUE(t.find(4));
  EXPECT_FALSE(t.find(5));
  EXPECT_FALSE(t.find(7));
  EXPECT_TRUE(t.find(8));
  // close_range(first, ~0U) as programs call it before exec.
  EXPECT_EQ(t.close_range(4, 0xffffffffu, 2.0), 3u);
  EXPECT_EQ(t.open_count(), 1u);
  EXPECT_EQ(t.close_range(9, 3, 2.0), 0u);  // first > last: nothing
  expect_identity(t);
}

TEST(FdTable, ExecDropsCloseOnExecFds) {
  FdTable t;
  t.open(file(0, "/dev/null", 0.0));
  t.open(file(3, "/a", 1.0, true));
  t.open(file(4, "/b", 1.0, false));
  t.set_cloexec_range(4, 4, true);  // fcntl(F_SETFD, FD_CLOEXEC) later
  t.open(file(5, "/c", 1.0, true));
  t.set_cloexec_range(5, 5, false);
  EXPECT_EQ(t.exec(), 2u);
  EXPECT_TRUE(t.find(0));
  EXPECT_FALSE(t.find(3));
  EXPECT_FALSE(t.find(4));
  EXPECT_TRUE(t.find(5));
  expect_identity(t);
}

TEST(FdTable, UnknownCloseIsCountedNotApplied) {
  FdTable t;
  t.open(file(3, "/a", 1.0));
  EXPECT_FALSE(t.close(42, 2.0));
  EXPECT_EQ(t.unknown_closes(), 1u);
  EXPECT_EQ(t.open_count(), 1u);
  expect_identity(t);
}

TEST(FdTable, SeedsFromProcAndResolves) {
  FdTable t;
  t.reconcile(
      {listed(0, "/dev/null", FdType::kCharDevice, 10), listed(3, "socket:[77]", FdType::kSocket, 77, true),
       listed(4, "anon_inode:[eventpoll]", FdType::kEpoll, 5)},
      0.5, true);
  EXPECT_EQ(t.open_count(), 3u);
  EXPECT_EQ(t.seeded_total(), 3u);
  EXPECT_TRUE(t.find(3)->seeded);
  EXPECT_TRUE(t.find(3)->cloexec);
  EXPECT_EQ(t.find(3)->stack_id, -1);
  auto by = t.by_type();
  EXPECT_EQ(by["char_device"], 1u);
  EXPECT_EQ(by["socket"], 1u);
  EXPECT_EQ(by["epoll"], 1u);
  EXPECT_EQ(t.sockets_open(), 1u);

  // A file opened by path is unresolved until /proc confirms it.
  t.open(file(5, "rel/x.txt", 1.0));
  EXPECT_EQ(t.unresolved(10), std::vector<int>{5});
  t.resolve(listed(5, "/srv/rel/x.txt", FdType::kFile, 99));
  EXPECT_TRUE(t.unresolved(10).empty());
  EXPECT_EQ(t.find(5)->path, "/srv/rel/x.txt");
  // A /proc view of another kind of object under that number is not taken (the number was reused).
  t.resolve(listed(5, "socket:[1]", FdType::kSocket, 1));
  EXPECT_EQ(t.find(5)->type, FdType::kFile);
  expect_identity(t);
}

TEST(FdTable, ReconcileRemovesAddsAndReplaces) {
  FdTable t;
  t.reconcile({listed(0, "/dev/null", FdType::kCharDevice, 10)}, 0.0, true);
  t.open(file(3, "/a", 1.0));
  t.resolve(listed(3, "/a", FdType::kFile, 100));
  t.open(file(4, "/b", 1.0));
  // /proc now: 3 is another file (inode changed), 4 is gone, 6 is new.
  t.reconcile({listed(0, "/dev/null", FdType::kCharDevice, 10), listed(3, "/c", FdType::kFile, 101),
               listed(6, "pipe:[5]", FdType::kPipe, 5)},
              2.0, false);
  EXPECT_EQ(t.open_count(), 3u);
  EXPECT_EQ(t.find(3)->path, "/c");
  EXPECT_TRUE(t.find(3)->seeded);
  EXPECT_FALSE(t.find(4));
  EXPECT_EQ(t.find(6)->type, FdType::kPipe);
  EXPECT_EQ(t.closed_unseen(), 2u);
  EXPECT_EQ(t.opened_unseen(), 2u);  // the new 3 and 6: opened while traced, not by a traced call
  EXPECT_EQ(t.seeded_total(), 1u);
  EXPECT_FALSE(t.find(6)->before_tracing);
  EXPECT_TRUE(t.find(0)->before_tracing);
  expect_identity(t);
}

TEST(FdTable, OpenEventAfterASeedOfTheSameFdIsNotAMissedClose) {
  // /proc was read (t=2) after the fd was opened (t=1.5) but before its event was applied.
  FdTable t;
  t.reconcile({listed(7, "/x", FdType::kFile, 1)}, 2.0, true);
  t.open(file(7, "/x", 1.5, false, 3));
  EXPECT_EQ(t.closed_unseen(), 0u);
  EXPECT_EQ(t.seeded_total(), 0u);
  EXPECT_EQ(t.find(7)->stack_id, 3);
  expect_identity(t);
}

TEST(FdTable, DupOverAHeldNumberIsAnUnseenClose) {
  // dup() and F_DUPFD return the lowest free number: if the table holds it, its close went unseen.
  FdTable t;
  t.open(file(3, "/a", 1.0));
  t.open(file(4, "/b", 1.0));
  t.duplicate(3, 4, false, false, 2.0, 5, "dup");
  EXPECT_EQ(t.find(4)->path, "/a");
  EXPECT_EQ(t.closed_unseen(), 1u);
  EXPECT_EQ(t.closed_total(), 1u);
  expect_identity(t);
}

TEST(FdTable, NumbersOnlyReconcileClosesUnlistedAndReportsNew) {
  FdTable t;
  t.reconcile({listed(0, "/dev/null", FdType::kCharDevice, 10)}, 0.0, true);
  t.open(file(3, "/a", 1.0));
  t.open(file(4, "/b", 1.0));
  t.open(file(9, "/c", 1.0));
  // /proc now lists 0, 4, 7: 3 and 9 were closed past close(); 7 was created by an untraced call.
  auto missing = t.reconcile_numbers({0, 4, 7}, 2.0);
  EXPECT_EQ(missing, std::vector<int>{7});
  EXPECT_FALSE(t.find(3));
  EXPECT_FALSE(t.find(9));
  EXPECT_EQ(t.find(4)->path, "/b");  // a number both hold is the same fd
  EXPECT_EQ(t.closed_unseen(), 2u);
  t.add_unseen(listed(7, "anon_inode:[io_uring]", FdType::kIoUring, 50), 2.0);
  EXPECT_EQ(t.opened_unseen(), 1u);
  EXPECT_EQ(t.find(7)->opened_by, "/proc");
  EXPECT_TRUE(t.find(7)->seeded);
  EXPECT_FALSE(t.find(7)->before_tracing);
  EXPECT_EQ(t.find(7)->opened_at_s, 2.0);
  EXPECT_EQ(t.open_count(), 3u);
  EXPECT_EQ(t.opened_total(), 4u);
  EXPECT_EQ(t.closed_total(), 2u);
  expect_identity(t);
  // An empty listing closes everything it does not list.
  EXPECT_TRUE(t.reconcile_numbers({}, 3.0).empty());
  EXPECT_EQ(t.open_count(), 0u);
  expect_identity(t);
}

TEST(FdTable, LateCloseEventOfAReconciledFdCountsAsSeen) {
  // The close happened at 1.5, /proc was read at 2.0, and the close event was applied after that.
  FdTable t;
  t.open(file(3, "/a", 1.0));
  t.open(file(4, "/b", 1.0));
  t.reconcile_numbers({}, 2.0);
  EXPECT_EQ(t.closed_unseen(), 2u);
  EXPECT_TRUE(t.close(3, 1.5));
  EXPECT_EQ(t.closed_unseen(), 1u);
  EXPECT_EQ(t.unknown_closes(), 0u);
  // A close after the listing of an fd no longer held is another fd's: unknown.
  EXPECT_FALSE(t.close(4, 2.5));
  EXPECT_EQ(t.unknown_closes(), 1u);
  EXPECT_EQ(t.closed_unseen(), 1u);
  // close_range claims them the same way.
  t.open(file(5, "/c", 3.0));
  t.open(file(6, "/d", 3.0));
  t.reconcile_numbers({}, 4.0);
  EXPECT_EQ(t.close_range(5, 6, 3.5), 2u);
  EXPECT_EQ(t.closed_unseen(), 1u);
  EXPECT_EQ(t.closed_total(), 4u);
  expect_identity(t);
}

TEST(FdTable, LateOpenEventReplacesTheFdFoundInProc) {
  // Opened at 1.5, found by the numbers-only reconcile at 2.0 before its event was applied: one open, seen.
  FdTable t;
  auto missing = t.reconcile_numbers({8}, 2.0);
  ASSERT_EQ(missing, std::vector<int>{8});
  t.add_unseen(listed(8, "socket:[9]", FdType::kSocket, 9), 2.0);
  FdEntry s;
  s.fd = 8;
  s.type = FdType::kSocket;
  s.opened_at_s = 1.5;
  s.stack_id = 4;
  s.opened_by = "accept4";
  t.open(s);
  EXPECT_EQ(t.opened_unseen(), 0u);
  EXPECT_EQ(t.opened_total(), 1u);
  EXPECT_EQ(t.closed_total(), 0u);
  EXPECT_EQ(t.find(8)->opened_by, "accept4");
  // An open after the listing over a held number is a reuse: the old fd's close was unseen.
  s.opened_at_s = 2.5;
  t.open(s);
  EXPECT_EQ(t.closed_unseen(), 1u);
  expect_identity(t);
}

TEST(FdTable, NumbersOnlyListingOfThisProcessFollowsOpenAndClose) {
  // The listing the per-sample reconciliation reads, against this process's own opens and closes.
  // A high number: reading /proc/self/fd opens a directory fd of its own, at the lowest free number.
  int low = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  ASSERT_GE(low, 0);
  int fd = ::fcntl(low, F_DUPFD_CLOEXEC, 900);
  ::close(low);
  ASSERT_GE(fd, 900);
  auto with = proc::list_fds(getpid(), 1u << 20);
  ASSERT_TRUE(with) << with.error().describe();
  EXPECT_TRUE(std::is_sorted(with->begin(), with->end()));
  EXPECT_NE(std::find(with->begin(), with->end(), fd), with->end());
  ::close(fd);
  auto without = proc::list_fds(getpid(), 1u << 20);
  ASSERT_TRUE(without);
  EXPECT_EQ(std::find(without->begin(), without->end(), fd), without->end());
  EXPECT_EQ(without->size() + 1, with->size());
  // Past the bound the listing is refused, not cut short.
  auto bounded = proc::list_fds(getpid(), 2);
  ASSERT_FALSE(bounded);
  EXPECT_EQ(bounded.error().errno_value, E2BIG);
}

TEST(FdTable, PeakAndSeries) {
  FdTable t;
  for (int fd = 3; fd < 8; ++fd) t.open(file(fd, "/f", 1.0));
  FdEntry s;
  s.fd = 9;
  s.type = FdType::kSocket;
  t.open(s);
  t.record_sample(1.0);
  t.close_range(3, 6, 1.5);
  t.record_sample(2.0);
  EXPECT_EQ(t.peak(), 6u);
  ASSERT_EQ(t.fds_series.size(), 2u);
  EXPECT_EQ(t.fds_series[0].second, 6u);
  EXPECT_EQ(t.fds_series[1].second, 2u);
  EXPECT_EQ(t.sockets_series[1].second, 1u);
}

}  // namespace
}  // namespace memlens::model
