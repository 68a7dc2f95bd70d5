// The verdict column of `memlens top`: a short word from the few minutes of history a viewer keeps (RSS at
// each refresh, V8's heap used after each GC), judged by the same growth rules and full-GC proof as the
// reports' verdicts (growth.h, after_gc.h) with the default thresholds. `attach` gives the full verdicts.
#pragma once

#include <span>
#include <string>

#include "analyze/after_gc.h"
#include "analyze/trend.h"
#include "analyze/verdicts.h"

namespace memlens::analyze {

// "leak?": heap used after GC rises and a full GC proves the rise is live objects.
// "grow?": RSS, or heap used after GC, rises significantly (not yet proven a leak).
// "stable": enough history, no significant rise.
// "-": too little history for any verdict (fewer than min_points refreshes or min_duration_s).
std::string top_verdict(std::span<const SeriesPoint> rss, std::span<const GcPoint> after_gc,
                        const Thresholds& th = Thresholds{});

}  // namespace memlens::analyze
