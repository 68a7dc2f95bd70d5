#include "analyze/growth.h"

#include <algorithm>
#include <cmath>

namespace memlens::analyze {

double clamp01(double x) {
  return std::clamp(std::isfinite(x) ? x : 0.0, 0.0, 1.0);
}

bool has_enough_points(const std::vector<SeriesPoint>& pts, const Thresholds& th) {
  if (pts.size() < th.min_points) return false;
  auto [lo, hi] =
      std::minmax_element(pts.begin(), pts.end(), [](const auto& a, const auto& b) { return a.t_s < b.t_s; });
  return hi->t_s - lo->t_s >= th.min_duration_s;
}

Growth judge(std::vector<SeriesPoint> pts, bool count, const Thresholds& th) {
  Growth g;
  std::sort(pts.begin(), pts.end(), [](const auto& a, const auto& b) { return a.t_s < b.t_s; });
  pts = reduce_to_bucket_medians(pts, th.max_points);
  g.n = pts.size();
  if (pts.empty()) return g;
  g.t0 = pts.front().t_s;
  g.t1 = pts.back().t_s;
  g.span = g.t1 - g.t0;
  g.line = theil_sen(pts);
  g.start = g.line.at(g.t0);
  g.end = g.line.at(g.t1);
  g.growth = g.end - g.start;
  // The fitted line can start below anything observed (below zero, even, where a fast rise curves): the
  // levels a sentence quotes stay within what was observed; the rate and the decisions keep the fit.
  auto [lo, hi] = std::minmax_element(pts.begin(), pts.end(),
                                      [](const auto& a, const auto& b) { return a.value < b.value; });
  g.start = std::clamp(g.start, lo->value, hi->value);
  g.end = std::clamp(g.end, lo->value, hi->value);
  g.recent_level = median_value(pts);
  g.enough = g.n >= th.min_points && g.span >= th.min_duration_s;
  if (!g.enough) return g;

  g.mk = mann_kendall(pts);
  g.rise_confidence = 1 - g.mk.p_increasing;
  double abs_min = count ? th.min_growth_count : th.min_growth_bytes;
  g.threshold = std::max(abs_min, th.min_relative_growth * std::max(g.start, 0.0));
  g.grows = g.rise_confidence >= th.significance && g.growth >= g.threshold;
  g.falls = (1 - g.mk.p_decreasing) >= th.significance && -g.growth >= g.threshold;

  double recent_span = std::min(std::max(g.span * th.recent_fraction, th.min_recent_s), g.span / 2);
  g.split_t = g.t1 - recent_span;
  std::vector<SeriesPoint> early, recent;
  for (const auto& p : pts) (p.t_s < g.split_t ? early : recent).push_back(p);
  g.recent_level = median_value(recent);
  g.early_peak =
      early.empty() ? 0 : std::max_element(early.begin(), early.end(), [](const auto& a, const auto& b) {
                            return a.value < b.value;
                          })->value;
  // A rise that ends well below its own earlier peak is over (a burst that was collected, say), however
  // many of the points the rise had: GCs crowd together while a process allocates fast, so a short burst
  // can outnumber a long quiet stretch and steer the fitted line.
  if (!early.empty() && !recent.empty() && g.recent_level < g.early_peak - g.threshold) {
    g.grows = false;
    g.peaked = true;
  }
  if (early.size() >= 3 && recent.size() >= 3) {
    Line el = theil_sen(early), rl = theil_sen(recent);
    g.early_slope = el.slope;
    g.recent_slope = rl.slope;
    g.early_start = el.at(g.t0);
    double early_growth = el.slope * (g.split_t - g.t0);
    g.levelled = el.slope > 0 && early_growth >= g.threshold && rl.slope <= th.plateau_slope_ratio * el.slope;
  }
  return g;
}

double duration_weight(const Growth& g, const Thresholds& th) {
  return clamp01(g.span / (2 * th.min_duration_s));
}

Retention check_retention(const Growth& live, const Growth& resident, bool count, const Thresholds& th) {
  Retention r;
  if (!live.enough || !resident.enough) return r;
  r.resident_now = resident.recent_level;
  r.live_now = live.recent_level;
  double abs_min = count ? th.min_growth_count : th.min_growth_bytes;
  if (r.resident_now - r.live_now < abs_min) return r;  // nothing held beyond the live figure

  // The live figure fell from a peak while resident memory did not follow it down. Resident memory that
  // merely rose while the live figure stayed flat is V8 or malloc sizing themselves to the allocation
  // rate (a young generation grows to its maximum under load): that is not retention.
  double live_min = std::max(abs_min, th.min_relative_growth * live.early_peak);
  double live_drop = live.early_peak - r.live_now;
  double resident_drop = resident.early_peak - r.resident_now;
  if (live_drop >= live_min && resident_drop < 0.5 * live_drop) {
    r.retained = true;
    r.live_fell = true;
    r.resident_before = resident.early_peak;
    r.live_before = live.early_peak;
    r.confidence = clamp01(1 - std::max(resident_drop, 0.0) / live_drop);
  }
  r.confidence *= duration_weight(std::min(live.span, resident.span) == live.span ? live : resident, th);
  return r;
}

std::optional<ProvenGrowth> proven_live_growth(const LiveGrowthProof& p, double slope, double threshold,
                                               const Thresholds& th) {
  if (!p.has_full_gc || p.released) return std::nullopt;
  // A full GC that freed most of the rise the figures showed up to it shows old space filling with
  // garbage, whatever else grew meanwhile (a start-up, then promoted garbage).
  auto keeps_the_rise = [&](double from_bytes) {
    return p.full_bytes - from_bytes >= th.min_live_share_of_rise * (p.before_full_bytes - from_bytes);
  };
  if (p.proven_bytes >= std::max(th.min_proven_growth_bytes, threshold) && keeps_the_rise(p.from_bytes))
    return ProvenGrowth{false, p.from_t_s, p.from_bytes, p.full_t_s, p.full_bytes};
  // Of the earlier full GCs that pass, the one that shows the most growth (a longer stretch may hold a
  // flat start that slows its pace below the figures').
  std::optional<ProvenGrowth> best;
  for (const GcPoint& earlier : p.earlier_fulls) {
    ProvenGrowth between{true, earlier.t_s, earlier.heap_used_after_bytes, p.full_t_s, p.full_bytes};
    double floor = std::max(
        {th.min_growth_between_full_gcs_bytes, threshold, th.min_relative_growth * between.from_bytes});
    bool passes = between.bytes() >= floor && between.rate() >= th.min_pace_share_between_full_gcs * slope &&
                  keeps_the_rise(between.from_bytes);
    if (passes && (!best || between.bytes() > best->bytes())) best = between;
  }
  return best;
}

std::vector<SeriesPoint> lower_envelope(std::span<const SeriesPoint> points, double width_s) {
  std::vector<SeriesPoint> out;
  if (points.empty() || !(width_s > 0)) return {points.begin(), points.end()};
  double t0 = points.front().t_s;
  long current = -1;
  for (const auto& p : points) {
    long bucket = static_cast<long>(std::floor((p.t_s - t0) / width_s));
    if (bucket != current) {
      out.push_back(p);
      current = bucket;
    } else if (p.value < out.back().value) {
      out.back() = p;
    }
  }
  return out;
}

AfterGcSeries comparable_after_gc_series(std::vector<GcPoint> gcs) {
  AfterGcSeries out;
  std::stable_sort(gcs.begin(), gcs.end(), [](const auto& a, const auto& b) { return a.t_s < b.t_s; });
  std::vector<size_t> full;
  for (size_t i = 0; i < gcs.size(); ++i)
    if (gcs[i].full) full.push_back(i);
  if (full.empty()) {
    out.unchecked_s = gcs.empty() ? 0 : gcs.back().t_s - gcs.front().t_s;
    return out;
  }
  // Bound each figure by the full GCs around it: before the first one by its figure, between two by the
  // straight line joining theirs. A leak grows between full GCs, so the line follows it rather than
  // jumping in steps at each full GC; garbage, which a full GC removes, never lifts the line.
  size_t k = 0;  // index into `full` of the next full GC at or after i
  for (size_t i = 0; i <= full.back(); ++i) {
    while (full[k] < i) ++k;
    const GcPoint& next = gcs[full[k]];
    double bound = next.heap_used_after_bytes;
    if (k > 0 && next.t_s > gcs[full[k - 1]].t_s) {
      const GcPoint& prev = gcs[full[k - 1]];
      double f = (gcs[i].t_s - prev.t_s) / (next.t_s - prev.t_s);
      bound = prev.heap_used_after_bytes + f * (next.heap_used_after_bytes - prev.heap_used_after_bytes);
    }
    out.points.push_back({gcs[i].t_s, std::min(gcs[i].heap_used_after_bytes, bound)});
    ++out.gc_count;
    if (gcs[i].full) ++out.full_gc_count;
  }
  out.unchecked_s = gcs.back().t_s - gcs[full.back()].t_s;
  return out;
}

}  // namespace memlens::analyze
