#include "report/terminal.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <optional>

#include "analyze/verdicts.h"
#include "report/js_objects_section.h"

namespace memlens::report {

using nlohmann::json;

namespace {

// The report holds null where a figure is unknown (no GC yet, no exit status, a section not filled):
// the summary reads every figure through these, so an unknown one never throws.
std::optional<uint64_t> u64_field(const json& obj, const char* key) {
  if (!obj.is_object()) return std::nullopt;
  auto it = obj.find(key);
  if (it == obj.end() || !it->is_number()) return std::nullopt;
  if (it->is_number_float()) return it->get<double>() < 0 ? 0 : static_cast<uint64_t>(it->get<double>());
  if (it->is_number_integer() && it->get<int64_t>() < 0) return 0;
  return it->get<uint64_t>();
}

uint64_t u64_or0(const json& obj, const char* key) {
  return u64_field(obj, key).value_or(0);
}

double f64_or0(const json& obj, const char* key) {
  if (!obj.is_object()) return 0;
  auto it = obj.find(key);
  return it != obj.end() && it->is_number() ? it->get<double>() : 0.0;
}

std::string str_or(const json& obj, const char* key, const std::string& fallback = "") {
  if (!obj.is_object()) return fallback;
  auto it = obj.find(key);
  return it != obj.end() && it->is_string() ? it->get<std::string>() : fallback;
}

const json& object_or_empty(const json& obj, const char* key) {
  static const json empty = json::object();
  if (!obj.is_object()) return empty;
  auto it = obj.find(key);
  return it != obj.end() && it->is_object() ? *it : empty;
}

const json& array_or_empty(const json& obj, const char* key) {
  static const json empty = json::array();
  if (!obj.is_object()) return empty;
  auto it = obj.find(key);
  return it != obj.end() && it->is_array() ? *it : empty;
}

// " (ring_full=3 map_full=1)": the causes with a count, "" when none has one.
std::string causes(const json& by_cause) {
  std::string detail;
  for (const auto& [cause, n] : by_cause.items())
    if (uint64_t count = u64_or0(by_cause, cause.c_str()); count > 0)
      detail += fmt::format(" {}={}", cause, count);
  return detail.empty() ? "" : " (" + detail.substr(1) + ")";
}

// "at this rate the 512 MiB memory limit of cgroup v1 /a is reached in ~4 min (js_heap +60 MiB/min)": the
// soonest projection of any verdict of any process, "" when none has one.
std::string soonest_limit_line(const json& processes) {
  const json* best = nullptr;
  const json* best_process = nullptr;
  double best_s = 0;
  for (const auto& p : processes)
    for (const auto& v : array_or_empty(p, "verdicts")) {
      const json& limit = object_or_empty(v, "limit");
      if (limit.empty() || !v.contains("seconds_to_limit") || !v["seconds_to_limit"].is_number()) continue;
      if (str_or(limit, "kind") == "nofile") continue;  // memory first: fds have their own line
      double s = v["seconds_to_limit"].get<double>();
      // The categories name what grows; rss, their total, only where no category has a time.
      bool rss = str_or(v, "category") == "rss";
      bool best_rss = best && str_or(*best, "category") == "rss";
      if (!best || (best_rss && !rss) || (best_rss == rss && s < best_s)) {
        best = &v;
        best_process = &p;
        best_s = s;
      }
    }
  if (!best) return "";
  const json& limit = (*best)["limit"];
  std::string kind = str_or(limit, "kind");
  double value = f64_or0(limit, "value");
  std::string what =
      kind == "host" ? fmt::format("the host's {} of memory", format_bytes(value))
      : kind == "cgroup"
          ? fmt::format("the {} memory limit of {}", format_bytes(value), str_or(limit, "where"))
          : fmt::format("pid {}'s {} JS heap limit", u64_or0(*best_process, "pid"), format_bytes(value));
  std::string rates;
  for (const auto& c : array_or_empty(limit, "growing"))
    for (const auto& v : array_or_empty(*best_process, "verdicts"))
      if (c.is_string() && str_or(v, "category") == c.get<std::string>()) {
        rates += fmt::format("{}{} {}", rates.empty() ? "" : ", ", c.get<std::string>(),
                             analyze::format_rate(f64_or0(v, "rate_per_s"), false));
        break;
      }
  if (best_s <= 0) return fmt::format("{} is already reached ({})", what, rates);
  return fmt::format("at this rate {} is reached in ~{} ({})", what, analyze::format_eta(best_s), rates);
}

}  // namespace

std::string oom_kill_line(uint64_t pid, const std::string& comm, const json& kill) {
  auto limit = u64_field(kill, "limit_bytes");
  std::string line =
      fmt::format("pid {} {}: killed by the OOM killer at {:.1f} s ({}{})", pid, comm, f64_or0(kill, "t_s"),
                  str_or(kill, "scope"), limit ? ", limit " + format_bytes(*limit) : std::string());
  if (kill.contains("scope_counted") && kill["scope_counted"] == false)
    line += "; no OOM-kill counter rose, so the scope is where a limit is set";
  std::string grew = str_or(kill, "grew_most");
  if (!grew.empty())
    line += fmt::format("; {} grew most, by {} while traced", grew,
                        format_bytes(u64_or0(kill, "grew_most_bytes")));
  return line;
}

LiveView::LiveView(FILE* out) : out_(out), tty_(isatty(fileno(out)) != 0) {}

void LiveView::update(const model::Trace& trace) {
  std::vector<std::string> lines;
  uint64_t lost = trace.events_lost().total();
  double now_s = 0;
  for (const auto& p : trace.processes.all())
    if (!p->timeline.empty()) now_s = std::max(now_s, p->timeline.back().t_s);
  auto untraced = trace.untraced(now_s);
  // A kill is said once, when it is seen, above the live lines.
  for (const auto& p : trace.processes.all()) {
    const auto& k = p->attribution.oom_kill;
    if (!k || !announced_oom_.insert(p->key()).second) continue;
    json j = {{"t_s", k->at_s},
              {"scope", k->scope},
              {"grew_most", k->grew_most},
              {"grew_most_bytes", k->grew_most_bytes}};
    if (k->limit_bytes) j["limit_bytes"] = *k->limit_bytes;
    clear();
    fmt::print(out_, "memlens: {}\n", oom_kill_line(static_cast<uint64_t>(p->pid()), p->comm, j));
  }
  for (const auto& p : trace.processes.all()) {
    if (!p->alive() || p->timeline.empty()) continue;
    const auto& cur = p->timeline.back();
    int64_t drss = 0;
    double ev_rate = 0;
    if (p->timeline.size() >= 2) {
      const auto& prev = p->timeline[p->timeline.size() - 2];
      drss = static_cast<int64_t>(cur.rss.total()) - static_cast<int64_t>(prev.rss.total());
      double dt = cur.t_s - prev.t_s;
      if (dt > 0) ev_rate = static_cast<double>(cur.events - prev.events) / dt;
    }
    std::string line = fmt::format(
        "memlens {:6.1f}s  pid {:<7} {:<15.15} rss {:>10} ({:>10})  {:>7.0f} ev/s  lost {}", cur.t_s,
        p->pid(), p->comm, format_bytes(cur.rss.total()), format_signed_bytes(drss), ev_rate, lost);
    if (cur.js_heap_used_bytes) line += fmt::format("  heap {}", format_bytes(*cur.js_heap_used_bytes));
    if (cur.array_buffers_bytes) line += fmt::format("  ab {}", format_bytes(*cur.array_buffers_bytes));
    if (p->v8.probed) {
      auto gc = model::summarize_gcs(p->v8);
      line += fmt::format("  gc {} ({:.0f} ms)", gc.count, gc.pause_total_ms);
    }
    if (cur.fds_open) line += fmt::format("  fds {}", *cur.fds_open);
    if (untraced.processes > 0)
      line += fmt::format("  untraced {} ({:.1f} s)", untraced.processes, untraced.seconds);
    lines.push_back(std::move(line));
  }
  if (tty_) {
    clear();
    for (const auto& l : lines) fmt::print(out_, "{}\n", l);
    lines_drawn_ = lines.size();
  } else {
    // Logs and pipes get the lines appended each interval (--interval sets how often; -q none).
    for (const auto& l : lines) fmt::print(out_, "{}\n", l);
  }
  fflush(out_);
}

void LiveView::clear() {
  if (!tty_) return;
  for (size_t i = 0; i < lines_drawn_; ++i) fmt::print(out_, "\033[1A\033[2K");
  lines_drawn_ = 0;
}

std::string render_summary(const json& report, const std::vector<std::string>& files_written) {
  std::string out;
  out += fmt::format("\nmemlens summary  ({:.1f} s traced, {})\n", f64_or0(report, "duration_s"),
                     str_or(report, "stop_reason", "stopped"));
  const json& processes = array_or_empty(report, "processes");
  // An OOM kill leads: it is what the user will be asked about first.
  for (const auto& p : processes) {
    const json& k = object_or_empty(p, "oom_kill");
    if (!k.empty()) out += "  ! " + oom_kill_line(u64_or0(p, "pid"), str_or(p, "comm"), k) + "\n";
  }
  // Then the soonest limit: when the process (or its container) will be killed if nothing changes.
  if (std::string line = soonest_limit_line(processes); !line.empty()) out += "  ! " + line + "\n";
  // Verdicts lead: they answer the question the user came with.
  for (const auto& p : processes) {
    for (const auto& v : array_or_empty(p, "verdicts")) {
      std::string kind = str_or(v, "kind");
      if (kind == "stable") continue;
      // A growth that is part of another leak (verdicts are ordered: it follows that leak) is indented
      // under it rather than announced as a leak of its own.
      bool companion = v.is_object() && v.contains("part_of") && !v["part_of"].is_null();
      // "?" marks a growth nothing has confirmed as live yet (growth_unconfirmed), "!" everything else.
      std::string_view mark = companion ? "      +" : kind == "growth_unconfirmed" ? "  ?" : "  !";
      out += fmt::format("{} pid {} {}: {}\n", mark, u64_or0(p, "pid"), str_or(p, "comm"),
                         str_or(v, "headline", str_or(v, "evidence")));
      if (kind == "growth_unconfirmed" && !str_or(v, "confirm_with").empty())
        out += fmt::format(
            "      to settle it now: trace again with {} (memlens asks V8 for full GCs; each pause "
            "is measured and reported)\n",
            str_or(v, "confirm_with"));
      // Which code: the heaviest stack of the category (every one is in report.json and the profiles).
      const json& stacks = array_or_empty(v, "top_stacks");
      bool growing = kind == "leak_suspected" || kind == "growth_unconfirmed";
      if (!companion && growing && !stacks.empty() && stacks[0].is_string()) {
        // One line on a terminal: the innermost frames say the most; report.json has the whole line.
        std::string stack = stacks[0].get<std::string>();
        if (stack.size() > 180) {
          size_t cut = 177;
          while (cut > 0 && (static_cast<unsigned char>(stack[cut]) & 0xC0) == 0x80)
            --cut;  // not inside a UTF-8 char
          stack = stack.substr(0, cut) + "...";
        }
        out += fmt::format("      heaviest {} stack: {}\n", str_or(v, "top_stacks_from"), stack);
      }
      if (!companion && growing && str_or(v, "category") == "js_heap")
        for (const auto& line : js_snapshot_growth_lines(object_or_empty(p, "js_objects"), 3))
          out += "      " + line + "\n";
    }
  }
  for (const auto& p : processes) {
    auto exit_status = u64_field(p, "exit_status");
    std::string status = exit_status ? fmt::format("exited {}", *exit_status) : "running";
    const json& rss = object_or_empty(p, "rss");
    out += fmt::format("  pid {:<7} {:<15} {:<10} rss {:>10} (peak {:>10})  anon {:>10}  file {:>10}\n",
                       u64_or0(p, "pid"), str_or(p, "comm"), status, format_bytes(u64_or0(p, "rss_bytes")),
                       format_bytes(u64_or0(p, "rss_peak_bytes")), format_bytes(u64_or0(rss, "anon_bytes")),
                       format_bytes(u64_or0(rss, "file_bytes")));
    const json& breakdown = object_or_empty(p, "breakdown");
    if (!breakdown.empty()) {
      std::string parts;
      for (const auto& [k, v] : breakdown.items())
        if (auto bytes = u64_field(breakdown, k.c_str()); bytes && *bytes > 0) {
          std::string name =
              k.size() > 6 && k.compare(k.size() - 6, 6, "_bytes") == 0 ? k.substr(0, k.size() - 6) : k;
          parts += fmt::format(" {} {}", name, format_bytes(*bytes));
        }
      const json& m = object_or_empty(breakdown, "method");
      if (u64_or0(m, "js_heap_mapped_bytes") > 0)
        parts += fmt::format("  (V8 heap committed {})", format_bytes(u64_or0(m, "js_heap_mapped_bytes")));
      if (m.contains("before_exit_s") && m["before_exit_s"].is_number())
        parts += fmt::format("  (of rss {}, {:.1f} s before exit)", format_bytes(u64_or0(m, "rss_bytes")),
                             f64_or0(m, "before_exit_s"));
      out += "           breakdown:" + parts + "\n";
    }
    const json& gc = object_or_empty(p, "gc");
    if (!gc.empty()) {
      auto after = u64_field(gc, "heap_used_after_gc_bytes");
      out += fmt::format("           GC: {} collections, {:.1f} ms in GC, {}\n", u64_or0(gc, "count"),
                         f64_or0(object_or_empty(gc, "pause_ms"), "total"),
                         after ? "heap used after last GC " + format_bytes(*after)
                               : std::string("no heap figure yet (no GC while traced)"));
    }
    const json& ab = object_or_empty(p, "array_buffers");
    if (!ab.empty())
      out += fmt::format("           ArrayBuffers: {} live (peak {})\n",
                         format_bytes(u64_or0(ab, "live_bytes")), format_bytes(u64_or0(ab, "peak_bytes")));
    const json& js = object_or_empty(p, "js_objects");
    if (!js.empty()) {
      if (auto why = js.find("unavailable_reason"); why != js.end() && why->is_string())
        out += fmt::format("           JS objects unavailable: {}\n", why->get<std::string>());
      else if (js.value("was_open", false))
        out += fmt::format(
            "           JS objects: inspector at {} ({}), {} profile reads\n",
            js.value("address", std::string()),
            js.value("opened_by_memlens", false) ? "opened and closed by memlens" : "already open: left open",
            u64_or0(js, "profiles"));
      if (uint64_t forced = u64_or0(js, "forced_gc_count"); forced > 0)
        out += fmt::format(
            "           pauses memlens caused: {} full GCs (V8 collects before each profile "
            "read), {:.0f} ms in all, longest {:.0f} ms\n",
            forced, f64_or0(js, "forced_gc_pause_total_ms"), f64_or0(js, "forced_gc_pause_max_ms"));
      if (std::string line = js_snapshots_line(js); !line.empty()) out += "           " + line + "\n";
      if (uint64_t others = u64_or0(js, "other_clients_total"); others > 0)
        out += fmt::format("           other inspector clients while memlens had it open: {}\n", others);
    }
    const json& fds = object_or_empty(p, "fds");
    if (!fds.empty())
      out += fmt::format("           fds: {} open (peak {}), {} opened, {} closed\n", u64_or0(fds, "open"),
                         u64_or0(fds, "peak"), u64_or0(fds, "opened_total"), u64_or0(fds, "closed_total"));
    const json& f = object_or_empty(p, "page_faults");
    out +=
        fmt::format("           page faults: {} minor, {} major", u64_or0(f, "minor"), u64_or0(f, "major"));
    if (u64_or0(f, "sample_period") > 0)
      out += fmt::format(" (sampled 1 in {}: ~{} in user mode, ~{} in kernel mode)",
                         u64_or0(f, "sample_period"), u64_or0(f, "traced_user"), u64_or0(f, "traced_kernel"));
    const json& ev = object_or_empty(p, "events");
    // munmap and madvise are seen only with --unmap-probes: no 0 that is not one.
    bool unmaps = !ev.contains("unmaps_probed") || ev["unmaps_probed"] != false;
    out += fmt::format("; mmap {}", u64_or0(ev, "mmap"));
    if (unmaps) out += fmt::format(" munmap {}", u64_or0(ev, "munmap"));
    out += fmt::format(" mremap {} brk {}", u64_or0(ev, "mremap"), u64_or0(ev, "brk"));
    if (unmaps) out += fmt::format(" madvise {}", u64_or0(ev, "madvise"));
    const json& gs = object_or_empty(p, "mmap_growth_sampling");
    if (uint64_t lo = u64_or0(gs, "mean_bytes_per_stack_min"), hi = u64_or0(gs, "mean_bytes_per_stack_max");
        hi)
      out += lo == hi
                 ? fmt::format(" (their stacks sampled, one per {} grown)",
                               format_bytes(static_cast<double>(hi)))
                 : fmt::format(" (their stacks sampled, one per {} to {} grown)",
                               format_bytes(static_cast<double>(lo)), format_bytes(static_cast<double>(hi)));
    out += "\n";
    const json& pl = object_or_empty(p, "loss");
    if (u64_or0(pl, "events_lost") > 0)
      out += fmt::format("           events lost: {}{}\n", u64_or0(pl, "events_lost"),
                         causes(object_or_empty(pl, "events_lost_by_cause")));
  }
  // Loss accounting (docs/report-schema.md): events lost by cause, and, apart, the processes that ran
  // untraced.
  const json& loss = object_or_empty(report, "loss");
  out += fmt::format("  events: {} received, {} lost{}", u64_or0(report, "events_received"),
                     u64_or0(loss, "events_lost"), causes(object_or_empty(loss, "events_lost_by_cause")));
  if (u64_or0(loss, "stacks_lost") > 0)
    out += fmt::format("; {} stacks not recorded", u64_or0(loss, "stacks_lost"));
  out += "\n";
  uint64_t untraced = u64_or0(loss, "untraced_processes");
  const json& holds = object_or_empty(report, "holds");
  if (untraced == 0) {
    if (u64_or0(holds, "processes") > 0)
      out += fmt::format(
          "  untraced processes: none ({} held until their probes were attached, longest {:.1f} ms)\n",
          u64_or0(holds, "processes"), 1000 * f64_or0(holds, "max_s"));
    else
      out += "  untraced processes: none\n";
  } else {
    out += fmt::format("  untraced processes: {}, {:.3f} s untraced in all\n", untraced,
                       f64_or0(loss, "untraced_s"));
    size_t shown = 0;
    for (const auto& p : processes) {
      const json& pl = object_or_empty(p, "loss");
      std::string reason = str_or(pl, "untraced_reason");
      if (reason.empty()) continue;
      if (++shown > 10) {
        out += fmt::format("    ... and {} more (report.json)\n", untraced - 10);
        break;
      }
      out += fmt::format("    pid {} {}: {:.3f} s: {}\n", u64_or0(p, "pid"), str_or(p, "comm"),
                         f64_or0(pl, "untraced_s"), reason);
    }
  }
  // Host-wide: Node processes seen starting that were never traced (ended before memlens could attach).
  const json& discovery = object_or_empty(report, "discovery");
  if (!discovery.empty()) {
    const json& missed = array_or_empty(discovery, "missed");
    out +=
        fmt::format("  Node processes started meanwhile: {} (found by {}), {} never traced{}\n",
                    u64_or0(discovery, "node_started"), str_or(discovery, "source"), missed.size(),
                    u64_or0(discovery, "overruns") > 0
                        ? fmt::format("; the kernel dropped announcements {} times: counts are lower bounds",
                                      u64_or0(discovery, "overruns"))
                        : "");
    if (u64_or0(discovery, "unclassified") > 0)
      out += fmt::format(
          "  {} programs ended before memlens could read which program they ran: any of them may have been "
          "Node\n",
          u64_or0(discovery, "unclassified"));
    size_t shown = 0;
    for (const auto& m : missed) {
      if (++shown > 10) {
        out += fmt::format("    ... and {} more (report.json)\n", missed.size() - 10);
        break;
      }
      out += fmt::format("    pid {} {}: {}\n", u64_or0(m, "pid"), str_or(m, "exe"), str_or(m, "reason"));
    }
  }
  const json& skipped = array_or_empty(object_or_empty(report, "probes"), "skipped");
  if (!skipped.empty()) {
    out += "  probes skipped:\n";
    for (const auto& s : skipped) out += fmt::format("    {}: {}\n", str_or(s, "name"), str_or(s, "reason"));
  }
  for (const auto& f : files_written) out += fmt::format("  wrote {}\n", f);
  return out;
}

}  // namespace memlens::report
