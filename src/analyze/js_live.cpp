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
  const auto& stack = g.stack;
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
    if (other.size() <= stack.size() || !std::equal(stack.begin(), stack.end(), other.begin())) continue;
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

std::vector<SeriesPoint> heap_after_full_gcs(const model::V8State& v8) {
  std::vector<SeriesPoint> out;
  for (const auto& g : v8.gcs)
    if (g.full() && g.heap_used_after_bytes)
      out.push_back({g.t_s, static_cast<double>(*g.heap_used_after_bytes)});
  return out;
}

namespace {

// Whether the heap's own figures leave room for a family's rise over [from, to]: unknown (too few full GCs
// in the window) counts as room.
bool heap_rose_with(std::span<const SeriesPoint> heap, double from, double to, double rise,
                    const JsLiveThresholds& th) {
  std::vector<SeriesPoint> in;
  for (const auto& p : heap)
    if (p.t_s >= from && p.t_s <= to) in.push_back(p);
  if (in.size() < th.min_heap_points) return true;
  Line line = theil_sen(reduce_to_bucket_medians(in, 60));
  return line.at(to) - line.at(from) >= th.min_heap_share * rise;
}

}  // namespace

std::vector<JsSiteGrowth> growing_js_sites(const model::JsObjectsState& s, const JsLiveThresholds& th,
                                           std::span<const SeriesPoint> heap_after_full_gc) {
  std::vector<JsSiteGrowth> out;
  size_t n = s.profile_times.size();
  if (n < th.min_points) return out;
  // The tree of stacks: a node per distinct prefix, its family's live bytes at every profile (its own site's
  // and every site below it).
  struct Node {
    model::JsStack stack;
    int parent = -1;
    std::vector<double> family;
    uint64_t bytes = 0, objects = 0;  // the family's, in the last profile
    std::optional<Rise> rise;
    double fitted_rise = 0;  // end - start of the family's fitted line, rising or not
  };
  std::vector<Node> nodes(1);  // 0: the root (no frame)
  nodes[0].family.assign(n, 0);
  std::map<std::pair<int, model::JsFrame>, int> child;
  std::map<uint32_t, model::JsLivePoint> last;
  for (const auto& [id, p] : s.last) last[id] = p;
  for (uint32_t id = 0; id < s.stacks.size(); ++id) {
    if (s.series[id].empty()) continue;
    auto v = at_profiles(s, id);
    const auto& stack = s.stacks[id];
    int cur = 0;
    std::vector<int> path{0};
    for (const auto& f : stack) {
      auto [it, inserted] = child.try_emplace({cur, f}, static_cast<int>(nodes.size()));
      if (inserted) {
        Node nd;
        nd.stack = nodes[cur].stack;
        nd.stack.push_back(f);
        nd.parent = cur;
        nd.family.assign(n, 0);
        nodes.push_back(std::move(nd));
      }
      cur = it->second;
      path.push_back(cur);
    }
    auto l = last.find(id);
    for (int k : path) {
      for (size_t i = 0; i < n; ++i) nodes[k].family[i] += v[i];
      if (l != last.end()) {
        nodes[k].bytes += l->second.bytes;
        nodes[k].objects += l->second.objects;
      }
    }
  }
  for (auto& nd : nodes) {
    std::vector<SeriesPoint> pts;
    for (size_t i = 0; i < n; ++i) pts.push_back({s.profile_times[i], nd.family[i]});
    nd.rise = rises(pts, th);
    Line line = theil_sen(reduce_to_bucket_medians(pts, 60));
    nd.fitted_rise = line.at(pts.back().t_s) - line.at(pts.front().t_s);
  }
  // A family grows when it rises and none of the families above it stays flat: when V8 optimizes a
  // function, what its inlined callees allocated moves to the function's own site, so a cache at its bound
  // refilled from optimized code shows one family rising as its sibling falls, and their parent flat.
  // And the heap itself grew by a share of it over the window, where its figures say.
  auto accepted = [&](int k) {
    if (k == 0 || !nodes[k].rise) return false;
    double amount = nodes[k].rise->end - nodes[k].rise->start;
    for (int a = nodes[k].parent; a > 0; a = nodes[a].parent)
      if (nodes[a].fitted_rise < 0.5 * amount) return false;
    return heap_rose_with(heap_after_full_gc, s.profile_times.back() - nodes[k].rise->window,
                          s.profile_times.back(), amount, th);
  };
  // The deepest growing families first; one whose growth those below it already explain is left out.
  std::vector<int> order;
  for (int k = 1; k < static_cast<int>(nodes.size()); ++k)
    if (accepted(k)) order.push_back(k);
  std::stable_sort(order.begin(), order.end(),
                   [&](int a, int b) { return nodes[a].stack.size() > nodes[b].stack.size(); });
  std::vector<int> kept;
  for (int k : order) {
    double below = 0;
    for (int d : kept) {
      const auto& ds = nodes[d].stack;
      const auto& ks = nodes[k].stack;
      if (ds.size() > ks.size() && std::equal(ks.begin(), ks.end(), ds.begin()))
        below += nodes[d].rise->end - nodes[d].rise->start;
    }
    if (below >= 0.8 * (nodes[k].rise->end - nodes[k].rise->start)) continue;
    kept.push_back(k);
  }
  for (int k : kept) {
    const auto& nd = nodes[k];
    JsSiteGrowth g;
    g.stack = nd.stack;
    g.window_s = nd.rise->window;
    g.first_bytes = nd.rise->start;
    g.last_bytes = nd.rise->end;
    g.rate_bytes_per_s = nd.rise->slope;
    g.live_bytes = nd.bytes;
    g.live_objects = nd.objects;
    name_site(s, g);
    out.push_back(std::move(g));
  }
  std::sort(out.begin(), out.end(),
            [](const auto& a, const auto& b) { return a.rate_bytes_per_s > b.rate_bytes_per_s; });
  if (out.size() > th.max_sites) out.resize(th.max_sites);
  return out;
}

}  // namespace memlens::analyze
