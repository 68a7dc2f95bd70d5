// What a heap snapshot will cost the target, estimated before V8 writes it, so that memlens can refuse one
// that could get the target OOM-killed. V8 builds its own graph of every object and edge of the heap to
// write a snapshot: its cost follows the number of objects far more than their bytes (measured with Node
// 20: 0.4 to 1.5 KB per object whatever its size, so 29 times the heap for one of 46-byte objects and 1.5
// times for one of 1 KB arrays; README). The object count is estimated from the heap's bytes
// and the mean size of the live objects V8's sampling heap profiler has seen.
#pragma once

#include <cstdint>
#include <string>

#include "model/js_objects.h"

namespace memlens::inspector {

struct SnapshotCostModel {
  double heap_factor = 2.0;            // never less than this many times the heap
  double bytes_per_object = 1536;      // what V8 takes per object to write the snapshot (the most measured)
  double assumed_object_bytes = 64;    // the mean object size while the sampling profile holds too little
  double min_profile_bytes = 4 << 20;  // live bytes the profile must hold for its mean to count
};

// Live bytes and (estimated) objects of a sampling profile.
struct ProfileObjects {
  double bytes = 0;
  double objects = 0;
};
ProfileObjects profile_objects(const model::JsLiveProfile& p);

struct SnapshotNeed {
  int64_t bytes = 0;  // free memory the target needs for V8 to write the snapshot
  double objects = 0;
  double mean_object_bytes = 0;
  bool mean_from_profile = false;
  bool measured = false;  // scaled from what the first snapshot took
  std::string basis;      // how `bytes` was reached, for the refusal's sentence
};

// `first_cost`/`first_heap`: what the first snapshot took the target (its RSS growth) for a heap of that
// size; 0 before any.
SnapshotNeed estimate_snapshot_need(uint64_t heap_used, const ProfileObjects& profile,
                                    const SnapshotCostModel& model, uint64_t first_cost, uint64_t first_heap);

}  // namespace memlens::inspector
