#include "model/js_objects.h"

#include <algorithm>

namespace memlens::model {

namespace {

template <typename T>
void thin(std::vector<T>& pts, uint64_t& dropped) {
  if (pts.size() < kMaxJsLivePointsPerSite) return;
  std::vector<T> kept;
  kept.reserve(pts.size() / 2 + 1);
  for (size_t i = 0; i < pts.size(); ++i)
    if (i % 2 == 0 || i + 1 == pts.size()) kept.push_back(pts[i]);
  dropped += pts.size() - kept.size();
  pts = std::move(kept);
}

struct Applier {
  JsObjectsState& s;
  void operator()(const JsInspectorStatus& e) {
    s.state = e.state;
    s.reason = e.reason;
    if (!e.address.empty()) s.address = e.address;
    s.opened_by_memlens = s.opened_by_memlens || e.opened_by_memlens;
    if (!e.handler.empty()) s.handler = e.handler;
    s.history.push_back(e);
  }
  void operator()(const JsLiveProfile& e) {
    s.sampling_interval_bytes = e.sampling_interval_bytes;
    ++s.profiles;
    s.profile_times.push_back(e.t_s);
    uint64_t times_dropped = 0;  // a time stands for its profile, not a point of any site's
    thin(s.profile_times, times_dropped);
    std::vector<bool> seen(s.stacks.size(), false);
    s.last.clear();
    std::map<uint32_t, JsLivePoint> now;
    for (const auto& site : e.sites) {
      auto [it, inserted] = s.stack_ids.try_emplace(site.stack, static_cast<uint32_t>(s.stacks.size()));
      if (inserted) {
        s.stacks.push_back(site.stack);
        s.series.emplace_back();
        seen.push_back(false);
      }
      auto& p = now[it->second];
      p.t_s = e.t_s;
      p.bytes += site.bytes;
      p.objects += site.objects;
    }
    for (auto& [id, p] : now) {
      s.series[id].push_back(p);
      thin(s.series[id], s.points_dropped);
      seen[id] = true;
      s.last.emplace_back(id, p);
    }
    // A site seen before and absent now has nothing live.
    for (size_t id = 0; id < s.series.size(); ++id)
      if (!seen[id] && !s.series[id].empty() && s.series[id].back().bytes != 0) {
        s.series[id].push_back({e.t_s, 0, 0});
        thin(s.series[id], s.points_dropped);
      }
  }
  void operator()(const JsForcedGc& e) {
    s.forced_gc_totals.add(e);
    s.forced_gcs.push_back(e);
    if (s.forced_gcs.size() > kMaxForcedGcsListed)
      s.forced_gcs.erase(s.forced_gcs.begin(), s.forced_gcs.end() - kMaxForcedGcsListed);
  }
  void operator()(const JsOtherClient& e) {
    ++s.other_clients_total;
    if (s.other_clients.size() < kMaxOtherClientsListed) s.other_clients.push_back(e);
  }
  void operator()(const JsHeapSnapshot& e) { s.snapshots.push_back(e); }
  void operator()(const JsHeapDiff& e) { s.diff = e; }
};

}  // namespace

void JsForcedGcTotals::add(const JsForcedGc& g) {
  ++count;
  if (!g.ok) ++failed;
  pause_total_ms += g.pause_ms;
  pause_max_ms = std::max(pause_max_ms, g.pause_ms);
}

void apply(JsObjectsState& s, const JsObjectsEvent& e) {
  std::visit(Applier{s}, e);
}

}  // namespace memlens::model
