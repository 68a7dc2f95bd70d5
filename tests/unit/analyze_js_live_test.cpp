// Growing allocation sites from sampling-profile series (analyze/js_live.h), on series shaped like the
// ones V8 gives: a leak whose allocations move to the optimized caller's site mid-way, an LRU at its bound
// refilled from optimized code (one site rises as its sibling falls), and churn.
#include <gtest/gtest.h>

#include <cmath>

#include "analyze/js_live.h"

namespace memlens::analyze {
namespace {

using model::JsFrame;
using model::JsStack;

const JsFrame kTimers{"listOnTimeout", "node:internal/timers", 517, 25};
const JsFrame kLoop{"", "/app/common.js", 303, 29};
const JsFrame kLeak{"rememberUser", "/app/leak.js", 11, 22};
const JsFrame kOther{"render", "/app/view.js", 5, 3};

// Profiles every 3 s; bytes_at(site, i) gives each site's live bytes at profile i.
template <typename F>
model::JsObjectsState profiles(const std::vector<JsStack>& sites, int count, F bytes_at) {
  model::JsObjectsState s;
  for (int i = 0; i < count; ++i) {
    model::JsLiveProfile p;
    p.t_s = 3.0 * i;
    p.sampling_interval_bytes = 32768;
    for (size_t k = 0; k < sites.size(); ++k) {
      double b = bytes_at(k, i);
      if (b > 0) p.sites.push_back({sites[k], static_cast<uint64_t>(b), static_cast<uint64_t>(b / 100)});
    }
    model::apply(s, p);
  }
  return s;
}

TEST(JsLive, ALeakThatMovesToTheOptimizedCallerIsNamedWithTheInlinedFunction) {
  // Until profile 4 the leak allocates under rememberUser; then V8 optimizes the loop and inlines it.
  std::vector<JsStack> sites = {{kTimers, kLoop, kLeak}, {kTimers, kLoop}, {kTimers, kLoop, kOther}};
  auto s = profiles(sites, 12, [](size_t k, int i) -> double {
    const double mb = 1 << 20;
    if (k == 0) return std::min(i, 4) * 1.0 * mb;
    if (k == 1) return std::max(0, i - 4) * 1.0 * mb;
    return 2 * mb;  // steady
  });
  auto g = growing_js_sites(s);
  ASSERT_EQ(g.size(), 1u);
  EXPECT_EQ(g[0].stack, (JsStack{kTimers, kLoop}));
  ASSERT_FALSE(g[0].inlined_candidates.empty());
  EXPECT_EQ(g[0].inlined_candidates.front(), kLeak);
  EXPECT_NEAR(g[0].rate_bytes_per_s, (1 << 20) / 3.0, (1 << 20) / 30.0);
}

TEST(JsLive, AnLruRefilledFromOptimizedCodeIsNotGrowth) {
  // The cache holds 8 MB throughout; its entries move from the inlined callee's site to the caller's.
  std::vector<JsStack> sites = {{kTimers, kLoop, kLeak}, {kTimers, kLoop}};
  auto s = profiles(sites, 12, [](size_t k, int i) -> double {
    const double mb = 1 << 20;
    double moved = std::min(8.0, 0.8 * i) * mb;
    return k == 0 ? 8 * mb - moved : moved;
  });
  EXPECT_TRUE(growing_js_sites(s).empty());
}

TEST(JsLive, ChurnAndACacheAtItsBoundAreNotGrowth) {
  std::vector<JsStack> sites = {{kTimers, kLoop, kLeak}, {kTimers, kOther}};
  auto s = profiles(sites, 15, [](size_t k, int i) -> double {
    const double mb = 1 << 20;
    if (k == 0) return std::min(i, 5) * 2 * mb;  // filled to its bound in 15 s, then flat
    return (3 + std::sin(i * 1.7) * 1.5) * mb;   // churn
  });
  EXPECT_TRUE(growing_js_sites(s).empty());
}

// Attached to a process whose LRU is at its bound: its entries are replaced at a steady rate, so the
// sampled live bytes of the inserting site rise from nothing to the cache's size over most of the trace
// (only what is allocated after the profiler started is sampled), while the heap after full GCs stays
// flat. The same site rising with the heap is a leak.
TEST(JsLive, ASitesRiseIsGrowthOnlyWhereTheHeapRoseWithIt) {
  const double mb = 1 << 20;
  std::vector<JsStack> sites = {{kTimers, kLoop, kLeak}};
  // 16 MB replaced over 27 s of a 30 s trace: still rising in the last 40% of it.
  auto s =
      profiles(sites, 11, [&](size_t, int i) -> double { return std::min(3.0 * i / 27.0, 1.0) * 16 * mb; });
  std::vector<SeriesPoint> flat, rising;
  for (int i = 0; i < 11; ++i) {
    flat.push_back({3.0 * i - 0.1, 60 * mb + (i % 2) * 0.3 * mb});  // a full GC before each profile read
    rising.push_back({3.0 * i - 0.1, 60 * mb + std::min(3.0 * i / 27.0, 1.0) * 15 * mb});
  }
  EXPECT_EQ(growing_js_sites(s).size(), 1u) << "without the heap's figures the rise alone decides";
  EXPECT_TRUE(growing_js_sites(s, {}, flat).empty()) << "a turnover counted as growth";
  EXPECT_EQ(growing_js_sites(s, {}, rising).size(), 1u) << "a leak the heap confirms was left out";
  // Too few full GCs in the window to judge: the rise alone decides.
  EXPECT_EQ(growing_js_sites(s, {}, std::span(flat).first(2)).size(), 1u);
}

TEST(JsLive, HeapAfterFullGcsTakesOnlyFullGcsWithAFigure) {
  model::V8State v8;
  v8.gcs.push_back({1.0, model::GcKind::kScavenge, 1.0, 10, 5});
  v8.gcs.push_back({2.0, model::GcKind::kMarkCompact, 5.0, 20, 15});
  v8.gcs.push_back({3.0, model::GcKind::kMarkCompact, 5.0, 20, std::nullopt});
  auto h = heap_after_full_gcs(v8);
  ASSERT_EQ(h.size(), 1u);
  EXPECT_EQ(h[0].t_s, 2.0);
  EXPECT_EQ(h[0].value, 15.0);
}

TEST(JsLive, TooFewProfilesJudgeNothing) {
  std::vector<JsStack> sites = {{kTimers, kLoop, kLeak}};
  auto s = profiles(sites, 3, [](size_t, int i) -> double { return i * 10.0 * (1 << 20); });
  EXPECT_TRUE(growing_js_sites(s).empty());
}

TEST(JsLive, ModelKeepsASiteThatVanishedAtZero) {
  model::JsObjectsState s;
  model::apply(s, model::JsLiveProfile{0, 32768, {{{kLeak}, 100, 1}}});
  model::apply(s, model::JsLiveProfile{3, 32768, {}});
  ASSERT_EQ(s.series.size(), 1u);
  ASSERT_EQ(s.series[0].size(), 2u);
  EXPECT_EQ(s.series[0][1].bytes, 0u);
  EXPECT_TRUE(s.last.empty());
  EXPECT_EQ(s.profiles, 2u);
}

}  // namespace
}  // namespace memlens::analyze
