#include "analyze/js_live.h"

#include <algorithm>
#include <map>
#include <optional>

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

namespace {

struct Rise {
  double window = 0, start = 0, end = 0, slope = 0;
};

// Whether a live-bytes series rises steadily, by enough, and still at its end.
std::optional<Rise> rises(const std::vector<SeriesPoint>& pts, const JsLiveThresholds& th) {
  if (pts.size() < th.min_points) return std::nullopt;
  double window = pts.back().t_s - pts.front().t_s;
  if (window < th.min_window_s) return std::nullopt;
  auto reduced = reduce_to_bucket_medians(pts, 60);
  Line line = theil_sen(reduced);
  if (line.slope <= 0) return std::nullopt;
  if (mann_kendall(reduced).p_increasing > th.max_p) return std::nullopt;
  double lo = pts.front().value, hi = pts.front().value;
  for (const auto& p : pts) {
    lo = std::min(lo, p.value);
    hi = std::max(hi, p.value);
  }
  Rise r{window, std::clamp(line.at(pts.front().t_s), lo, hi), std::clamp(line.at(pts.back().t_s), lo, hi),
         line.slope};
  if (r.end - r.start < th.min_growth_bytes) return std::nullopt;
  // Still rising at the end: the recent part's slope against the whole window's.
  double recent_from = pts.back().t_s - th.recent_share * window;
  std::vector<SeriesPoint> recent;
  for (const auto& p : reduced)
    if (p.t_s >= recent_from) recent.push_back(p);
  if (recent.size() >= 3 && theil_sen(recent).slope < th.min_recent_slope_ratio * line.slope)
    return std::nullopt;
  return r;
}

// A site's live bytes at every profile: 0 before it first appeared, and at a profile it was absent from.
std::vector<double> at_profiles(const model::JsObjectsState& s, uint32_t id) {
  std::vector<double> out(s.profile_times.size(), 0);
  const auto& series = s.series[id];
  size_t k = 0;
  for (size_t i = 0; i < s.profile_times.size(); ++i) {
    while (k + 1 < series.size() && series[k + 1].t_s <= s.profile_times[i]) ++k;
    if (!series.empty() && series[k].t_s <= s.profile_times[i]) out[i] = static_cast<double>(series[k].bytes);
  }
  return out;
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
    if (!rises(pts, th)) continue;
    // When V8 optimizes a function, what it allocates moves from the sites of its (then inlined) callees
    // to its own: a cache at its bound whose entries are replaced from optimized code shows one site
    // rising as the others fall. So the site is judged with every site below it (its family), and grows
    // only if they grow together.
    const auto& stack = s.stacks[id];
    std::vector<double> family(s.profile_times.size(), 0);
    uint64_t family_bytes = 0, family_objects = 0;
    for (uint32_t other = 0; other < s.stacks.size(); ++other) {
      const auto& o = s.stacks[other];
      if (o.size() < stack.size() || !std::equal(stack.begin(), stack.end(), o.begin())) continue;
      auto v = at_profiles(s, other);
      for (size_t i = 0; i < v.size(); ++i) family[i] += v[i];
      if (auto it = last.find(other); it != last.end()) {
        family_bytes += it->second.bytes;
        family_objects += it->second.objects;
      }
    }
    std::vector<SeriesPoint> fam;
    for (size_t i = 0; i < family.size(); ++i)
      if (s.profile_times[i] >= pts.front().t_s) fam.push_back({s.profile_times[i], family[i]});
    auto rise = rises(fam, th);
    if (!rise) continue;
    JsSiteGrowth g;
    g.stack_id = id;
    g.window_s = rise->window;
    g.first_bytes = rise->start;
    g.last_bytes = rise->end;
    g.rate_bytes_per_s = rise->slope;
    g.live_bytes = family_bytes;
    g.live_objects = family_objects;
    name_site(s, g);
    out.push_back(g);
  }
  std::sort(out.begin(), out.end(),
            [](const auto& a, const auto& b) { return a.rate_bytes_per_s > b.rate_bytes_per_s; });
  if (out.size() > th.max_sites) out.resize(th.max_sites);
  return out;
}

}  // namespace memlens::analyze
