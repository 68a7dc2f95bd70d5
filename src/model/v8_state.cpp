#include "model/v8_state.h"

#include <algorithm>
#include <cmath>

namespace memlens::model {

const char* gc_kind_name(GcKind k) {
  switch (k) {
    case GcKind::kScavenge:
      return "scavenge";
    case GcKind::kMarkCompact:
      return "mark_compact";
    case GcKind::kMinorMarkCompact:
      return "minor_mark_compact";
    default:
      return "unknown";
  }
}

GcKind gc_kind_from_collector(uint32_t collector) {
  switch (collector) {
    case 0:
      return GcKind::kScavenge;
    case 1:
      return GcKind::kMarkCompact;
    case 2:
      return GcKind::kMinorMarkCompact;
    default:
      return GcKind::kUnknown;
  }
}

GcKind gc_kind_from_gc_type(uint32_t bits) {
  // v8::GCType: kGCTypeScavenge = 1, kGCTypeMinorMarkSweep = 2, kGCTypeMarkSweepCompact = 4 (8 and 16 are
  // incremental marking and weak callbacks, not collections of their own).
  if (bits & 4) return GcKind::kMarkCompact;
  if (bits & 2) return GcKind::kMinorMarkCompact;
  if (bits & 1) return GcKind::kScavenge;
  return GcKind::kUnknown;
}

namespace {

// Nearest-rank percentile of sorted values.
double percentile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return 0;
  size_t rank = static_cast<size_t>(std::ceil(q * static_cast<double>(sorted.size())));
  return sorted[std::clamp<size_t>(rank, 1, sorted.size()) - 1];
}

}  // namespace

namespace {

void count_thinned(GcTotals& t, const GcEvent& e) {
  ++t.count;
  ++t.by_kind[gc_kind_name(e.kind)];
  t.pause_total_ms += e.pause_ms;
  t.pause_max_ms = std::max(t.pause_max_ms, e.pause_ms);
  if (e.t_s >= t.last_t_s && e.heap_used_after_bytes) {
    t.last_t_s = e.t_s;
    t.last_heap_used_after_bytes = e.heap_used_after_bytes;
  }
}

// Every other GC the predicate picks, thinned out of the list.
template <typename Pick>
void thin_every_other(V8State& v8, Pick pick) {
  std::vector<GcEvent> kept;
  kept.reserve(v8.gcs.size());
  size_t nth = 0;
  for (const auto& e : v8.gcs) {
    if (pick(e) && nth++ % 2 == 1)
      count_thinned(v8.gcs_thinned, e);
    else
      kept.push_back(e);
  }
  v8.gcs = std::move(kept);
}

}  // namespace

void record_gc(V8State& v8, const GcEvent& g) {
  // Past the first thinning, GCs other than full GCs are kept one in gc_stride, so the list stays as dense
  // over the trace's start as over its end.
  if (!g.full() && v8.gc_stride > 1 && v8.gc_partial_seen++ % v8.gc_stride != 0) {
    count_thinned(v8.gcs_thinned, g);
    return;
  }
  v8.gcs.push_back(g);
  if (!v8.thin_gcs || v8.gcs.size() < kMaxGcEventsKept) return;
  thin_every_other(v8, [](const GcEvent& e) { return !e.full(); });
  v8.gc_stride *= 2;
  // Full GCs most of the list (a trace of days): every other one of them too, the oldest first thinned.
  if (v8.gcs.size() >= kMaxGcEventsKept * 3 / 4) thin_every_other(v8, [](const GcEvent&) { return true; });
}

GcSummary summarize_gcs(const V8State& v8) {
  const auto& gcs = v8.gcs;
  GcSummary s;
  s.count = gcs.size() + v8.gcs_thinned.count;
  s.by_kind = v8.gcs_thinned.by_kind;
  s.pause_total_ms = v8.gcs_thinned.pause_total_ms;
  std::vector<double> pauses;
  pauses.reserve(gcs.size());
  for (const auto& g : gcs) {
    ++s.by_kind[gc_kind_name(g.kind)];
    s.pause_total_ms += g.pause_ms;
    pauses.push_back(g.pause_ms);
    if (g.heap_used_after_bytes) s.heap_used_after_last_gc_bytes = g.heap_used_after_bytes;
  }
  const auto& t = v8.gcs_thinned;
  if (t.last_heap_used_after_bytes && (gcs.empty() || t.last_t_s > gcs.back().t_s))
    s.heap_used_after_last_gc_bytes = t.last_heap_used_after_bytes;
  std::sort(pauses.begin(), pauses.end());
  s.pause_max_ms = v8.gcs_thinned.pause_max_ms;
  if (!pauses.empty()) {
    s.pause_max_ms = std::max(s.pause_max_ms, pauses.back());
    s.pause_p50_ms = percentile(pauses, 0.50);
    s.pause_p99_ms = percentile(pauses, 0.99);
  }
  if (v8.gc_stride > 1 && !gcs.empty()) {
    // Thinned: a kept GC other than a full GC stands for gc_stride of them (full GCs for themselves), so
    // that the percentiles do not drift toward full GCs' pauses as the list thins.
    std::vector<std::pair<double, double>> weighted;  // pause, weight
    weighted.reserve(gcs.size());
    double total = 0;
    for (const auto& g : gcs) {
      double w = g.full() ? 1.0 : static_cast<double>(v8.gc_stride);
      weighted.emplace_back(g.pause_ms, w);
      total += w;
    }
    std::sort(weighted.begin(), weighted.end());
    auto at = [&](double q) {
      double seen = 0;
      for (const auto& [pause, w] : weighted)
        if ((seen += w) >= q * total) return pause;
      return weighted.back().first;
    };
    s.pause_p50_ms = at(0.50);
    s.pause_p99_ms = at(0.99);
  }
  return s;
}

}  // namespace memlens::model
