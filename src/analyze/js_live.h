// Which allocation sites' live JS objects grow, from V8's sampling heap profiles over the trace
// (model::JsObjectsState). Sites are judged by family (a stack prefix: its own site and every site below
// it), because V8's optimizing a function moves its inlined callees' allocations to the function's own
// site. A family grows when its live bytes rise steadily (Mann-Kendall), by a fitted amount that matters
// (Theil-Sen), still rise at the end (not a cache that filled to its bound), and no family above it stays
// flat (an LRU refilled from optimized code: one family rises as its sibling falls). The deepest growing
// families are named; one whose growth the families below it explain is left out.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "model/js_objects.h"

namespace memlens::analyze {

struct JsLiveThresholds {
  double min_growth_bytes = 1024.0 * 1024;  // fitted rise over the window
  double min_window_s = 10;                 // between the site's first and last points
  size_t min_points = 5;
  double max_p = 0.01;                   // Mann-Kendall one-sided p-value of "rising"
  double recent_share = 0.4;             // the last part of the window judged for levelling off
  double min_recent_slope_ratio = 0.25;  // its slope against the whole window's
  size_t max_sites = 10;
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

// Growing sites, fastest first.
std::vector<JsSiteGrowth> growing_js_sites(const model::JsObjectsState& s, const JsLiveThresholds& th = {});

}  // namespace memlens::analyze
