#include "analyze/top_verdict.h"

#include <algorithm>
#include <vector>

#include "analyze/growth.h"

namespace memlens::analyze {

std::string top_verdict(std::span<const SeriesPoint> rss, std::span<const GcPoint> after_gc,
                        const Thresholds& th) {
  std::vector<SeriesPoint> rss_points(rss.begin(), rss.end());
  Growth r = judge(rss_points, false, th);
  if (!r.enough) return "-";
  std::vector<SeriesPoint> heap;
  for (const auto& g : after_gc) heap.push_back({g.t_s, g.heap_used_after_bytes});
  if (has_enough_points(heap, th)) {
    Growth h = judge(heap, false, th);
    if (h.grows && !h.peaked) {
      LiveGrowthProof proof =
          prove_live_growth(after_gc, th.proof_rate_factor * std::max(h.line.slope, 0.0), h.threshold);
      return proven_live_growth(proof, h.line.slope, h.threshold, th) ? "leak?" : "grow?";
    }
  }
  return r.grows && !r.peaked ? "grow?" : "stable";
}

}  // namespace memlens::analyze
