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
      double rise_shown = proof.before_full_bytes - proof.from_bytes;
      bool proven = proof.has_full_gc && !proof.released &&
                    proof.proven_bytes >= std::max(th.min_proven_growth_bytes, h.threshold) &&
                    proof.proven_bytes >= th.min_live_share_of_rise * rise_shown;
      return proven ? "leak?" : "grow?";
    }
  }
  return r.grows && !r.peaked ? "grow?" : "stable";
}

}  // namespace memlens::analyze
