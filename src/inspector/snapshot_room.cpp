#include "inspector/snapshot_room.h"

#include <fmt/format.h>

#include <algorithm>

#include "common/units.h"

namespace memlens::inspector {

ProfileObjects profile_objects(const model::JsLiveProfile& p) {
  ProfileObjects out;
  for (const auto& s : p.sites) {
    out.bytes += static_cast<double>(s.bytes);
    out.objects += static_cast<double>(s.objects);
  }
  return out;
}

SnapshotNeed estimate_snapshot_need(uint64_t heap_used, const ProfileObjects& profile,
                                    const SnapshotCostModel& model, uint64_t first_cost,
                                    uint64_t first_heap) {
  SnapshotNeed n;
  auto heap = static_cast<double>(heap_used);
  if (first_cost > 0 && first_heap > 0) {
    // What a snapshot of this heap took, scaled to the heap now: better than any estimate.
    n.measured = true;
    double scaled = static_cast<double>(first_cost) * heap / static_cast<double>(first_heap);
    n.bytes = static_cast<int64_t>(std::max(scaled, model.heap_factor * heap));
    n.basis = fmt::format("(the first snapshot took the target {} more for a heap of {})",
                          format_bytes(static_cast<double>(first_cost)),
                          format_bytes(static_cast<double>(first_heap)));
    return n;
  }
  n.mean_from_profile = profile.bytes >= model.min_profile_bytes && profile.objects > 0;
  n.mean_object_bytes = n.mean_from_profile ? profile.bytes / profile.objects : model.assumed_object_bytes;
  n.objects = heap / n.mean_object_bytes;
  n.bytes = static_cast<int64_t>(std::max(model.heap_factor * heap, n.objects * model.bytes_per_object));
  n.basis = fmt::format(
      "(about {:.1f} M objects of {:.0f} bytes on average{}, and V8 takes up to about {} per object to "
      "write one)",
      n.objects / 1e6, n.mean_object_bytes,
      n.mean_from_profile ? ", as the sampling heap profile's live objects"
                          : ", assumed: the sampling heap profile holds too little yet to tell",
      format_bytes(model.bytes_per_object));
  return n;
}

}  // namespace memlens::inspector
