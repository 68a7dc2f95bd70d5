// Growth statistics of one series, as the verdict rules (verdicts.cpp) read them: a robust trend
// (Theil-Sen, Mann-Kendall: trend.h), whether it rose by more than the thresholds, levelled off or peaked,
// and whether resident memory kept what a live figure gave back. Internal to analyze/.
#pragma once

#include <optional>
#include <vector>

#include "analyze/trend.h"
#include "analyze/verdicts.h"

namespace memlens::analyze {

// Everything analyze() learns about one series.
struct Growth {
  bool enough = false;
  size_t n = 0;
  double t0 = 0, t1 = 0, span = 0;
  Line line;
  MannKendall mk;
  double start = 0, end = 0, growth = 0;
  double threshold = 0;  // smallest fitted growth that counts, in series units
  bool grows = false;    // significant rise of at least `threshold`
  bool peaked = false;   // the recent level is well below an earlier peak (the rise is over)
  bool falls = false;    // significant fall of at least `threshold`
  double rise_confidence = 0;
  // Plateau test: the series split into an earlier part and a recent window.
  bool levelled = false;
  double split_t = 0;
  double early_slope = 0, recent_slope = 0;
  double early_start = 0;   // fitted level at t0 on the earlier part's line
  double recent_level = 0;  // median of the recent window
  double early_peak = 0;    // highest point before the recent window
};

// Judges one series (values in bytes, or a count when `count`) against the thresholds.
Growth judge(std::vector<SeriesPoint> pts, bool count, const Thresholds& th);
// Whether a series has the points and the span for any growth verdict.
bool has_enough_points(const std::vector<SeriesPoint>& pts, const Thresholds& th);

// x clamped to [0, 1]; 0 when it is not finite.
double clamp01(double x);
// Weight for short windows: a verdict over twice the minimum duration is worth its full confidence.
double duration_weight(const Growth& g, const Thresholds& th);

// Live JS heap growth that a proof from full GCs settles as a leak (docs/verdicts.md, "Growth a full GC
// proves"): the last full GC against an earlier after-GC figure by the proven-growth minimum, or against an
// earlier full GC by the smaller floor at the figures' pace.
struct ProvenGrowth {
  bool between_full_gcs = false;  // both ends are full GCs' figures
  double from_t_s = 0, from_bytes = 0, to_t_s = 0, to_bytes = 0;
  double bytes() const { return to_bytes - from_bytes; }
  double rate() const { return bytes() / (to_t_s - from_t_s); }
};
// `slope`: the after-GC figures' fitted rate; `threshold`: their growth floor.
std::optional<ProvenGrowth> proven_live_growth(const LiveGrowthProof& p, double slope, double threshold,
                                               const Thresholds& th);

// The live figure of a category (heap used after GC, live backing stores) against its resident bytes:
// resident memory that rose while the live figure did not, or that stayed while the live figure fell, is
// freed memory kept by V8 or the allocator.
struct Retention {
  bool retained = false;
  bool live_fell = false;  // which of the two patterns
  double confidence = 0;
  double resident_before = 0, resident_now = 0, live_before = 0, live_now = 0;
};

Retention check_retention(const Growth& live, const Growth& resident, bool count, const Thresholds& th);

}  // namespace memlens::analyze
