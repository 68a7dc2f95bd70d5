#include "model/v8_state.h"

namespace memlens::model {

const char* gc_kind_name(GcKind k) {
  switch (k) {
    case GcKind::kScavenge: return "scavenge";
    case GcKind::kMarkCompact: return "mark_compact";
    case GcKind::kMinorMarkCompact: return "minor_mark_compact";
    default: return "unknown";
  }
}

}  // namespace memlens::model
