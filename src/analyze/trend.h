// Robust trend statistics: Theil-Sen slope and the Mann-Kendall trend test. Both look only at the order
// of values between pairs of points, so one spike or a quarter of outliers does not move them much.
#pragma once

#include <cstddef>
#include <span>
#include <vector>

namespace memlens::analyze {

struct SeriesPoint {
  double t_s = 0;    // seconds since the trace began
  double value = 0;  // bytes, or a count
};

struct Line {
  double slope = 0;      // value units per second
  double intercept = 0;  // value at t_s = 0
  double at(double t_s) const { return intercept + slope * t_s; }
};

// Theil-Sen estimator: the median of the slopes between every pair of points with distinct times, and
// the median of value - slope * t as intercept. Fewer than two distinct times: slope 0, intercept the
// median value. O(n^2) memory and time: callers reduce long series first (reduce_to_bucket_medians).
Line theil_sen(std::span<const SeriesPoint> points);

struct MannKendall {
  double s = 0;             // sum of sign(x_j - x_i) over pairs i < j
  double z = 0;             // normal score with continuity correction and tie correction
  double p_increasing = 1;  // one-sided p-value of "no trend" against "rising"
  double p_decreasing = 1;  // one-sided p-value of "no trend" against "falling"
};
// Points are taken in the order given (callers sort by time). Fewer than 3 points: no evidence (p = 1).
MannKendall mann_kendall(std::span<const SeriesPoint> points);

// Splits [first t, last t] into `buckets` equal time windows and keeps, per non-empty window, the median
// time and the median value. Series with at most `buckets` points come back unchanged.
std::vector<SeriesPoint> reduce_to_bucket_medians(std::span<const SeriesPoint> points, size_t buckets);

// Median of values (copying); 0 for an empty input.
double median_value(std::span<const SeriesPoint> points);

}  // namespace memlens::analyze
