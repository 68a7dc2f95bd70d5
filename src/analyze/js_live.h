// Which allocation sites' live JS objects grow, from V8's sampling heap profiles over the trace
// (model::JsObjectsState). A site grows when its live bytes rise steadily (Mann-Kendall), by a fitted
// amount that matters (Theil-Sen), and still rise at the end (not a cache that filled to its bound).
#pragma once

#include <cstdint>
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
  uint32_t stack_id = 0;
  double window_s = 0;
  double first_bytes = 0, last_bytes = 0;  // fitted at the window's ends, clamped to the observed range
  double rate_bytes_per_s = 0;
  uint64_t live_bytes = 0, live_objects = 0;  // in the last profile
};

// Growing sites, fastest first.
std::vector<JsSiteGrowth> growing_js_sites(const model::JsObjectsState& s, const JsLiveThresholds& th = {});

}  // namespace memlens::analyze
