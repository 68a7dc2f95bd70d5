#include "analyze/after_gc.h"

namespace memlens::analyze {

LiveGrowthProof prove_live_growth(std::span<const GcPoint> gcs, double release_tolerance) {
  LiveGrowthProof p;
  size_t last_full = gcs.size();
  for (size_t i = gcs.size(); i-- > 0;)
    if (gcs[i].full) {
      last_full = i;
      break;
    }
  if (last_full == gcs.size() || last_full == 0) return p;
  p.has_full_gc = true;
  p.full_t_s = gcs[last_full].t_s;
  p.full_bytes = gcs[last_full].heap_used_after_bytes;
  p.from_t_s = gcs[0].t_s;
  p.from_bytes = gcs[0].heap_used_after_bytes;
  for (size_t i = 1; i < last_full; ++i)
    if (gcs[i].heap_used_after_bytes < p.from_bytes) {
      p.from_bytes = gcs[i].heap_used_after_bytes;
      p.from_t_s = gcs[i].t_s;
    }
  p.proven_bytes = p.full_bytes - p.from_bytes;
  // Later figures are upper bounds too: one below the full GC's figure proves that live objects it
  // counted are gone.
  for (size_t i = last_full + 1; i < gcs.size(); ++i)
    if (gcs[i].heap_used_after_bytes < p.full_bytes - release_tolerance) {
      p.released = true;
      p.released_to_bytes = gcs[i].heap_used_after_bytes;
      break;
    }
  return p;
}

}  // namespace memlens::analyze
