#include "analyze/js_live.h"

#include <algorithm>

#include "analyze/trend.h"

namespace memlens::analyze {

std::vector<JsSiteGrowth> growing_js_sites(const model::JsObjectsState& s, const JsLiveThresholds& th) {
  std::vector<JsSiteGrowth> out;
  std::map<uint32_t, model::JsLivePoint> last;
  for (const auto& [id, p] : s.last) last[id] = p;
  for (uint32_t id = 0; id < s.series.size(); ++id) {
    const auto& series = s.series[id];
    if (series.empty()) continue;
    std::vector<SeriesPoint> pts;
    // A site that first appeared after the first profile had nothing live before.
    auto first = std::lower_bound(s.profile_times.begin(), s.profile_times.end(), series.front().t_s);
    if (first != s.profile_times.begin()) pts.push_back({*(first - 1), 0});
    for (const auto& p : series) pts.push_back({p.t_s, static_cast<double>(p.bytes)});
    if (pts.size() < th.min_points) continue;
    double window = pts.back().t_s - pts.front().t_s;
    if (window < th.min_window_s) continue;
    auto reduced = reduce_to_bucket_medians(pts, 60);
    Line line = theil_sen(reduced);
    if (line.slope <= 0) continue;
    if (mann_kendall(reduced).p_increasing > th.max_p) continue;
    double lo = pts.front().value, hi = pts.front().value;
    for (const auto& p : pts) {
      lo = std::min(lo, p.value);
      hi = std::max(hi, p.value);
    }
    double start = std::clamp(line.at(pts.front().t_s), lo, hi);
    double end = std::clamp(line.at(pts.back().t_s), lo, hi);
    if (end - start < th.min_growth_bytes) continue;
    // Still rising at the end: the recent part's slope against the whole window's.
    double recent_from = pts.back().t_s - th.recent_share * window;
    std::vector<SeriesPoint> recent;
    for (const auto& p : reduced)
      if (p.t_s >= recent_from) recent.push_back(p);
    if (recent.size() >= 3 && theil_sen(recent).slope < th.min_recent_slope_ratio * line.slope) continue;
    JsSiteGrowth g;
    g.stack_id = id;
    g.window_s = window;
    g.first_bytes = start;
    g.last_bytes = end;
    g.rate_bytes_per_s = line.slope;
    if (auto it = last.find(id); it != last.end()) {
      g.live_bytes = it->second.bytes;
      g.live_objects = it->second.objects;
    }
    out.push_back(g);
  }
  std::sort(out.begin(), out.end(),
            [](const auto& a, const auto& b) { return a.rate_bytes_per_s > b.rate_bytes_per_s; });
  if (out.size() > th.max_sites) out.resize(th.max_sites);
  return out;
}

}  // namespace memlens::analyze
