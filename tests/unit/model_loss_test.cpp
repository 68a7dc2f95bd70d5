// The loss vocabulary (model/loss.h): events lost add up by cause; untraced time counts the stretches when
// at least one capability of a process was not traced, once however many were missing at once.
#include <gtest/gtest.h>

#include "model/loss.h"
#include "model/trace.h"

namespace memlens::model {
namespace {

TEST(EventLoss, TotalIsTheSumOfItsCauses) {
  EventLoss a;
  a.ring_full = 3;
  a.malformed = 1;
  EventLoss b;
  b.map_full = 2;
  b.unpaired = 4;
  b.unknown_process = 5;
  a += b;
  EXPECT_EQ(a.total(), 15u);
  uint64_t sum = 0;
  for (const auto& [cause, n] : a.by_cause()) sum += n;
  EXPECT_EQ(sum, a.total());
}

TEST(UntracedTime, OverlappingCapabilitiesCountOnce) {
  UntracedTime u;
  EXPECT_FALSE(u.any());
  u.begin("address space", 1.0, "no C library");
  u.begin("fds", 1.5, "fd probes refused");
  u.end("address space", 2.0);
  EXPECT_DOUBLE_EQ(u.seconds(2.5), 1.5);  // 1.0 .. 2.5, fds still missing
  u.end("fds", 3.0);
  EXPECT_DOUBLE_EQ(u.seconds(10.0), 2.0);  // 1.0 .. 3.0
  EXPECT_TRUE(u.any());
  EXPECT_EQ(u.reason(), "no C library; fd probes refused");
}

TEST(UntracedTime, AStretchInThePastAndAnOpenOne) {
  UntracedTime u;
  u.add(0.25, "not held");
  u.begin("address space", 4.0, "statically linked");
  u.begin("address space", 5.0, "statically linked");  // already open: still from 4.0, reason once
  EXPECT_DOUBLE_EQ(u.seconds(6.0), 2.25);
  u.end_all(7.0);
  EXPECT_DOUBLE_EQ(u.seconds(100.0), 3.25);
  EXPECT_EQ(u.reason(), "not held; statically linked");
  u.end("fds", 8.0);  // never begun: nothing changes
  EXPECT_DOUBLE_EQ(u.seconds(100.0), 3.25);
}

TEST(TraceLoss, SourcesAddUpAndUntracedProcessesAreCountedApart) {
  Trace t;
  t.info.loss_by_source["kernel"].ring_full = 7;
  t.info.loss_by_source["v8"].unpaired = 2;
  t.info.loss_by_source["tracer"].malformed = 1;
  EXPECT_EQ(t.events_lost().total(), 10u);
  auto& a = t.processes.add({100, 1}, 1);
  auto& b = t.processes.add({101, 1}, 1);
  t.processes.add({102, 1}, 1);  // traced throughout
  a.untraced.add(0.5, "not held");
  b.untraced.begin("address space", 1.0, "statically linked");
  b.exited_at_s = 3.0;  // its stretch ends with it, not at the trace's end
  auto u = t.untraced(10.0);
  EXPECT_EQ(u.processes, 2u);
  EXPECT_DOUBLE_EQ(u.seconds, 2.5);
  EXPECT_EQ(t.events_lost().total(), 10u);  // untraced time is never an event lost
}

}  // namespace
}  // namespace memlens::model
