// A long trace's timeline stays bounded and even, the newest sample always in it.
#include <gtest/gtest.h>

#include "model/process.h"

namespace memlens::model {
namespace {

TEST(Timeline, ADaysSamplesAreThinnedEvenlyKeepingTheNewest) {
  Process p({1, 1}, 0);
  const uint64_t n = 86400 + 17;  // a day at one a second, and a few
  for (uint64_t i = 0; i < n; ++i) {
    Sample s;
    s.t_s = static_cast<double>(i);
    add_sample(p, s);
    ASSERT_LT(p.timeline.size(), kMaxTimelineSamples);
    ASSERT_EQ(p.timeline.back().t_s, s.t_s);  // the newest, always
  }
  EXPECT_EQ(p.timeline.size() + p.timeline_thinned, n);
  EXPECT_EQ(p.timeline.front().t_s, 0);
  // Even: every step but the last (to the newest) is the stride.
  double step = p.timeline[1].t_s - p.timeline[0].t_s;
  EXPECT_EQ(step, static_cast<double>(p.timeline_stride));
  for (size_t i = 1; i + 1 < p.timeline.size(); ++i)
    ASSERT_EQ(p.timeline[i].t_s - p.timeline[i - 1].t_s, step) << i;
  EXPECT_LE(p.timeline.back().t_s - p.timeline[p.timeline.size() - 2].t_s, step);
}

TEST(Timeline, AShortTraceKeepsEverySample) {
  Process p({1, 1}, 0);
  for (int i = 0; i < 3600; ++i) {
    Sample s;
    s.t_s = i;
    add_sample(p, s);
  }
  EXPECT_EQ(p.timeline.size(), 3600u);
  EXPECT_EQ(p.timeline_thinned, 0u);
}

}  // namespace
}  // namespace memlens::model
