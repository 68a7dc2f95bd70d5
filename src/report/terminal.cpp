#include "report/terminal.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cmath>

namespace memlens::report {

using nlohmann::json;

std::string format_bytes(uint64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  if (u == 0) return fmt::format("{} B", bytes);
  return fmt::format("{:.1f} {}", v, units[u]);
}

std::string format_signed_bytes(int64_t bytes) {
  std::string s = format_bytes(static_cast<uint64_t>(std::llabs(bytes)));
  return (bytes < 0 ? "-" : "+") + s;
}

LiveView::LiveView(FILE* out) : out_(out), tty_(isatty(fileno(out)) != 0) {}

void LiveView::update(const model::Trace& trace) {
  std::vector<std::string> lines;
  uint64_t lost = trace.total_loss();
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
      auto gc = model::summarize_gcs(p->v8.gcs);
      line += fmt::format("  gc {} ({:.0f} ms)", gc.count, gc.pause_total_ms);
    }
    if (cur.fds_open) line += fmt::format("  fds {}", *cur.fds_open);
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
  out += fmt::format("\nmemlens summary  ({:.1f} s traced, {})\n", report.value("duration_s", 0.0),
                     report.value("stop_reason", std::string("stopped")));
  // Verdicts lead: they answer the question the user came with.
  for (const auto& p : report["processes"]) {
    if (!p.contains("verdicts")) continue;
    for (const auto& v : p["verdicts"]) {
      if (v.value("kind", "") == "stable") continue;
      // A growth that is part of another leak (verdicts are ordered: it follows that leak) is indented
      // under it rather than announced as a leak of its own.
      bool companion = v.contains("part_of");
      out += fmt::format("{} pid {} {}: {}\n", companion ? "      +" : "  !", p.value("pid", 0),
                         p.value("comm", ""), v.value("headline", v.value("evidence", "")));
      // Which code: the heaviest stack of the category (every one is in report.json and the profiles).
      if (!companion && v.value("kind", "") == "leak_suspected" && v.contains("top_stacks") &&
          !v["top_stacks"].empty() && v["top_stacks"][0].is_string()) {
        // One line on a terminal: the innermost frames say the most; report.json has the whole line.
        std::string stack = v["top_stacks"][0].get<std::string>();
        if (stack.size() > 180) {
          size_t cut = 177;
          while (cut > 0 && (static_cast<unsigned char>(stack[cut]) & 0xC0) == 0x80)
            --cut;  // not inside a UTF-8 char
          stack = stack.substr(0, cut) + "...";
        }
        out +=
            fmt::format("      heaviest {} stack: {}\n", v.value("top_stacks_from", std::string("")), stack);
      }
    }
  }
  for (const auto& p : report["processes"]) {
    std::string status =
        p.contains("exit_status") ? fmt::format("exited {}", p["exit_status"].get<int>()) : "running";
    out += fmt::format(
        "  pid {:<7} {:<15} {:<10} rss {:>10} (peak {:>10})  anon {:>10}  file {:>10}\n", p.value("pid", 0),
        p.value("comm", ""), status, format_bytes(p.value("rss_bytes", 0ull)),
        format_bytes(p.value("rss_peak_bytes", 0ull)), format_bytes(p["rss"].value("anon_bytes", 0ull)),
        format_bytes(p["rss"].value("file_bytes", 0ull)));
    if (p.contains("breakdown")) {
      std::string parts;
      for (const auto& [k, v] : p["breakdown"].items())
        if (v.is_number() && v.get<int64_t>() > 0) {
          std::string name =
              k.size() > 6 && k.compare(k.size() - 6, 6, "_bytes") == 0 ? k.substr(0, k.size() - 6) : k;
          parts += fmt::format(" {} {}", name, format_bytes(v.get<uint64_t>()));
        }
      const auto& m = p["breakdown"].value("method", json::object());
      if (m.value("js_heap_mapped_bytes", 0ull) > 0)
        parts += fmt::format("  (V8 heap committed {})", format_bytes(m.value("js_heap_mapped_bytes", 0ull)));
      if (m.contains("before_exit_s"))
        parts += fmt::format("  (of rss {}, {:.1f} s before exit)", format_bytes(m.value("rss_bytes", 0ull)),
                             m["before_exit_s"].get<double>());
      out += "           breakdown:" + parts + "\n";
    }
    if (p.contains("gc")) {
      const auto& gc = p["gc"];
      out += fmt::format("           GC: {} collections, {:.1f} ms in GC, heap used after last GC {}\n",
                         gc.value("count", 0), gc["pause_ms"].value("total", 0.0),
                         format_bytes(gc.value("heap_used_after_gc_bytes", 0ull)));
    }
    if (p.contains("array_buffers"))
      out += fmt::format("           ArrayBuffers: {} live (peak {})\n",
                         format_bytes(p["array_buffers"].value("live_bytes", 0ull)),
                         format_bytes(p["array_buffers"].value("peak_bytes", 0ull)));
    if (p.contains("fds"))
      out += fmt::format("           fds: {} open (peak {}), {} opened, {} closed\n",
                         p["fds"].value("open", 0), p["fds"].value("peak", 0),
                         p["fds"].value("opened_total", 0), p["fds"].value("closed_total", 0));
    const auto& f = p["page_faults"];
    uint64_t traced = f.value("traced_user", 0ull) + f.value("traced_kernel", 0ull);
    out += fmt::format("           page faults: {} traced", traced);
    if (f.contains("minor"))
      out += fmt::format(" (kernel: {} minor, {} major)", f["minor"].get<uint64_t>(),
                         f["major"].get<uint64_t>());
    const auto& ev = p["events"];
    out +=
        fmt::format("; mmap {} munmap {} mremap {} brk {} madvise {}\n", ev.value("mmap", 0),
                    ev.value("munmap", 0), ev.value("mremap", 0), ev.value("brk", 0), ev.value("madvise", 0));
  }
  uint64_t lost = 0;
  std::string loss_detail;
  for (const auto& [stage, n] : report["loss"].items()) {
    lost += n.get<uint64_t>();
    if (n.get<uint64_t>() > 0) loss_detail += fmt::format(" {}={}", stage, n.get<uint64_t>());
  }
  out += fmt::format("  events: {} received, {} lost{}\n", report.value("events_received", 0ull), lost,
                     loss_detail.empty() ? "" : " (" + loss_detail.substr(1) + ")");
  if (report.contains("probes") && !report["probes"]["skipped"].empty()) {
    out += "  probes skipped:\n";
    for (const auto& s : report["probes"]["skipped"])
      out += fmt::format("    {}: {}\n", s.value("name", ""), s.value("reason", ""));
  }
  for (const auto& f : files_written) out += fmt::format("  wrote {}\n", f);
  return out;
}

}  // namespace memlens::report
