// The GC list of a long trace stays bounded, and what it thins out still counts.
#include <gtest/gtest.h>

#include "model/v8_state.h"

namespace memlens::model {
namespace {

GcEvent gc(double t, GcKind kind, double pause_ms, uint64_t after) {
  GcEvent g;
  g.t_s = t;
  g.kind = kind;
  g.pause_ms = pause_ms;
  g.heap_used_after_bytes = after;
  return g;
}

// A server's hour: 130 scavenges a second and a full GC every 10 s. The list stays under its bound, keeps
// every full GC, spreads what it keeps over the whole trace, and the summary counts every GC with its
// pause and the newest heap figure, and its percentiles stay those of the scavenges that are most GCs.
TEST(V8State, ALongTracesGcsAreThinnedEvenlyAndStillCounted) {
  V8State v8;
  uint64_t scavenges = 0, fulls = 0;
  double total = 0, longest = 0;
  const double hour = 3600;
  for (uint64_t i = 0; i < static_cast<uint64_t>(130 * hour); ++i) {
    double t = static_cast<double>(i) / 130;
    bool full = i % 1300 == 0;
    double pause = full ? 40.0 + static_cast<double>(i % 7) : 1.0 + static_cast<double>(i % 5) * 0.1;
    if (i == 200000) pause = 900;  // one long scavenge, maybe thinned out: the longest still counts
    record_gc(v8, gc(t, full ? GcKind::kMarkCompact : GcKind::kScavenge, pause, 1000 + i));
    (full ? fulls : scavenges) += 1;
    total += pause;
    longest = std::max(longest, pause);
    ASSERT_LT(v8.gcs.size(), kMaxGcEventsKept);
  }
  GcSummary s = summarize_gcs(v8);
  EXPECT_EQ(s.count, scavenges + fulls);
  EXPECT_EQ(s.by_kind["scavenge"], scavenges);
  EXPECT_EQ(s.by_kind["mark_compact"], fulls);
  EXPECT_NEAR(s.pause_total_ms, total, 1e-6 * total);
  EXPECT_EQ(s.pause_max_ms, longest);
  EXPECT_EQ(s.heap_used_after_last_gc_bytes, 1000 + static_cast<uint64_t>(130 * hour) - 1);
  EXPECT_GT(v8.gcs_thinned.count, 0u);
  // 99% of GCs are scavenges of 1.0-1.4 ms: the median is one, whatever share full GCs have of the list.
  EXPECT_GE(s.pause_p50_ms, 1.0);
  EXPECT_LE(s.pause_p50_ms, 1.4);
  size_t kept_full = 0;
  for (const auto& g : v8.gcs) kept_full += g.full() ? 1 : 0;
  EXPECT_EQ(kept_full, fulls);
  // Even over the trace: each quarter of the hour keeps about a quarter of the list.
  for (int q = 0; q < 4; ++q) {
    size_t in = 0;
    for (const auto& g : v8.gcs) in += g.t_s >= q * hour / 4 && g.t_s < (q + 1) * hour / 4 ? 1 : 0;
    EXPECT_NEAR(static_cast<double>(in) / static_cast<double>(v8.gcs.size()), 0.25, 0.05) << q;
  }
}

TEST(V8State, AShortTraceKeepsEveryGc) {
  V8State v8;
  for (int i = 0; i < 1000; ++i) record_gc(v8, gc(i, GcKind::kScavenge, 1, 1));
  EXPECT_EQ(v8.gcs.size(), 1000u);
  EXPECT_EQ(v8.gcs_thinned.count, 0u);
  EXPECT_EQ(summarize_gcs(v8).count, 1000u);
}

}  // namespace
}  // namespace memlens::model
