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
