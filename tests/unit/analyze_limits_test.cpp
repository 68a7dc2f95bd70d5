// Time to the memory limit: growing categories projected to the cgroup's (or host's) limit against the
// whole usage, at the sum of their rates; V8's heap limit where it comes sooner for js_heap.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "analyze/verdicts.h"

namespace memlens::analyze {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr double MB = 1024.0 * 1024.0;

std::vector<SeriesPoint> line(double start, double per_s, double duration_s, double noise,
                              std::mt19937& rng) {
  std::normal_distribution<double> n(0, noise);
  std::vector<SeriesPoint> out;
  for (double t = 0; t <= duration_s; t += 1)
    out.push_back({t, start + per_s * t + (noise > 0 ? n(rng) : 0)});
  return out;
}

const Verdict* find(const std::vector<Verdict>& vs, Category c) {
  for (const auto& v : vs)
    if (v.category == c) return &v;
  return nullptr;
}

// Buffers leaking at ab_rate and the native heap growing at native_rate (bytes/s), for 60 s.
AnalysisInput buffers_and_native(double ab_rate, double native_rate, std::mt19937& rng) {
  AnalysisInput in;
  in.array_buffers_live = line(10 * MB, ab_rate, 60, 0.05 * MB, rng);
  in[Category::array_buffers].resident = in.array_buffers_live;
  in[Category::native_heap].resident = line(20 * MB, native_rate, 60, 0.01 * MB, rng);
  return in;
}

MemoryLimit cgroup_limit(double limit, double usage) {
  return {MemoryLimit::Scope::cgroup, limit, usage, "cgroup v1 /svc"};
}

TEST(MemoryLimitProjection, BufferLeakAloneUsesItsRateAndTheWholeCgroupUsage) {
  std::mt19937 rng(1);
  const double rate = 2 * MB;  // per second
  AnalysisInput in;
  in.array_buffers_live = line(10 * MB, rate, 60, 0.1 * MB, rng);
  in[Category::array_buffers].resident = in.array_buffers_live;
  in[Category::rss].resident = line(60 * MB, rate, 60, 0.2 * MB, rng);
  // Another process of the cgroup holds 200 MiB: the headroom is the cgroup's, not this process's.
  in.memory_limit = cgroup_limit(512 * MB, 380 * MB);
  auto vs = analyze(in);
  const Verdict* v = find(vs, Category::array_buffers);
  ASSERT_NE(v, nullptr);
  ASSERT_EQ(v->kind, VerdictKind::leak_suspected);
  ASSERT_TRUE(v->seconds_to_limit);
  double truth = (512 - 380) * MB / rate;
  EXPECT_NEAR(*v->seconds_to_limit, truth, 0.05 * truth);
  ASSERT_TRUE(v->projection);
  EXPECT_EQ(v->projection->limit, "cgroup");
  EXPECT_EQ(v->projection->limit_value, 512 * MB);
  EXPECT_EQ(v->projection->used_value, 380 * MB);
  EXPECT_EQ(v->projection->where, "cgroup v1 /svc");
  EXPECT_THAT(v->evidence, HasSubstr("the 512.0 MiB memory limit of cgroup v1 /svc is reached in"));
  EXPECT_THAT(v->evidence,
              HasSubstr("380.0 MiB of it in use at the last sample by the whole cgroup, 132.0 MiB left"));
  EXPECT_THAT(v->headline, HasSubstr("; memory limit in "));
  // RSS, the total, is projected at its own rate.
  const Verdict* rss = find(vs, Category::rss);
  ASSERT_NE(rss, nullptr);
  if (is_growing(rss->kind)) {
    ASSERT_TRUE(rss->seconds_to_limit);
    EXPECT_NEAR(*rss->seconds_to_limit, (132 * MB) / rss->rate_per_s, 1);
  }
}

TEST(MemoryLimitProjection, TwoLeaksReachTheLimitTogether) {
  std::mt19937 rng(2);
  const double ab_rate = 1 * MB, native_rate = 0.5 * MB;
  AnalysisInput in = buffers_and_native(ab_rate, native_rate, rng);
  in.memory_limit = cgroup_limit(1024 * MB, 424 * MB);
  auto vs = analyze(in);
  const Verdict* ab = find(vs, Category::array_buffers);
  const Verdict* nh = find(vs, Category::native_heap);
  ASSERT_TRUE(ab && nh);
  ASSERT_EQ(ab->kind, VerdictKind::leak_suspected);
  ASSERT_EQ(nh->kind, VerdictKind::leak_suspected);
  ASSERT_FALSE(nh->part_of);  // half the Buffer rate: a leak of its own
  double truth = 600 * MB / (ab_rate + native_rate);
  ASSERT_TRUE(ab->seconds_to_limit && nh->seconds_to_limit);
  EXPECT_NEAR(*ab->seconds_to_limit, truth, 0.05 * truth);
  EXPECT_NEAR(*nh->seconds_to_limit, truth, 0.05 * truth);
  EXPECT_THAT(ab->evidence, HasSubstr("at the growth of array_buffers +"));
  EXPECT_THAT(ab->evidence, HasSubstr(", native_heap +"));
  EXPECT_EQ(ab->projection->growing.size(), 2u);
}

TEST(MemoryLimitProjection, CompanionCountsInTheSumButCarriesNoTime) {
  std::mt19937 rng(3);
  const double ab_rate = 2 * MB, native_rate = 0.04 * MB;  // 2%: V8's bookkeeping of the Buffers
  AnalysisInput in = buffers_and_native(ab_rate, native_rate, rng);
  in.memory_limit = cgroup_limit(512 * MB, 300 * MB);
  auto vs = analyze(in);
  const Verdict* nh = find(vs, Category::native_heap);
  const Verdict* ab = find(vs, Category::array_buffers);
  ASSERT_TRUE(nh && ab);
  ASSERT_EQ(nh->part_of, Category::array_buffers);
  EXPECT_FALSE(nh->seconds_to_limit);
  double truth = 212 * MB / (ab_rate + native_rate);
  EXPECT_NEAR(*ab->seconds_to_limit, truth, 0.05 * truth);
}

TEST(MemoryLimitProjection, HeapLimitSoonerStaysAndTheMemoryLimitIsSaid) {
  std::mt19937 rng(4);
  AnalysisInput in;
  const double rate = 1 * MB;
  for (double t = 0; t <= 60; t += 2) in.js_heap_after_gc.push_back({t, 40 * MB + rate * t, true});
  in[Category::js_heap].limit = 200 * MB;  // 100 MiB used at the end: ~100 s to V8's limit
  in.memory_limit = cgroup_limit(4096 * MB, 1024 * MB);
  auto vs = analyze(in);
  const Verdict* v = find(vs, Category::js_heap);
  ASSERT_NE(v, nullptr);
  ASSERT_EQ(v->kind, VerdictKind::leak_suspected);
  ASSERT_TRUE(v->seconds_to_limit && v->projection);
  EXPECT_EQ(v->projection->limit, "heap");
  EXPECT_NEAR(*v->seconds_to_limit, 100, 10);
  EXPECT_THAT(v->evidence, HasSubstr("it reaches the 200.0 MiB heap limit in 1"));
  EXPECT_THAT(v->evidence, HasSubstr("the 4.0 GiB memory limit of cgroup v1 /svc comes later, in 5"));

  // A tight cgroup comes first: its time, and the heap limit still said.
  in.memory_limit = cgroup_limit(512 * MB, 482 * MB);
  vs = analyze(in);
  v = find(vs, Category::js_heap);
  ASSERT_TRUE(v->seconds_to_limit && v->projection);
  EXPECT_EQ(v->projection->limit, "cgroup");
  EXPECT_NEAR(*v->seconds_to_limit, 30, 3);
  EXPECT_THAT(v->evidence, HasSubstr("it reaches the 200.0 MiB heap limit in 1"));
  EXPECT_THAT(v->evidence, HasSubstr("sooner than that, at the growth of js_heap"));
}

TEST(MemoryLimitProjection, HostMemoryWhenNoCgroupLimitAndPastTheLimit) {
  std::mt19937 rng(5);
  AnalysisInput in;
  in[Category::native_heap].resident = line(20 * MB, 1 * MB, 60, 0.05 * MB, rng);
  in.memory_limit = MemoryLimit{MemoryLimit::Scope::host, 8192 * MB, 8000 * MB, "host"};
  auto vs = analyze(in);
  const Verdict* v = find(vs, Category::native_heap);
  ASSERT_TRUE(v && v->seconds_to_limit);
  EXPECT_NEAR(*v->seconds_to_limit, 192, 10);
  EXPECT_EQ(v->projection->limit, "host");
  EXPECT_THAT(v->evidence, HasSubstr("the host's 8.0 GiB of memory is reached in"));
  EXPECT_THAT(v->evidence, HasSubstr("(MemTotal - MemAvailable)"));
  EXPECT_THAT(v->headline, HasSubstr("host memory in"));

  in.memory_limit->usage_bytes = 9000 * MB;
  vs = analyze(in);
  v = find(vs, Category::native_heap);
  EXPECT_EQ(*v->seconds_to_limit, 0);
  EXPECT_THAT(v->evidence, HasSubstr("it is already reached"));
}

TEST(MemoryLimitProjection, StableAndCountCategoriesAreNotProjected) {
  std::mt19937 rng(6);
  AnalysisInput in;
  in[Category::native_heap].resident = line(20 * MB, 0, 60, 0.05 * MB, rng);
  in[Category::fds].resident = line(20, 5, 60, 0, rng);
  in.memory_limit = cgroup_limit(512 * MB, 100 * MB);
  auto vs = analyze(in);
  const Verdict* nh = find(vs, Category::native_heap);
  const Verdict* fds = find(vs, Category::fds);
  ASSERT_TRUE(nh && fds);
  EXPECT_FALSE(nh->seconds_to_limit);
  EXPECT_EQ(fds->kind, VerdictKind::leak_suspected);
  EXPECT_FALSE(fds->seconds_to_limit);  // no RLIMIT_NOFILE given, and memory does not apply
  EXPECT_THAT(fds->evidence, Not(HasSubstr("memory limit")));
}

}  // namespace
}  // namespace memlens::analyze
