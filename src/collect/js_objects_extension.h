// `--js-objects`: V8's own view of the traced node process through its inspector (inspector/collector.h),
// wired into the trace like any other source. The collector's events are folded into the process's
// model::JsObjectsState at every tick and sample; while the JS heap's growth is unconfirmed (heap used
// after GC rising with no recent full GC), it asks V8 for a full GC, at most one per 12 s, so that the
// after-GC rule gets its proof (docs/verdicts.md); never in sampling mode.
#pragma once

#include <memory>
#include <string>

#include "collect/extension.h"

namespace memlens::collect {

struct JsObjectsOptions {
  std::string mode = "full";  // "full", "sampling" (never pauses the app), "force" (full; overrides an
                              // unknown SIGUSR1 check)
  bool run_mode = false;      // memlens started the process: wait for node's SIGUSR1 handler
  int max_snapshots = 3;
  std::string snapshot_dir;  // where to write each snapshot; empty: nowhere
};

// Growth in heap used after GC since the last full GC (or the lowest figure seen) that asks for a full GC.
constexpr double kForcedGcGrowthBytes = 16.0 * 1024 * 1024;
// No forced GC within this long of a full GC V8 ran itself.
constexpr double kForcedGcAfterFullS = 10.0;

// Whether the GC history gives reason to ask for a full GC now (t_s): the after-GC figures have risen by
// kForcedGcGrowthBytes above the last full GC's figure (or the lowest figure, with no full GC), and no
// full GC ran in the last kForcedGcAfterFullS.
bool js_growth_unconfirmed(const model::V8State& v8, double t_s);

std::unique_ptr<TraceExtension> make_js_objects_extension(const JsObjectsOptions& opts);

}  // namespace memlens::collect
