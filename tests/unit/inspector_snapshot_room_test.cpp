// The estimate of what a heap snapshot costs the target, made before V8 writes one.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "inspector/snapshot_room.h"

namespace memlens::inspector {
namespace {

constexpr double MiB = 1024.0 * 1024.0;

model::JsLiveProfile profile_of(double bytes, double objects) {
  model::JsLiveProfile p;
  model::JsLiveSite a, b;
  a.bytes = static_cast<uint64_t>(bytes / 2);
  a.objects = static_cast<uint64_t>(objects / 2);
  b.bytes = static_cast<uint64_t>(bytes / 2);
  b.objects = static_cast<uint64_t>(objects / 2);
  p.sites = {a, b};
  return p;
}

TEST(SnapshotRoom, ProfileObjectsSumTheLiveSites) {
  ProfileObjects o = profile_objects(profile_of(8 * MiB, 200000));
  EXPECT_DOUBLE_EQ(o.bytes, 8 * MiB);
  EXPECT_DOUBLE_EQ(o.objects, 200000);
}

// A heap of small objects (40 bytes each, as the profile's live objects are): V8 needs its graph of
// 2.6 M objects, far more than twice the heap.
TEST(SnapshotRoom, SmallObjectsNeedTheirCountTimesTheCostPerObject) {
  SnapshotCostModel m;
  SnapshotNeed n =
      estimate_snapshot_need(100 * MiB, profile_objects(profile_of(8 * MiB, 8 * MiB / 40)), m, 0, 0);
  EXPECT_TRUE(n.mean_from_profile);
  EXPECT_NEAR(n.mean_object_bytes, 40, 0.01);  // the sites hold whole objects: near, not exact
  EXPECT_NEAR(n.objects, 100 * MiB / 40, 100);
  EXPECT_NEAR(static_cast<double>(n.bytes), 100 * MiB / 40 * m.bytes_per_object, 100 * m.bytes_per_object);
  EXPECT_GT(static_cast<double>(n.bytes), 30 * 100 * MiB);
  EXPECT_THAT(n.basis, ::testing::HasSubstr("sampling heap profile's live objects"));
}

// Large objects (1 KB arrays): the graph is small beside the heap; never less than twice the heap.
TEST(SnapshotRoom, LargeObjectsNeedNoLessThanTwiceTheHeap) {
  SnapshotCostModel m;
  SnapshotNeed n = estimate_snapshot_need(100 * MiB, profile_objects(profile_of(8 * MiB, 8 * 1024)), m, 0, 0);
  EXPECT_NEAR(n.mean_object_bytes, 1024, 0.01);
  EXPECT_EQ(n.bytes, static_cast<int64_t>(2 * 100 * MiB));
}

// A profile that holds too little (an attach to a quiet process, seconds in): the mean is assumed, and
// says so.
TEST(SnapshotRoom, TooSmallAProfileAssumesTheMeanAndSaysSo) {
  SnapshotCostModel m;
  SnapshotNeed n = estimate_snapshot_need(100 * MiB, profile_objects(profile_of(1 * MiB, 10)), m, 0, 0);
  EXPECT_FALSE(n.mean_from_profile);
  EXPECT_DOUBLE_EQ(n.mean_object_bytes, m.assumed_object_bytes);
  EXPECT_THAT(n.basis, ::testing::HasSubstr("assumed"));
  SnapshotNeed empty = estimate_snapshot_need(100 * MiB, {}, m, 0, 0);
  EXPECT_EQ(empty.bytes, n.bytes);
}

// After the first snapshot, what it took the target, scaled to the heap now, and never below twice it.
TEST(SnapshotRoom, AfterTheFirstSnapshotItsMeasuredCostScales) {
  SnapshotCostModel m;
  auto first_cost = static_cast<uint64_t>(900 * MiB), first_heap = static_cast<uint64_t>(30 * MiB);
  SnapshotNeed n = estimate_snapshot_need(60 * MiB, profile_objects(profile_of(8 * MiB, 8 * 1024)), m,
                                          first_cost, first_heap);
  EXPECT_TRUE(n.measured);
  EXPECT_EQ(n.bytes, static_cast<int64_t>(1800 * MiB));
  EXPECT_THAT(n.basis, ::testing::HasSubstr("the first snapshot took"));
  SnapshotNeed cheap = estimate_snapshot_need(60 * MiB, {}, m, static_cast<uint64_t>(10 * MiB), first_heap);
  EXPECT_EQ(cheap.bytes, static_cast<int64_t>(120 * MiB));
}

}  // namespace
}  // namespace memlens::inspector
