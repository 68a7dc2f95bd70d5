// Which allocation sites' live JS objects grow, from V8's sampling heap profiles over the trace
// (model::JsObjectsState). Sites are judged by family (a stack prefix: its own site and every site below
// it), because V8's optimizing a function moves its inlined callees' allocations to the function's own
// site. A family grows when its live bytes rise steadily (Mann-Kendall), by a fitted amount that matters
// (Theil-Sen), still rise at the end (not a cache that filled to its bound), and no family above it stays
// flat (an LRU refilled from optimized code: one family rises as its sibling falls). The deepest growing
// families are named; one whose growth the families below it explain is left out.
//
// The profiler samples only what is allocated once it runs: attached to a process whose cache is at its
// bound, the cache's sampled live bytes rise while its entries are replaced (sampled entries evicting
// unsampled ones) though the cache does not grow. So where V8's heap used after full GCs is known (the GC
// probes; memlens asks for a full GC before each profile read), a family's rise counts only when the heap
// rose over the same window by a share of it.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "analyze/trend.h"
#include "model/js_objects.h"
#include "model/v8_state.h"

namespace memlens::analyze {

struct JsLiveThresholds {
  double min_growth_bytes = 1024.0 * 1024;  // fitted rise over the window
  double min_window_s = 10;                 // between the site's first and last points
  size_t min_points = 5;
  double max_p = 0.01;                   // Mann-Kendall one-sided p-value of "rising"
  double recent_share = 0.4;             // the last part of the window judged for levelling off
  double min_recent_slope_ratio = 0.25;  // its slope against the whole window's
  size_t max_sites = 10;
  // With the heap's figures: its fitted rise after full GCs over the family's window, against the family's.
  double min_heap_share = 0.5;
  size_t min_heap_points = 3;  // full GCs within the window needed to judge
};

struct JsSiteGrowth {
  model::JsStack stack;  // root first: a site's stack, or the common prefix of the sites below it
  double window_s = 0;
  // The family's: fitted at the window's ends, clamped to the observed range; live in the last profile.
  double first_bytes = 0, last_bytes = 0;
  double rate_bytes_per_s = 0;
  uint64_t live_bytes = 0, live_objects = 0;
  // The app's own frame that names the site: its innermost frame outside node's internals. V8's sampling
  // profiler records only the outermost function of an optimized frame, so a hot app function inlined
  // into node's internals (a timer or event callback) leaves a stack of internals only: then the app
  // frame seen with the most live bytes under the same stack in other sites, marked inferred.
  std::optional<model::JsFrame> app_frame;
  bool app_frame_inferred = false;
  // App frames seen below this site's stack in other sites (most live bytes first, at most 3): functions
  // V8 may have inlined into the site's optimized function, whose allocations it then records there.
  std::vector<model::JsFrame> inlined_candidates;
};

// Whether a frame is the app's (a script of its own, not node's internals or a V8 builtin).
bool is_app_frame(const model::JsFrame& f);

// V8's heap used after each full GC, in trace time.
std::vector<SeriesPoint> heap_after_full_gcs(const model::V8State& v8);

// Growing sites, fastest first. heap_after_full_gc: heap_after_full_gcs() of the same process, or empty
// when unknown (then sampled live bytes alone decide).
std::vector<JsSiteGrowth> growing_js_sites(const model::JsObjectsState& s, const JsLiveThresholds& th = {},
                                           std::span<const SeriesPoint> heap_after_full_gc = {});

}  // namespace memlens::analyze
