// The verdict column of `memlens top` on series whose shape is known by construction.
#include <gtest/gtest.h>

#include <vector>

#include "analyze/top_verdict.h"

namespace memlens::analyze {
namespace {

constexpr double kMiB = 1024.0 * 1024.0;

// n points one second apart: start + rate * t (bytes).
std::vector<SeriesPoint> line(size_t n, double start, double rate) {
  std::vector<SeriesPoint> out;
  for (size_t i = 0; i < n; ++i)
    out.push_back({static_cast<double>(i), start + rate * static_cast<double>(i)});
  return out;
}

// One GC every 2 s, each `full_every`-th a full GC (0: none), heap used after it start + rate * t.
std::vector<GcPoint> gcs(size_t seconds, double start, double rate, size_t full_every) {
  std::vector<GcPoint> out;
  for (size_t i = 0; i * 2 < seconds; ++i) {
    double t = 2.0 * static_cast<double>(i);
    out.push_back({t, start + rate * t, full_every != 0 && i % full_every == 0});
  }
  return out;
}

TEST(TopVerdict, TooLittleHistoryIsADash) {
  EXPECT_EQ(top_verdict(line(3, 100 * kMiB, 0), gcs(3, 20 * kMiB, 0, 1)), "-");
}

TEST(TopVerdict, FlatSeriesAreStable) {
  EXPECT_EQ(top_verdict(line(60, 100 * kMiB, 0), gcs(60, 20 * kMiB, 0, 3)), "stable");
  EXPECT_EQ(top_verdict(line(60, 100 * kMiB, 0), {}), "stable");
}

TEST(TopVerdict, RisingRssIsGrowth) {
  EXPECT_EQ(top_verdict(line(60, 100 * kMiB, 1 * kMiB), gcs(60, 20 * kMiB, 0, 3)), "grow?");
}

TEST(TopVerdict, HeapRiseProvenByFullGcsIsALeak) {
  EXPECT_EQ(top_verdict(line(60, 100 * kMiB, 1 * kMiB), gcs(60, 20 * kMiB, 1 * kMiB, 3)), "leak?");
}

// Two full GCs early in the history (at 4 and 14 s) 5 MiB apart at the figures' own pace: under the 16 MiB
// one full GC must prove against the lowest figure, but two measure the live growth between them.
TEST(TopVerdict, HeapRiseBetweenTwoFullGcsIsALeak) {
  std::vector<GcPoint> h = gcs(60, 20 * kMiB, 0.5 * kMiB, 0);
  for (auto& g : h) g.full = g.t_s == 4 || g.t_s == 14;
  EXPECT_EQ(top_verdict(line(60, 100 * kMiB, 1 * kMiB), h), "leak?");
  // The same two full GCs finding no growth between them prove nothing.
  for (auto& g : h)
    if (g.t_s == 14) g.heap_used_after_bytes = 22 * kMiB;
  EXPECT_EQ(top_verdict(line(60, 100 * kMiB, 1 * kMiB), h), "grow?");
}

TEST(TopVerdict, HeapRiseWithoutAFullGcIsOnlyGrowth) {
  EXPECT_EQ(top_verdict(line(60, 100 * kMiB, 0), gcs(60, 20 * kMiB, 1 * kMiB, 0)), "grow?");
}

}  // namespace
}  // namespace memlens::analyze
