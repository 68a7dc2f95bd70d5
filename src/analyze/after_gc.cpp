#include "analyze/after_gc.h"

namespace memlens::analyze {

LiveGrowthProof prove_live_growth(std::span<const GcPoint> gcs, double max_rate, double release_tolerance) {
  LiveGrowthProof p;
  size_t last_full = gcs.size();
  for (size_t i = gcs.size(); i-- > 0;)
    if (gcs[i].full) {
      last_full = i;
      break;
    }
  if (last_full == gcs.size() || last_full == 0) return p;
  p.full_t_s = gcs[last_full].t_s;
  p.full_bytes = gcs[last_full].heap_used_after_bytes;
  p.before_full_bytes = gcs[last_full - 1].heap_used_after_bytes;
  for (size_t i = 0; i < last_full; ++i) {
    double dt = p.full_t_s - gcs[i].t_s;
    double grew = p.full_bytes - gcs[i].heap_used_after_bytes;
    if (dt <= 0 || grew > max_rate * dt) continue;
    if (gcs[i].full) p.earlier_fulls.push_back(gcs[i]);
    if (!p.has_full_gc || grew > p.proven_bytes) {
      p.has_full_gc = true;
      p.from_t_s = gcs[i].t_s;
      p.from_bytes = gcs[i].heap_used_after_bytes;
      p.proven_bytes = grew;
    }
  }
  if (!p.has_full_gc) return p;
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
