// The verdict rules: which verdict a category's series earn (docs/verdicts.md), built from the growth
// statistics (growth.h) and worded by wording.h.
#include "analyze/verdicts.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <span>

#include "analyze/growth.h"
#include "analyze/wording.h"
#include "common/units.h"

namespace memlens::analyze {
namespace {

Verdict base_verdict(Category c, Basis b, const Growth& g, const CategoryInput& in) {
  Verdict v;
  v.category = c;
  v.rate_per_s = g.line.slope;
  v.top_stacks = in.top_stacks;
  v.window_s = g.span;
  v.start_value = g.start;
  v.end_value = g.end;
  v.basis = std::string(basis_name(c, b));
  return v;
}

Verdict not_enough(Category c, Basis b, const Growth& g, const CategoryInput& in, const Thresholds& th) {
  Verdict v = base_verdict(c, b, g, in);
  v.kind = VerdictKind::stable;
  v.confidence = 0;
  v.evidence = fmt::format("only {} of {} so far ({} points); a verdict needs {} and {} points",
                           format_duration(g.span), figure(c, b), g.n, format_duration(th.min_duration_s),
                           th.min_points);
  v.headline = fmt::format("{}: not enough data yet ({})", label(c), format_duration(g.span));
  return v;
}

// The projection to a known limit, for a verdict whose figure rises: sets seconds_to_limit and returns
// the sentence's tail and the headline's.
std::pair<std::string, std::string> project_to_limit(Verdict& v, const Growth& g, const CategoryInput& in) {
  if (!in.limit || *in.limit <= 0 || g.line.slope <= 0) return {};
  Category c = v.category;
  double left = *in.limit - g.end;
  v.seconds_to_limit = std::max(0.0, left / g.line.slope);
  v.projection = Verdict::LimitProjection{c == Category::js_heap ? "heap"
                                          : is_count_category(c) ? "nofile"
                                                                 : "limit",
                                          *in.limit,
                                          g.end,
                                          g.line.slope,
                                          "",
                                          {c}};
  if (left <= 0) return {fmt::format("; it is already at {}", limit_phrase(c, *in.limit)), "; at its limit"};
  return {fmt::format("; at this rate it reaches {} in {}", limit_phrase(c, *in.limit),
                      format_eta(*v.seconds_to_limit)),
          fmt::format("; limit in {}", format_eta(*v.seconds_to_limit))};
}

Verdict leak(Category c, Basis b, const Growth& g, const CategoryInput& in, std::string_view extra) {
  Verdict v = base_verdict(c, b, g, in);
  v.kind = VerdictKind::leak_suspected;
  v.confidence = clamp01(g.rise_confidence);
  bool count = is_count_category(c);
  auto [limit_text, limit_head] = project_to_limit(v, g, in);
  v.evidence = fmt::format("{} grew from {} to {} ({}) over {}{}{}", figure(c, b), format_value(c, g.start),
                           format_value(c, g.end), format_rate(g.line.slope, count), format_duration(g.span),
                           extra, limit_text);
  v.headline = fmt::format("{} leak suspected: {} {} over {}{}", label(c), short_figure(c, b),
                           format_rate(g.line.slope, count), coarse_duration(g.span), limit_head);
  return v;
}

Verdict plateau(Category c, Basis b, const Growth& g, const CategoryInput& in, const Thresholds& th) {
  Verdict v = base_verdict(c, b, g, in);
  v.kind = VerdictKind::growth_then_plateau;
  double ratio = g.early_slope > 0 ? std::max(g.recent_slope, 0.0) / g.early_slope : 1;
  v.confidence = clamp01(g.rise_confidence) * clamp01(1 - ratio) * duration_weight(g, th);
  // The rate that matters now is the recent one.
  v.rate_per_s = g.recent_slope;
  bool count = is_count_category(c);
  v.evidence = fmt::format("{} grew from {} to {} in the first {}, then levelled off ({} over the last {})",
                           figure(c, b), format_value(c, g.early_start), format_value(c, g.recent_level),
                           format_duration(g.split_t - g.t0), format_rate(g.recent_slope, count),
                           format_duration(g.t1 - g.split_t));
  v.headline = fmt::format("{} grew, then levelled off at {}: not a leak so far", label(c),
                           format_value(c, g.recent_level));
  return v;
}

Verdict stable(Category c, Basis b, const Growth& g, const CategoryInput& in, const Thresholds& th,
               std::string_view extra = {}) {
  Verdict v = base_verdict(c, b, g, in);
  v.kind = VerdictKind::stable;
  bool count = is_count_category(c);
  // Half for "no significant trend", the other half for how far the fitted growth stays below the
  // threshold.
  double below = g.threshold > 0 ? 1 - std::max(g.growth, 0.0) / g.threshold : 0;
  v.confidence = (0.5 + 0.5 * clamp01(below)) * duration_weight(g, th);
  if (g.falls) {
    v.evidence =
        fmt::format("{} fell from {} to {} ({}) over {}{}", figure(c, b), format_value(c, g.start),
                    format_value(c, g.end), format_rate(g.line.slope, count), format_duration(g.span), extra);
    v.headline =
        fmt::format("{} falling: {} {}", label(c), short_figure(c, b), format_rate(g.line.slope, count));
  } else if (g.peaked) {
    v.evidence = fmt::format("{} rose to {} and came back to about {} over {}{}", figure(c, b),
                             format_value(c, g.early_peak), format_value(c, g.recent_level),
                             format_duration(g.span), extra);
    v.headline = fmt::format("{} back to about {} after a rise", label(c), format_value(c, g.recent_level));
  } else if (g.growth >= g.threshold) {
    // The fitted line rises by enough, but the points do not rise steadily (Mann-Kendall): noise or a
    // swing, said as such rather than as a rate "below" an amount.
    v.evidence = fmt::format(
        "{} went from {} to {} over {} without a steady rise ({:.0f}% confidence of one, {:.0f}% needed){}",
        figure(c, b), format_value(c, g.start), format_value(c, g.end), format_duration(g.span),
        100 * g.rise_confidence, 100 * th.significance, extra);
    v.headline = fmt::format("{} stable at about {}", label(c), format_value(c, g.recent_level));
  } else {
    v.evidence = fmt::format(
        "{} stayed at about {} over {} (fitted change {}, below the {} that would count as growth){}",
        figure(c, b), format_value(c, g.recent_level), format_duration(g.span), signed_value(c, g.growth),
        format_value(c, g.threshold), extra);
    v.headline = fmt::format("{} stable at about {}", label(c), format_value(c, g.recent_level));
  }
  return v;
}

Verdict retained(Category c, Basis live_basis, const Growth& live, const Retention& r,
                 const CategoryInput& in) {
  Verdict v = base_verdict(c, live_basis, live, in);
  v.kind = VerdictKind::retained_not_leak;
  v.confidence = r.confidence;
  std::string_view who =
      c == Category::js_heap ? "V8 is keeping freed heap pages" : "the allocator is keeping freed memory";
  std::string_view resident_fig = figure(c, Basis::resident);
  if (r.live_fell) {
    v.evidence = fmt::format("{} fell from {} to {} while {} stayed at {}: {}, not a leak",
                             figure(c, live_basis), format_bytes(r.live_before), format_bytes(r.live_now),
                             resident_fig, format_bytes(r.resident_now), who);
  } else {
    v.evidence = fmt::format("{} rose from {} to {} while {} stayed at about {}: {}, not a leak",
                             resident_fig, format_bytes(r.resident_before), format_bytes(r.resident_now),
                             figure(c, live_basis), format_bytes(r.live_now), who);
  }
  if (c == Category::js_heap) {
    v.headline = fmt::format("JS heap keeps freed pages: heap used after GC is {}, V8 holds {}; not a leak",
                             format_bytes(r.live_now), format_bytes(r.resident_now));
  } else {
    v.headline = fmt::format("{} retained, not a leak: live buffers {}, resident {}", label(c),
                             format_bytes(r.live_now), format_bytes(r.resident_now));
  }
  return v;
}

// Heap used after GC rises steadily but no full GC has shown that the rise is live objects: garbage
// promoted to old space stays in every scavenge's figure until V8 runs one. `why` says what the window's
// full GCs covered; `confirm_above` is the figure a full GC would have to find to prove a leak.
Verdict unconfirmed(Category c, Basis b, const Growth& g, const CategoryInput& in, const Thresholds& th,
                    std::string_view why, double confirm_above) {
  Verdict v = base_verdict(c, b, g, in);
  v.kind = VerdictKind::growth_unconfirmed;
  // Sure that the figure rises; whether live objects rise is open, so never more than half.
  v.confidence = 0.5 * clamp01(g.rise_confidence) * duration_weight(g, th);
  auto [limit_text, limit_head] = project_to_limit(v, g, in);
  v.evidence = fmt::format(
      "{} rose from {} to {} ({}) over {}{}: only a full GC tells live objects from garbage promoted to old "
      "space; a full GC that still finds more than {} would confirm a leak{}",
      figure(c, b), format_value(c, g.start), format_value(c, g.end), format_rate(g.line.slope, false),
      format_duration(g.span), why, format_value(c, confirm_above), limit_text);
  v.headline = fmt::format("{} growing {}, not yet confirmed by a full GC{}", label(c),
                           format_rate(g.line.slope, false), limit_head);
  return v;
}

// Judges a category that has only its resident (or count) series.
Verdict judge_resident(Category c, const CategoryInput& in, const Thresholds& th, Growth* out = nullptr) {
  Growth g = judge(in.resident, is_count_category(c), th);
  if (out) *out = g;
  if (!g.enough) return not_enough(c, Basis::resident, g, in, th);
  if (g.grows && g.levelled) return plateau(c, Basis::resident, g, in, th);
  if (g.grows) return leak(c, Basis::resident, g, in, "");
  return stable(c, Basis::resident, g, in, th);
}

// A category with a live figure: js_heap (heap used after GC) or array_buffers (live backing stores).
// `confirmed`: a rise of the figure is a rise of live objects (always for live backing stores; for heap
// used after GC when full GCs capped the figures or proved the growth). Otherwise a rise is
// growth_unconfirmed, with `unconfirmed_note` saying why and `confirm_above` what would settle it.
Verdict judge_live(Category c, Basis b, const std::vector<SeriesPoint>& live_pts, std::string_view extra,
                   bool confirmed, std::string_view unconfirmed_note, double confirm_above,
                   const CategoryInput& in, const Thresholds& th, Growth* live_out) {
  Growth live = judge(live_pts, false, th);
  *live_out = live;
  if (!live.enough) return not_enough(c, b, live, in, th);
  if (live.grows && !live.levelled && confirmed) return leak(c, b, live, in, extra);
  if (!in.resident.empty()) {
    Growth resident = judge(in.resident, false, th);
    Retention r = check_retention(live, resident, false, th);
    if (r.retained && !live.grows) return retained(c, b, live, r, in);
  }
  if (live.grows && live.levelled) {
    Verdict v = plateau(c, b, live, in, th);
    if (!confirmed) v.evidence += unconfirmed_note;
    return v;
  }
  if (live.grows) return unconfirmed(c, b, live, in, th, unconfirmed_note, confirm_above);
  return stable(c, b, live, in, th, extra);
}

// A leak brings growth in other categories with it. Every Buffer brings more than its backing store: a JS
// object on the V8 heap (the Uint8Array and its ArrayBuffer, about 200 bytes together) and V8's bookkeeping
// in malloc (the BackingStore and the ArrayBuffer's extension, about as much again): 12,000 leaked 8 KB
// Buffers grew backing stores by 94 MB, heap used after GC by 2.3 MB and the native heap by 2.1 MB. A JS
// heap leak grows V8's and Node's malloc'd bookkeeping of the heap (see docs/verdicts.md for the measured
// share). Such growths are marked part of the leak that brings them: the user has one leak to fix.
struct CompanionRule {
  Category parent;
  std::string_view parent_basis;   // the parent must be a leak on its live figure
  double share;                    // a companion grows at most this share of the parent's rate
  std::string_view parent_figure;  // "live ArrayBuffer memory"
  std::string_view parent_leak;    // "the Buffer leak"
  std::string_view parent_growth;  // "the Buffer growth": the same, while no full GC has confirmed it
  std::string_view brought_by;     // "the leaked Buffers'"
};

void mark_companions(std::vector<Verdict>& out, const CompanionRule& rule, std::span<const Category> kinds) {
  const Verdict* parent = nullptr;
  for (const auto& v : out)
    if (v.category == rule.parent && is_growing(v.kind) && v.rate_per_s > 0 && v.basis == rule.parent_basis &&
        !v.part_of)
      parent = &v;
  if (!parent) return;
  double parent_rate = parent->rate_per_s;
  std::string_view whose =
      parent->kind == VerdictKind::leak_suspected ? rule.parent_leak : rule.parent_growth;
  for (auto& v : out) {
    if (v.kind != VerdictKind::leak_suspected || v.part_of) continue;
    if (std::find(kinds.begin(), kinds.end(), v.category) == kinds.end()) continue;
    if (v.rate_per_s > rule.share * parent_rate) continue;
    v.part_of = rule.parent;
    // What a growth brings with it is a leak exactly when that growth is: unconfirmed with it.
    if (parent->kind == VerdictKind::growth_unconfirmed) {
      v.kind = VerdictKind::growth_unconfirmed;
      v.confidence = std::min(v.confidence, parent->confidence);
      v.seconds_to_limit.reset();
      v.projection.reset();
    }
    double share = 100.0 * v.rate_per_s / parent_rate;
    std::string_view what = v.category == Category::js_heap ? "JS objects" : "bookkeeping in malloc";
    v.evidence += fmt::format(
        "; that is {:.1f}% of the growth of {} ({}), no more than {} own {} take (up to {:.0f}%): part of "
        "{}, "
        "not a leak of its own",
        share, rule.parent_figure, format_rate(parent_rate, false), rule.brought_by, what, 100 * rule.share,
        whose);
    v.headline = fmt::format("{} grows {} with {}: {} own {}, part of it", label(v.category),
                             format_rate(v.rate_per_s, false), whose, rule.brought_by, what);
  }
}

void mark_all_companions(std::vector<Verdict>& out, const Thresholds& th) {
  // Buffers first: a Buffer leak's JS objects are not a JS leak whose bookkeeping could be claimed.
  static constexpr std::array kBufferCompanions = {Category::js_heap, Category::native_heap};
  mark_companions(out,
                  {Category::array_buffers, basis_name(Category::array_buffers, Basis::live_buffers),
                   th.buffer_companion_share, "live ArrayBuffer memory", "the Buffer leak",
                   "the Buffer growth", "the leaked Buffers'"},
                  kBufferCompanions);
  static constexpr std::array kJsCompanions = {Category::native_heap};
  mark_companions(out,
                  {Category::js_heap, basis_name(Category::js_heap, Basis::after_gc), th.js_bookkeeping_share,
                   "heap used after GC", "the JS heap leak", "the JS heap growth", "the growing JS heap's"},
                  kJsCompanions);
}

// js_heap on heap used after GC: capped by full GCs when there are enough of them, else the raw figures'
// lower envelope, a leak only where the last full GC proves the growth (docs/verdicts.md).
// A quiet heap's pages rise in steps, at the GCs that promote what the app kept, and stay flat between:
// the recent window's fitted slope is near zero whenever it holds a single step near one of its ends,
// which the plateau test reads as levelling off. Between its ends, though, a staircase still rising rises
// at the earlier part's pace; a real plateau does not rise at all.
bool still_rising_in_steps(const std::vector<SeriesPoint>& pts, const Growth& g, const Thresholds& th) {
  size_t split = 0;  // the last point of the earlier part
  while (split + 1 < pts.size() && pts[split + 1].t_s <= g.split_t) ++split;
  if (split < 2 || split + 3 > pts.size()) return false;
  // Each end as the median of three points, so that one noisy reading does not make or break a step.
  auto level = [&](size_t last) {
    std::array<double, 3> v{pts[last - 2].value, pts[last - 1].value, pts[last].value};
    std::sort(v.begin(), v.end());
    return v[1];
  };
  double first = level(2), at_split = level(split), end = level(pts.size() - 1);
  // Each level stands at its middle point's time; ends that share a time (an earlier part of three points,
  // or readings taken at once) give no rate.
  double early_span = pts[split - 1].t_s - pts[1].t_s;
  double recent_span = pts[pts.size() - 2].t_s - pts[split - 1].t_s;
  if (!(early_span > 0) || !(recent_span > 0)) return false;
  double early_rate = (at_split - first) / early_span;
  double recent_rate = (end - at_split) / recent_span;
  return early_rate > 0 && recent_rate > th.plateau_slope_ratio * early_rate;
}

// A full GC in the recent part frees the old-space garbage the earlier figures held: they drop, and the
// recent window's fitted slope reads the drop as levelling off. The growth goes on, not levels off, when
// both hold:
//  - the full GC found more live than the lowest figure before it in the window, by the growth that counts
//    (garbage cannot raise a full GC's figure: live objects grew). Old space filling with garbage, or a
//    cache at its bound evicting into it, drops back to where it was;
//  - the figures from that full GC on rise again at plateau_slope_ratio of the earlier part's pace.
bool rises_again_after_full_gc(const std::vector<GcPoint>& gcs, const Growth& g, const Thresholds& th) {
  auto last_full = std::find_if(gcs.rbegin(), gcs.rend(), [](const GcPoint& p) { return p.full; });
  if (last_full == gcs.rend() || last_full->t_s <= g.split_t) return false;
  double lowest_before = std::numeric_limits<double>::infinity();
  std::vector<SeriesPoint> after;
  for (const auto& p : gcs) {
    if (p.t_s < last_full->t_s) lowest_before = std::min(lowest_before, p.heap_used_after_bytes);
    if (p.t_s >= last_full->t_s) after.push_back({p.t_s, p.heap_used_after_bytes});
  }
  if (!(last_full->heap_used_after_bytes >= lowest_before + g.threshold)) return false;
  if (after.size() < 3 || !(after.back().t_s - after.front().t_s > 0)) return false;
  return g.early_slope > 0 && theil_sen(after).slope > th.plateau_slope_ratio * g.early_slope;
}

Verdict judge_js_heap(const AnalysisInput& input, const Thresholds& th, Growth* live_out) {
  const CategoryInput& js = input[Category::js_heap];
  std::vector<GcPoint> gcs = input.js_heap_after_gc;
  std::stable_sort(gcs.begin(), gcs.end(), [](const auto& a, const auto& b) { return a.t_s < b.t_s; });
  AfterGcSeries s = comparable_after_gc_series(gcs);
  // Capped by the full GCs around them, the figures need no envelope; long series are still reduced.
  std::vector<SeriesPoint> env = s.points;
  std::string extra = fmt::format(" across {} GCs ({} full)", s.gc_count, s.full_gc_count);
  bool confirmed = s.full_gc_count >= th.min_full_gcs && judge(env, false, th).enough;
  // Raw figures no full GC capped can say no more than growth_unconfirmed unless a full GC proves the
  // growth (by min_proven_growth_bytes at least): the floor that keeps noise from being called a leak
  // can be lower for them, so that a slow leak in a large heap shows within a minute.
  Thresholds jt = th;
  if (!confirmed) jt.min_relative_growth = th.min_relative_growth_unconfirmed;
  std::string note;
  double confirm_above = 0;
  Growth g;
  std::optional<Verdict> decided;
  if (!confirmed) {
    // Too few full GCs, or too short a stretch between them, to cap the figures: judge the raw figures'
    // lower envelope, and call a rise a leak only where the last full GC proves it.
    std::vector<SeriesPoint> raw;
    for (const auto& p : gcs) raw.push_back({p.t_s, p.heap_used_after_bytes});
    double span = raw.back().t_s - raw.front().t_s;
    env = lower_envelope(raw, span / static_cast<double>(th.envelope_windows));
    Growth eg = judge(env, false, jt);
    // The proof must be about the same growth the figures show: a start-up that built a large heap in
    // seconds, followed by a slow rise of garbage, proves the start-up, not the rise.
    LiveGrowthProof proof =
        prove_live_growth(gcs, th.proof_rate_factor * std::max(eg.line.slope, 0.0), eg.threshold);
    double needed = std::max(th.min_proven_growth_bytes, eg.threshold);
    std::optional<ProvenGrowth> proven = proven_live_growth(proof, eg.line.slope, eg.threshold, th);
    double lowest = std::min_element(raw.begin(), raw.end(), [](const auto& a, const auto& b) {
                      return a.value < b.value;
                    })->value;
    // A later full GC proves a leak by finding more than the lowest figure, and more than the last full GC
    // found, by the proven-growth minimum.
    confirm_above = std::max(lowest, proof.full_bytes) + needed;
    extra = fmt::format(" across {} GCs", raw.size());
    if (proven) {
      confirmed = true;
      if (proven->between_full_gcs)
        extra += fmt::format(
            "; the full GCs at {} and {} found {} and {} live: full GCs count live objects only, so live "
            "objects grew by {} between them ({}, {:.0f}% of the pace of the figures)",
            format_duration(proven->from_t_s), format_duration(proven->to_t_s),
            format_bytes(proven->from_bytes), format_bytes(proven->to_bytes), format_bytes(proven->bytes()),
            format_rate(proven->rate(), false), 100 * proven->rate() / eg.line.slope);
      else
        extra += fmt::format(
            "; the full GC at {} found {} live, {} more than the {} heap used after the GC at {}: garbage "
            "cannot raise a full GC's figure, so live objects grew by at least that much",
            format_duration(proven->to_t_s), format_bytes(proven->to_bytes), format_bytes(proven->bytes()),
            format_bytes(proven->from_bytes), format_duration(proven->from_t_s));
      // The proven rate is the live growth; the figures' own early part may hold a start-up jump that
      // no plateau test should compare the recent rise with.
      if (eg.grows && eg.recent_slope > th.plateau_slope_ratio * proven->rate()) {
        decided = leak(Category::js_heap, Basis::after_gc, eg, js, extra);
        g = eg;
      }
    } else if (s.full_gc_count == 0) {
      note = fmt::format(" across {} GCs, none of them a full GC", raw.size());
    } else {
      double checked = s.points.size() >= 2 ? s.points.back().t_s - s.points.front().t_s : 0;
      note = fmt::format(
          " across {} GCs, but full GCs, the only figures free of garbage, cover just {} of it "
          "({} full GC{}{})",
          raw.size(), format_duration(checked), s.full_gc_count, s.full_gc_count == 1 ? "" : "s",
          proof.released ? fmt::format(", and a later GC found {}", format_bytes(proof.released_to_bytes))
                         : "");
    }
  }
  if (!confirmed && !has_enough_points(env, th) && !js.resident.empty()) {
    // A quiet heap: V8 ran too few GCs to judge their figures (in a 300 MB heap with a slow leak, a
    // scavenge every 10 to 30 s). Its heap pages still show whether it grows; growth of pages is never
    // more than unconfirmed.
    Growth rg = judge(js.resident, false, th);
    if (rg.enough && rg.grows && (!rg.levelled || still_rising_in_steps(js.resident, rg, th))) {
      decided = unconfirmed(
          Category::js_heap, Basis::resident, rg, js, th,
          fmt::format(" with only {} GCs in the window, too few to judge heap used after GC", gcs.size()),
          confirm_above);
      g = judge(env, false, th);
    }
  }
  if (!confirmed && !decided && !has_enough_points(env, th)) {
    // Pages that shrank at the end (V8 uncommitting its young generation after a scavenge, say) hide
    // the steps: the few GC figures there are still judge, if they rise steadily (4 strictly rising
    // figures are the fewest the rise test can find significant), at most unconfirmed.
    Thresholds few = jt;
    few.min_points = th.min_quiet_gc_points;
    Growth fg = judge(env, false, few);
    // Too few figures for the plateau test on each side of its split: the latest interval must still rise
    // at plateau_slope_ratio of the line's pace (a cache that filled has its last figures level).
    std::vector<SeriesPoint> pts = env;
    std::sort(pts.begin(), pts.end(), [](const auto& a, const auto& b) { return a.t_s < b.t_s; });
    bool last_rises = false;
    if (pts.size() >= 2) {
      const auto &a = pts[pts.size() - 2], &b = pts.back();
      last_rises =
          b.t_s > a.t_s && (b.value - a.value) / (b.t_s - a.t_s) >= th.plateau_slope_ratio * fg.line.slope;
    }
    if (fg.enough && fg.grows && !fg.levelled && last_rises) {
      decided = unconfirmed(Category::js_heap, Basis::after_gc, fg, js, th,
                            fmt::format(" across only {} GCs, too few to tell a plateau", gcs.size()),
                            confirm_above);
      g = fg;
    }
  }
  if (!confirmed && !decided) {
    Growth lg = judge(env, false, jt);
    if (lg.enough && lg.grows && lg.levelled && rises_again_after_full_gc(gcs, lg, th)) {
      decided = unconfirmed(Category::js_heap, Basis::after_gc, lg, js, th,
                            note +
                                "; the full GC near the end found live objects grown, freed garbage, and the "
                                "figures after it rise again",
                            confirm_above);
      g = lg;
    }
  }
  if (decided) {
    *live_out = g;
    return *decided;
  }
  return judge_live(Category::js_heap, Basis::after_gc, env, extra, confirmed, note, confirm_above, js, jt,
                    live_out);
}

}  // namespace

std::vector<Verdict> analyze(const AnalysisInput& input, const Thresholds& th) {
  std::vector<Verdict> out;
  std::optional<Growth> js_live, ab_live;
  std::optional<Verdict> js_verdict, ab_verdict;

  // js_heap: heap used after GC, comparable figures only.
  const CategoryInput& js = input[Category::js_heap];
  if (!input.js_heap_after_gc.empty()) {
    Growth g;
    js_verdict = judge_js_heap(input, th, &g);
    js_live = g;
  } else if (!js.resident.empty()) {
    // No GC figures at all (no V8 probes): the heap's resident pages are all there is, and they follow
    // V8's sizing decisions as much as live objects, so the verdict says so and counts for less.
    js_verdict = judge_resident(Category::js_heap, js, th);
    js_verdict->confidence *= 0.6;
    js_verdict->evidence += " (no GC figures: judged on resident heap pages)";
  }
  if (js_verdict) out.push_back(*js_verdict);

  // array_buffers: live backing-store bytes, lower envelope (dropped buffers stay counted until a GC).
  const CategoryInput& ab = input[Category::array_buffers];
  if (!input.array_buffers_live.empty()) {
    std::vector<SeriesPoint> live = input.array_buffers_live;
    std::sort(live.begin(), live.end(), [](const auto& a, const auto& b) { return a.t_s < b.t_s; });
    double width = (live.back().t_s - live.front().t_s) / static_cast<double>(th.envelope_windows);
    Growth g;
    ab_verdict = judge_live(Category::array_buffers, Basis::live_buffers, lower_envelope(live, width), "",
                            true, "", 0, ab, th, &g);
    ab_live = g;
  } else if (!ab.resident.empty()) {
    ab_verdict = judge_resident(Category::array_buffers, ab, th);
  }
  if (ab_verdict) out.push_back(*ab_verdict);

  for (Category c : {Category::native_heap, Category::code, Category::stacks, Category::file_mapped,
                     Category::other_anon, Category::fds, Category::sockets}) {
    if (!input[c].resident.empty()) out.push_back(judge_resident(c, input[c], th));
  }

  // A resident category can only leak into memory the kernel counts: when RSS over the same samples grew
  // by less than half of what the category gained, the bytes moved between categories (attribution
  // refining a mapping's owner), they were not added. Figures judged on live bases (after-GC heap, live
  // backing stores) are not concerned.
  if (!input[Category::rss].resident.empty()) {
    Growth rss_g = judge(input[Category::rss].resident, false, th);
    for (auto& v : out) {
      if (v.kind != VerdictKind::leak_suspected || v.basis != "resident_bytes" ||
          is_count_category(v.category))
        continue;
      Growth cg = judge(input[v.category].resident, false, th);
      if (!rss_g.enough || !cg.enough || cg.growth <= 0 || rss_g.growth >= 0.5 * cg.growth) continue;
      v.kind = VerdictKind::stable;
      v.confidence = 0.5 * duration_weight(cg, th);
      v.evidence = fmt::format(
          "{} rose from {} to {} over {}, but RSS grew by only {} meanwhile: the bytes moved between "
          "categories, "
          "no memory was added",
          figure(v.category, Basis::resident), format_value(v.category, cg.start),
          format_value(v.category, cg.end), format_duration(cg.span),
          format_bytes(std::max(0.0, rss_g.growth)));
      v.headline = fmt::format("{}: no growth the kernel's RSS shows", label(v.category));
    }
  }

  mark_all_companions(out, th);

  // rss: the total, judged on its own series; but RSS that does not grow while a live figure fell from its
  // peak and a category kept the pages is freed memory kept, not a leak.
  const CategoryInput& rss = input[Category::rss];
  if (!rss.resident.empty()) {
    Growth g;
    Verdict v = judge_resident(Category::rss, rss, th, &g);
    double retained_confidence = -1;
    std::string live_text;
    for (const auto& o : out) {
      if (o.kind != VerdictKind::retained_not_leak) continue;
      retained_confidence = std::max(retained_confidence, o.confidence);
      const Growth* l =
          o.category == Category::js_heap ? (js_live ? &*js_live : nullptr) : (ab_live ? &*ab_live : nullptr);
      if (!l) continue;
      live_text +=
          fmt::format("{}{} fell from {} to {}", live_text.empty() ? "" : " and ",
                      o.category == Category::js_heap ? "heap used after GC" : "live ArrayBuffer memory",
                      format_bytes(l->early_peak), format_bytes(l->recent_level));
    }
    if (g.enough && retained_confidence >= 0 && v.kind != VerdictKind::leak_suspected && !g.falls) {
      Verdict r = base_verdict(Category::rss, Basis::resident, g, rss);
      r.kind = VerdictKind::retained_not_leak;
      r.confidence = retained_confidence;
      r.evidence = fmt::format("RSS stays at {} while {}: V8 or malloc is keeping freed pages, not a leak",
                               format_bytes(g.recent_level), live_text);
      r.headline = "RSS stays high but nothing live grows: V8 or malloc keeping freed pages, not a leak";
      v = r;
    } else if (v.kind == VerdictKind::leak_suspected) {
      // RSS growth that categories judged not leaking account for (V8 heap pages filling with garbage
      // that no full GC has collected yet, say) is not a leak of its own. Growth nothing accounts for
      // stays a suspected leak: it may sit in a category the caller did not fill.
      double explained = 0;
      bool any_leak = false, live_explains = false, unconfirmed_explains = false, unjudged_explains = false;
      std::string who;
      for (const auto& o : out) {
        if (is_count_category(o.category)) continue;
        if (o.kind == VerdictKind::leak_suspected) any_leak = true;
        const CategoryInput& ci = input[o.category];
        if (ci.resident.empty()) continue;
        Growth cg = judge(ci.resident, false, th);
        if (!cg.enough || cg.growth <= 0) continue;
        explained += cg.growth;
        // A live figure too short to judge (a quiet heap's few GCs) says nothing either way: the growth
        // stays open rather than "nothing live grows".
        const std::optional<Growth>& live = o.category == Category::js_heap ? js_live : ab_live;
        bool live_basis = o.basis == "heap_used_after_gc" || o.basis == "live_backing_store_bytes";
        bool live_unjudged = live_basis && live && !live->enough;
        live_explains |= live_basis && !live_unjudged;
        unconfirmed_explains |= o.kind == VerdictKind::growth_unconfirmed;
        unjudged_explains |= live_unjudged;
        who += fmt::format("{}{} ({})", who.empty() ? "" : ", ", category_name(o.category),
                           format_rate(cg.line.slope, false));
      }
      if (!any_leak && explained >= 0.5 * g.growth && (unconfirmed_explains || unjudged_explains)) {
        // Growth in a category whose live figure may be growing: neither a leak of its own nor "nothing
        // live grows".
        Verdict r = base_verdict(Category::rss, Basis::resident, g, rss);
        r.kind = VerdictKind::growth_unconfirmed;
        r.confidence = 0.5 * clamp01(g.rise_confidence) * duration_weight(g, th);
        r.evidence =
            fmt::format("RSS grew from {} to {} ({}) over {}, in {}, where {}", format_bytes(g.start),
                        format_bytes(g.end), format_rate(g.line.slope, false), format_duration(g.span), who,
                        unconfirmed_explains
                            ? "growth no full GC has confirmed as live yet"
                            : "the live figures have too little data yet to tell live growth from garbage");
        r.headline = unconfirmed_explains
                         ? fmt::format("RSS growing {}, with a JS heap growth not yet confirmed",
                                       format_rate(g.line.slope, false))
                         : fmt::format(
                               "RSS growing {}; too little data yet to tell if live "
                               "memory grows",
                               format_rate(g.line.slope, false));
        v = r;
      } else if (!any_leak && explained >= 0.5 * g.growth) {
        Verdict r = base_verdict(Category::rss, Basis::resident, g, rss);
        r.kind = live_explains ? VerdictKind::retained_not_leak : VerdictKind::stable;
        r.confidence = 0.5 * duration_weight(g, th);
        r.evidence = fmt::format(
            "RSS grew from {} to {} ({}) over {}, in {}, whose live figures do not grow: memory not yet "
            "reclaimed, not a leak",
            format_bytes(g.start), format_bytes(g.end), format_rate(g.line.slope, false),
            format_duration(g.span), who);
        r.headline =
            live_explains
                ? "RSS grows but nothing live grows: V8 or malloc keeping unreclaimed pages, not a leak"
                : fmt::format("RSS growing {}, in categories that are not leaking",
                              format_rate(g.line.slope, false));
        v = r;
      }
    }
    out.push_back(v);
  }
  if (input.memory_limit) project_to_memory_limit(out, *input.memory_limit);
  order_by_importance(out);
  return out;
}

}  // namespace memlens::analyze
