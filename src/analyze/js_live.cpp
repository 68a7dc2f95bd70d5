#include "analyze/js_live.h"

#include <algorithm>

#include "analyze/trend.h"

namespace memlens::analyze {

bool is_app_frame(const model::JsFrame& f) {
  return !f.url.empty() && !f.url.starts_with("node:");
}

namespace {

uint64_t peak_bytes(const std::vector<model::JsLivePoint>& series) {
  uint64_t peak = 0;
  for (const auto& p : series) peak = std::max(peak, p.bytes);
  return peak;
}

void name_site(const model::JsObjectsState& s, JsSiteGrowth& g) {
  const auto& stack = s.stacks[g.stack_id];
  for (auto it = stack.rbegin(); it != stack.rend(); ++it)
    if (is_app_frame(*it)) {
      g.app_frame = *it;
      break;
    }
  // Other sites that extend this stack and reach the app's code: what ran below the site's function
  // before V8 optimized it (and inlined them).
  std::map<model::JsFrame, uint64_t> seen;
  for (uint32_t id = 0; id < s.stacks.size(); ++id) {
    const auto& other = s.stacks[id];
    if (id == g.stack_id || other.size() <= stack.size() ||
        !std::equal(stack.begin(), stack.end(), other.begin()))
      continue;
    for (auto it = other.rbegin(); it != other.rend(); ++it)
      if (is_app_frame(*it)) {
        seen[*it] += peak_bytes(s.series[id]);
        break;
      }
  }
  std::vector<std::pair<model::JsFrame, uint64_t>> ranked(seen.begin(), seen.end());
  std::stable_sort(ranked.begin(), ranked.end(),
                   [](const auto& a, const auto& b) { return a.second > b.second; });
  for (size_t i = 0; i < ranked.size() && i < 3; ++i) g.inlined_candidates.push_back(ranked[i].first);
  if (!g.app_frame && !g.inlined_candidates.empty()) {
    g.app_frame = g.inlined_candidates.front();
    g.app_frame_inferred = true;
  }
}

}  // namespace

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
    name_site(s, g);
    out.push_back(g);
  }
  std::sort(out.begin(), out.end(),
            [](const auto& a, const auto& b) { return a.rate_bytes_per_s > b.rate_bytes_per_s; });
  if (out.size() > th.max_sites) out.resize(th.max_sites);
  return out;
}

}  // namespace memlens::analyze
