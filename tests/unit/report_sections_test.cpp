// Per-process report sections computed from the model.
#include <gtest/gtest.h>

#include "report/sections.h"
#include "report/verdict_section.h"

namespace memlens::report {
namespace {

model::Process with_live_series(std::vector<uint64_t> live, bool attached_late) {
  model::Process p({4242, 1}, 1);
  p.attached_late = attached_late;
  p.v8.array_buffers_probed = true;
  p.v8.array_buffers_source = "allocator_counter";
  double t = 0;
  for (uint64_t v : live) {
    model::Sample s;
    s.t_s = t++;
    s.array_buffers_bytes = v;
    p.timeline.push_back(s);
    p.v8.array_buffer_live_bytes = v;
  }
  return p;
}

TEST(ArrayBuffersSection, TotalsAreLowerBoundsFromTheLiveFigure) {
  auto j = v8_array_buffers_section(with_live_series({4, 10, 5, 20}, false));
  // Traced from the start: the first sample's 4 bytes were allocated too.
  EXPECT_EQ(j["allocated_bytes_total"], 4 + 6 + 15);
  EXPECT_EQ(j["freed_bytes_total"], 5);
  EXPECT_EQ(j["totals_exact"], false);
  EXPECT_TRUE(j.contains("totals_note"));
  // allocated - freed is what is live now, less what was live before tracing.
  EXPECT_EQ(j["allocated_bytes_total"].get<uint64_t>() - j["freed_bytes_total"].get<uint64_t>(),
            j["live_bytes"].get<uint64_t>());
}

TEST(ArrayBuffersSection, AfterAttachCountedFromTheFirstSample) {
  auto j = v8_array_buffers_section(with_live_series({100, 90, 130}, true));
  EXPECT_EQ(j["allocated_bytes_total"], 40);
  EXPECT_EQ(j["freed_bytes_total"], 10);
}

TEST(ArrayBuffersSection, ExactWhenEveryAllocationIsCounted) {
  auto p = with_live_series({1, 2}, false);
  p.v8.array_buffers_counting = true;
  p.v8.array_buffer_allocated_total = 1000;
  p.v8.array_buffer_freed_total = 998;
  auto j = v8_array_buffers_section(p);
  EXPECT_EQ(j["allocated_bytes_total"], 1000);
  EXPECT_EQ(j["freed_bytes_total"], 998);
  EXPECT_EQ(j["totals_exact"], true);
}

TEST(GcSection, SaysWhenTriggerStacksStandForMoreGcsThanThemselves) {
  model::Process p({1, 1}, 0);
  p.v8.probed = true;
  p.v8.trigger_stacks = 3;
  p.v8.trigger_stack_gcs = 3;  // every GC with its own stack: nothing sampled away, nothing to say
  EXPECT_FALSE(v8_gc_section(p).contains("trigger_stacks"));
  p.v8.trigger_stack_gcs = 40;
  auto gc = v8_gc_section(p);
  ASSERT_TRUE(gc.contains("trigger_stacks")) << gc.dump();
  EXPECT_EQ(gc["trigger_stacks"]["stacks"], 3);
  EXPECT_EQ(gc["trigger_stacks"]["gcs"], 40);
}

TEST(MemoryLimit, TheCgroupsLimitAgainstItsWholeUsageElseTheHosts) {
  model::ProcessLimits l;
  l.host_memory_bytes = 8ull << 30;
  l.host_memory_available_bytes = 3ull << 30;
  // No cgroup limit: the host's memory, MemTotal - MemAvailable in use.
  auto m = memory_limit(l);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->scope, analyze::MemoryLimit::Scope::host);
  EXPECT_EQ(m->limit_bytes, double(8ull << 30));
  EXPECT_EQ(m->usage_bytes, double(5ull << 30));
  // A limit on an ancestor: that cgroup is named, its usage counts.
  l.cgroup_memory_max_bytes = 512ull << 20;
  l.cgroup_usage_bytes = 300ull << 20;
  l.cgroup_version = "v1";
  l.cgroup_path = "/svc/leaf";
  l.cgroup_limit_set_at = "/svc";
  m = memory_limit(l);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->scope, analyze::MemoryLimit::Scope::cgroup);
  EXPECT_EQ(m->limit_bytes, double(512ull << 20));
  EXPECT_EQ(m->usage_bytes, double(300ull << 20));
  EXPECT_EQ(m->where, "cgroup v1 /svc");
  // A cgroup limit above the host's memory is never reached: the host runs out first.
  l.cgroup_memory_max_bytes = 64ull << 30;
  EXPECT_EQ(memory_limit(l)->scope, analyze::MemoryLimit::Scope::host);
  // Nothing read: no projection.
  EXPECT_FALSE(memory_limit(model::ProcessLimits{}));
}

}  // namespace
}  // namespace memlens::report
