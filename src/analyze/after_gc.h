// What heap-used-after-GC figures can prove about live JS objects. Every after-GC figure is an upper bound
// on the live bytes at its moment; a full GC's figure is the live bytes themselves (plus what died while it
// marked). So a full GC's figure above an earlier after-GC figure proves that much live growth, however
// few full GCs V8 ran. See docs/verdicts.md ("Growth a full GC proves").
#pragma once

#include <span>
#include <vector>

namespace memlens::analyze {

// One heap-used-after-GC figure (what --trace-gc prints after the arrow).
struct GcPoint {
  double t_s = 0;
  double heap_used_after_bytes = 0;
  // True for a full (mark-compact / mark-sweep) GC. A scavenge's after-figure still counts old-space
  // garbage that only a full GC frees, so the two kinds are not comparable: see docs/verdicts.md.
  bool full = false;
};

struct LiveGrowthProof {
  bool has_full_gc = false;             // a full GC with an earlier figure to compare with
  double from_t_s = 0, from_bytes = 0;  // the earlier after-GC figure it is compared with (an upper bound)
  double full_t_s = 0, full_bytes = 0;  // the last full GC of the window
  // The after-GC figure just before that full GC: what the figures showed when it ran. A full GC far
  // below it found most of the rise to be garbage.
  double before_full_bytes = 0;
  double proven_bytes = 0;  // full_bytes - from_bytes: live growth at least this large
  // The earlier full GCs of the window, within the same rate bound of the last one, in time order. Both
  // figures are live bytes, so their difference is the live growth between them itself, not a bound.
  std::vector<GcPoint> earlier_fulls;
  // An after-GC figure after the full GC fell below full_bytes by more than the tolerance given: live
  // objects the full GC counted were freed since, so the growth is over (a burst), not a leak.
  bool released = false;
  double released_to_bytes = 0;
};

// `gcs` in time order. Uses the last full GC (the most recent proof, and the one that would show a
// released burst) against the earlier figure that proves the most growth at a rate of at most
// `max_rate` bytes/s (a pair that implies a faster growth proves something else: a start-up that built its
// state in seconds, say). `release_tolerance` is the fall that counts as a release.
LiveGrowthProof prove_live_growth(std::span<const GcPoint> gcs, double max_rate, double release_tolerance);

}  // namespace memlens::analyze
