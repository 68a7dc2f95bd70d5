// Growth verdicts: turns per-category time series of one process into plain-words judgements
// (leak_suspected, growth_then_plateau, retained_not_leak, stable) with the numbers behind them.
// The rules and thresholds, and why they are what they are, are in docs/verdicts.md. The code: growth
// statistics (growth.h), the rules (verdicts.cpp), their wording (wording.h), the order (ordering.cpp), the
// time to the memory limit (limits.cpp).
#pragma once

#include <array>
#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "analyze/after_gc.h"
#include "analyze/trend.h"

namespace memlens::analyze {

// The breakdown categories, plus the total (rss) and the handle counts (fds, sockets).
enum class Category {
  js_heap,
  array_buffers,
  native_heap,
  code,
  stacks,
  file_mapped,
  other_anon,
  rss,
  fds,
  sockets,
};
inline constexpr size_t kCategoryCount = 10;

std::string_view category_name(Category c);  // "js_heap", ..., "rss", "fds", "sockets" (report.json names)
std::optional<Category> parse_category(std::string_view name);
bool is_count_category(Category c);      // fds and sockets are counts; every other category is bytes
std::string_view rate_unit(Category c);  // "bytes/s" or "count/s"

struct CategoryInput {
  // Resident bytes of the category (the kernel's RSS for rss; the open count for fds and sockets), one
  // point per sample, in time order. Empty: the category is not judged.
  std::vector<SeriesPoint> resident;
  // A limit of the category's own, in the series' units: V8's heap size limit for js_heap (compared with
  // heap used after GC), RLIMIT_NOFILE for fds (and sockets, which count against it). The memory limit
  // every byte category shares is AnalysisInput::memory_limit.
  std::optional<double> limit;
  // The category's top growing stacks, most important first, already rendered; copied to the verdict.
  std::vector<std::string> top_stacks;
};

// The memory limit the process runs into: the effective limit of its memory cgroup, or the host's memory
// where no cgroup limits it, and how much of it is used, by everything that counts against it (the
// cgroup's whole usage, every process in it), at the last sample.
struct MemoryLimit {
  enum class Scope { cgroup, host } scope = Scope::cgroup;
  double limit_bytes = 0;  // the cgroup's effective limit, or the host's MemTotal
  double usage_bytes = 0;  // the cgroup's whole usage, or the host's MemTotal - MemAvailable
  std::string where;       // "cgroup v1 /a/b" (the cgroup whose limit it is), or "host"
};

struct AnalysisInput {
  std::array<CategoryInput, kCategoryCount> categories;
  // Growing memory categories are projected to it (docs/verdicts.md); rss is too, and to it alone.
  std::optional<MemoryLimit> memory_limit;
  // js_heap is judged on these, never on resident pages (those only decide retained_not_leak).
  std::vector<GcPoint> js_heap_after_gc;
  // Live ArrayBuffer/Buffer backing-store bytes; array_buffers is judged on this when present.
  std::vector<SeriesPoint> array_buffers_live;

  CategoryInput& operator[](Category c) { return categories[static_cast<size_t>(c)]; }
  const CategoryInput& operator[](Category c) const { return categories[static_cast<size_t>(c)]; }
};

// Every default is explained in docs/verdicts.md.
struct Thresholds {
  double min_duration_s = 20;  // a series shorter than this gets no growth verdict yet
  size_t min_points = 6;       // points of the judged series (after-GC envelope buckets included)
  double min_growth_bytes = 2 * 1024.0 * 1024.0;  // fitted growth over the window, byte categories
  double min_growth_count = 10;                   // fitted growth over the window, fds and sockets
  double min_relative_growth = 0.05;              // fitted growth as a fraction of the fitted start level
  // ... for heap used after GC that no full GC capped (at most growth_unconfirmed without a full GC's proof)
  double min_relative_growth_unconfirmed = 0.025;
  double significance = 0.95;        // Mann-Kendall one-sided confidence that the series rises
  double recent_fraction = 1.0 / 3;  // the "recent" window for plateau detection, share of the span
  double min_recent_s = 10;          // ... but never shorter than this
  double plateau_slope_ratio = 0.3;  // recent slope below this share of the earlier slope: levelled off
  // A js_heap or native_heap leak growing at most this share of a live ArrayBuffer leak's rate is what the
  // leaked Buffers bring with them (part_of array_buffers).
  double buffer_companion_share = 0.10;
  // A native_heap leak growing at most this share of a JS heap leak's rate (heap used after GC) is V8's and
  // Node's bookkeeping of the growing heap (part_of js_heap).
  double js_bookkeeping_share = 0.25;
  size_t max_points = 600;  // longer series are reduced to this many bucket medians first
  size_t min_full_gcs = 3;  // full GCs in the window for a js_heap verdict on full-GC-capped figures
  // With fewer full GCs, a js_heap leak needs the last full GC to prove at least this much live growth
  // (and the relative floor), at a rate within `proof_rate_factor` of the after-GC figures' own rate.
  double min_proven_growth_bytes = 16 * 1024.0 * 1024.0;
  double proof_rate_factor = 3;
  // ... and the full GC must find at least this share of the rise the figures showed up to it still live.
  double min_live_share_of_rise = 0.5;
  // Two full GCs measure the live growth between them itself, not a bound on it: the floor is this (above
  // the 1 MB by which full GCs of a steady heap differ) and the relative floor of the earlier one's figure,
  // when that growth keeps at least `min_pace_share_between_full_gcs` of the after-GC figures' own rate
  // (a start-up over before the earlier full GC shows none between them).
  double min_growth_between_full_gcs_bytes = 3 * 1024.0 * 1024.0;
  double min_pace_share_between_full_gcs = 0.5;
  size_t envelope_windows = 15;  // windows of the lower envelope of live figures
  // A quiet heap's GC figures judged on fewer than min_points, when its pages do not settle it.
  size_t min_quiet_gc_points = 4;
};

// growth_unconfirmed: heap used after GC rises but no full GC in the window has shown that the rise is live
// objects rather than garbage waiting in old space.
enum class VerdictKind { leak_suspected, growth_unconfirmed, growth_then_plateau, retained_not_leak, stable };
std::string_view kind_name(VerdictKind k);  // "leak_suspected", ... (report.json names)
bool is_growing(VerdictKind k);             // leak_suspected or growth_unconfirmed

struct Verdict {
  VerdictKind kind = VerdictKind::stable;
  Category category = Category::rss;
  double rate_per_s = 0;  // fitted slope of the judged series: bytes/s, or count/s for fds and sockets
  double confidence = 0;  // 0..1
  std::string evidence;   // one plain sentence with the numbers
  std::string headline;   // short plain words for the terminal summary
  std::vector<std::string> top_stacks;
  std::optional<double> seconds_to_limit;  // leak_suspected or growth_unconfirmed with a known limit only
  // The figures seconds_to_limit came from: which limit, how much of it was used, at what rate.
  struct LimitProjection {
    std::string limit;  // "cgroup", "host" (memory), "heap" (V8's heap limit), "nofile" (RLIMIT_NOFILE)
    double limit_value = 0;
    double used_value = 0;  // the whole cgroup's (host's) usage; the judged figure's end for heap and nofile
    double rate_per_s = 0;  // the rate the time is taken at
    std::string where;      // "cgroup v1 /a/b", "host", or "" for heap and nofile
    std::vector<Category> growing;  // the categories whose rates make rate_per_s (memory limits)
  };
  std::optional<LimitProjection> projection;
  // The figures the sentence quotes, for reports that chart them.
  double window_s = 0;     // time span of the judged series
  double start_value = 0;  // fitted level at the start of the window
  double end_value = 0;    // fitted level at the end of the window
  std::string basis;       // "heap_used_after_gc", "live_backing_store_bytes", "resident_bytes", "open_count"
  // Set on a growth that another category's leak brings with it (the JS objects and malloc bookkeeping of
  // leaked Buffers): still a growth, but not a leak of its own. See docs/verdicts.md.
  std::optional<Category> part_of;
};

// Judges every category that has data, and returns the verdicts ordered by importance.
std::vector<Verdict> analyze(const AnalysisInput& input, const Thresholds& thresholds = {});

// Projects the growing memory verdicts (leak_suspected, growth_unconfirmed) to the memory limit: the
// headroom (limit - whole usage) over the sum of the rates of every growing memory category (rss over its
// own rate), sooner than a limit of the category's own (V8's heap limit) or instead of it. Sets
// seconds_to_limit and projection and says it in evidence and headline. analyze() calls it.
void project_to_memory_limit(std::vector<Verdict>& verdicts, const MemoryLimit& limit);
// "the 512 MiB memory limit of cgroup v1 /a/b", "the host's 15.6 GiB of memory"
std::string memory_limit_phrase(const MemoryLimit& limit);

// Most important first: suspected leaks (categories before the rss total; among categories the nearest
// projected limit first, then memory before fds and sockets, then by rate), then growth_unconfirmed, then
// retained_not_leak, then growth_then_plateau, then stable. Stable within each group. A verdict that is
// part_of another leak follows that leak directly.
void order_by_importance(std::vector<Verdict>& verdicts);

// The series js_heap is judged on, as analyze() builds it (exposed for reports and tests). Every
// after-GC figure is an upper bound on live bytes; a full GC's is the tightest. Each figure is capped by
// the full GCs around it (the first full GC's figure before it, the straight line between two full GCs'
// figures in between), and figures after the last full GC are left out (no full GC has
// checked them yet).
struct AfterGcSeries {
  std::vector<SeriesPoint> points;
  size_t gc_count = 0;       // GCs that fed it
  size_t full_gc_count = 0;  // of which full GCs
  double unchecked_s = 0;    // time after the last full GC that was left out
};
AfterGcSeries comparable_after_gc_series(std::vector<GcPoint> gcs);

// Lower envelope: the minimum point of each time window of `width_s` seconds (garbage only ever adds to
// a live figure, so the minimum is the best bound). Series with fewer points come back unchanged.
std::vector<SeriesPoint> lower_envelope(std::span<const SeriesPoint> points, double width_s);

// Formatting used in evidence and headlines (exposed for the terminal summary and tests); bytes are
// written by format_bytes (common/units.h).
std::string format_duration(double seconds);        // "3m10s", "45s", "1h05m"
std::string format_eta(double seconds);             // coarse: "40 s", "12 min", "16 h", "3 days"
std::string format_rate(double per_s, bool count);  // "+4.1 MiB/min", "+5.0/s"

}  // namespace memlens::analyze
