// What the JS-objects state keeps of a long run: every forced GC and other client counted, a bounded
// number listed.
#include <gtest/gtest.h>

#include "model/js_objects.h"

namespace memlens::model {
namespace {

TEST(JsObjectsState, EveryForcedGcIsCountedAndTheLatestAreListed) {
  JsObjectsState s;
  const int n = 1000;  // about 50 minutes of profile reads
  double total = 0;
  for (int i = 0; i < n; ++i) {
    JsForcedGc g;
    g.t_s = 3.0 * i;
    g.pause_ms = (i % 7) + 0.5;
    g.ok = i % 100 != 0;
    total += g.pause_ms;
    apply(s, g);
  }
  EXPECT_EQ(s.forced_gc_totals.count, static_cast<uint64_t>(n));
  EXPECT_EQ(s.forced_gc_totals.failed, 10u);
  EXPECT_DOUBLE_EQ(s.forced_gc_totals.pause_total_ms, total);
  EXPECT_DOUBLE_EQ(s.forced_gc_totals.pause_max_ms, 6.5);
  ASSERT_EQ(s.forced_gcs.size(), kMaxForcedGcsListed);
  EXPECT_DOUBLE_EQ(s.forced_gcs.front().t_s, 3.0 * (n - kMaxForcedGcsListed));  // the latest, in order
  EXPECT_DOUBLE_EQ(s.forced_gcs.back().t_s, 3.0 * (n - 1));
}

TEST(JsObjectsState, OtherClientsAreCountedAndTheFirstAreListed) {
  JsObjectsState s;
  for (int i = 0; i < 200; ++i) apply(s, JsOtherClient{1.0 * i, "127.0.0.1:" + std::to_string(40000 + i)});
  EXPECT_EQ(s.other_clients_total, 200u);
  ASSERT_EQ(s.other_clients.size(), kMaxOtherClientsListed);
  EXPECT_EQ(s.other_clients.front().peer, "127.0.0.1:40000");  // kept in place: streamed by index
}

}  // namespace
}  // namespace memlens::model
