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

GcSummary summarize_gcs(const std::vector<GcEvent>& gcs) {
  GcSummary s;
  s.count = gcs.size();
  std::vector<double> pauses;
  pauses.reserve(gcs.size());
  for (const auto& g : gcs) {
    ++s.by_kind[gc_kind_name(g.kind)];
    s.pause_total_ms += g.pause_ms;
    pauses.push_back(g.pause_ms);
    if (g.heap_used_after_bytes) s.heap_used_after_last_gc_bytes = g.heap_used_after_bytes;
  }
  std::sort(pauses.begin(), pauses.end());
  if (!pauses.empty()) {
    s.pause_max_ms = pauses.back();
    s.pause_p50_ms = percentile(pauses, 0.50);
    s.pause_p99_ms = percentile(pauses, 0.99);
  }
  return s;
}

}  // namespace memlens::model
