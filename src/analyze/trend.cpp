#include "analyze/trend.h"

#include <algorithm>
#include <cmath>
#include <map>

namespace memlens::analyze {
namespace {

// Median of a scratch vector (reorders it). The average of the two middle values for even sizes, so a
// symmetric set of slopes gives its centre.
double median_in_place(std::vector<double>& v) {
  if (v.empty()) return 0;
  size_t mid = v.size() / 2;
  std::nth_element(v.begin(), v.begin() + mid, v.end());
  double upper = v[mid];
  if (v.size() % 2 == 1) return upper;
  double lower = *std::max_element(v.begin(), v.begin() + mid);
  return (lower + upper) / 2;
}

// Upper tail of the standard normal distribution.
double normal_upper_tail(double z) {
  return 0.5 * std::erfc(z / std::sqrt(2.0));
}

}  // namespace

double median_value(std::span<const SeriesPoint> points) {
  std::vector<double> v;
  v.reserve(points.size());
  for (const auto& p : points) v.push_back(p.value);
  return median_in_place(v);
}

Line theil_sen(std::span<const SeriesPoint> points) {
  std::vector<double> slopes;
  if (points.size() >= 2) slopes.reserve(points.size() * (points.size() - 1) / 2);
  for (size_t i = 0; i < points.size(); ++i) {
    for (size_t j = i + 1; j < points.size(); ++j) {
      double dt = points[j].t_s - points[i].t_s;
      if (dt == 0) continue;  // same instant: no slope information
      slopes.push_back((points[j].value - points[i].value) / dt);
    }
  }
  Line line;
  if (slopes.empty()) {
    line.intercept = median_value(points);
    return line;
  }
  line.slope = median_in_place(slopes);
  std::vector<double> intercepts;
  intercepts.reserve(points.size());
  for (const auto& p : points) intercepts.push_back(p.value - line.slope * p.t_s);
  line.intercept = median_in_place(intercepts);
  return line;
}

MannKendall mann_kendall(std::span<const SeriesPoint> points) {
  MannKendall mk;
  size_t n = points.size();
  if (n < 3) return mk;
  double s = 0;
  for (size_t i = 0; i < n; ++i) {
    for (size_t j = i + 1; j < n; ++j) {
      double d = points[j].value - points[i].value;
      s += (d > 0) - (d < 0);
    }
  }
  // Ties (a count that does not move between samples) shrink the variance of S.
  std::map<double, size_t> groups;
  for (const auto& p : points) ++groups[p.value];
  double nn = static_cast<double>(n);
  double var = nn * (nn - 1) * (2 * nn + 5);
  for (const auto& [value, t] : groups) {
    double tt = static_cast<double>(t);
    if (t > 1) var -= tt * (tt - 1) * (2 * tt + 5);
  }
  var /= 18;
  mk.s = s;
  if (var <= 0) return mk;  // every value equal: no trend either way
  double sd = std::sqrt(var);
  if (s > 0)
    mk.z = (s - 1) / sd;
  else if (s < 0)
    mk.z = (s + 1) / sd;
  mk.p_increasing = normal_upper_tail(mk.z);
  mk.p_decreasing = normal_upper_tail(-mk.z);
  return mk;
}

std::vector<SeriesPoint> reduce_to_bucket_medians(std::span<const SeriesPoint> points, size_t buckets) {
  if (buckets == 0 || points.size() <= buckets) return {points.begin(), points.end()};
  double t0 = points.front().t_s, t1 = points.back().t_s;
  double width = (t1 - t0) / static_cast<double>(buckets);
  std::vector<SeriesPoint> out;
  if (width <= 0) {
    out.push_back({t0, median_value(points)});
    return out;
  }
  size_t i = 0;
  for (size_t b = 0; b < buckets && i < points.size(); ++b) {
    double end = (b + 1 == buckets) ? t1 : t0 + width * static_cast<double>(b + 1);
    std::vector<double> ts, vs;
    while (i < points.size() && (points[i].t_s < end || b + 1 == buckets)) {
      ts.push_back(points[i].t_s);
      vs.push_back(points[i].value);
      ++i;
    }
    if (ts.empty()) continue;
    out.push_back({median_in_place(ts), median_in_place(vs)});
  }
  return out;
}

}  // namespace memlens::analyze
