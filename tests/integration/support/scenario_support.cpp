#include "support/scenario_support.h"

#include <fmt/format.h>
#include <signal.h>
#include <time.h>

#include <thread>

namespace memlens::testing {

using namespace std::chrono_literals;
using nlohmann::json;

uint64_t boot_time_ns() {
  timespec ts{};
  clock_gettime(CLOCK_BOOTTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

namespace {

std::optional<json> wait_ready(Child& c, std::chrono::milliseconds timeout, uint64_t& seen_ns) {
  auto e = c.wait_for_event("ready", timeout);
  seen_ns = boot_time_ns();
  return e;
}

}  // namespace

std::unique_ptr<ScenarioRun> start_scenario(const ScenarioSpec& spec) {
  auto r = std::make_unique<ScenarioRun>();
  r->spec = spec;
  std::string out = r->dir.file("out");
  std::string node = spec.node.empty() ? node_bin() : spec.node;
  // The scenario's command line with its duration: the trace under run, longer than it under attach.
  auto command = [&](double duration_s) {
    std::vector<std::string> cmd = {node};
    cmd.insert(cmd.end(), spec.node_args.begin(), spec.node_args.end());
    for (std::string a : {scenario(spec.name), std::string("--duration"), fmt::format("{}", duration_s)})
      cmd.push_back(std::move(a));
    cmd.insert(cmd.end(), spec.args.begin(), spec.args.end());
    return cmd;
  };
  if (!spec.attach) {
    std::vector<std::string> cmd = {memlens_bin(), "run", "-q", "-o", out};
    cmd.insert(cmd.end(), spec.memlens_args.begin(), spec.memlens_args.end());
    cmd.push_back("--");
    for (auto& a : command(spec.trace_s)) cmd.push_back(std::move(a));
    r->memlens = Child::spawn(cmd, r->dir.path(), "memlens");
    if (auto e = wait_ready(r->memlens, 30s, r->ready_seen_boot_ns)) {
      r->pid = e->value("pid", 0);
      r->ready = *e;
    }
    return r;
  }
  // The scenario outlives the trace; memlens attaches once it is up and stops after trace_s.
  r->node = Child::spawn(command(spec.trace_s + spec.settle_s + 30), r->dir.path(), "node");
  auto e = wait_ready(r->node, 30s, r->ready_seen_boot_ns);
  if (!e) return r;
  r->pid = e->value("pid", 0);
  r->ready = *e;
  std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<int64_t>(spec.settle_s * 1000)));
  std::vector<std::string> cmd = {
      memlens_bin(), "attach", std::to_string(r->pid), "--duration", fmt::format("{}", spec.trace_s), "-q",
      "-o",          out};
  cmd.insert(cmd.end(), spec.memlens_args.begin(), spec.memlens_args.end());
  r->memlens = Child::spawn(cmd, r->dir.path(), "memlens");
  return r;
}

void finish_scenario(ScenarioRun& r) {
  if (r.memlens.pid() > 0) {
    r.memlens_exit =
        r.memlens.wait(std::chrono::milliseconds(static_cast<int64_t>((r.spec.trace_s + 90) * 1000)));
    r.memlens_stderr = r.memlens.stderr_text();
  }
  if (r.spec.attach) {
    if (r.node.pid() > 0) {
      // memlens's last breakdown is of its last moment; the scenario's figures at that moment lie between
      // its line before and its next line, so it runs until it has printed one more.
      auto memory_lines = [&] {
        size_t n = 0;
        for (const auto& l : json_lines(r.node.stdout_text())) n += l.value("event", "") == "memory";
        return n;
      };
      size_t at_end = memory_lines();
      auto deadline = std::chrono::steady_clock::now() + 5s;
      while (memory_lines() == at_end && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(50ms);
      r.node.signal(SIGTERM);
      r.node.wait(10s);
    }
    r.lines = json_lines(r.node.stdout_text());
  } else {
    r.lines = json_lines(r.memlens.stdout_text());
  }
  r.report = load_report(r.dir.file("out"));
  if (auto p = report_process(r.report, r.pid)) r.proc = *p;
}

std::string Bracket::describe_mib() const {
  constexpr double kMiB = 1024.0 * 1024.0;
  if (lo == hi) return fmt::format("{:.1f}", lo / kMiB);
  return fmt::format("{:.1f}..{:.1f}", lo / kMiB, hi / kMiB);
}

std::optional<Bracket> scenario_figure_at(const std::vector<json>& lines, const std::string& group,
                                          const std::string& key, double t_s) {
  const json* prev = nullptr;
  for (const auto& l : lines) {
    if (l.value("event", "") != "memory" && l.value("event", "") != "final") continue;
    if (!l.contains(group) || !l[group].contains(key)) continue;
    double t = l.value("t_s", 0.0);
    if (t >= t_s) {
      double v = l[group][key].get<double>();
      if (!prev || t == t_s) return Bracket{v, v};
      double v0 = (*prev)[group][key].get<double>();
      return Bracket{std::min(v0, v), std::max(v0, v)};
    }
    prev = &l;
  }
  // After the last line: only if it is close (the scenario may have exited just before the reading).
  if (prev && t_s - (*prev)["t_s"].get<double>() < 1.5) {
    double v = (*prev)[group][key].get<double>();
    return Bracket{v, v};
  }
  return std::nullopt;
}

std::string scenario_lines_near(const std::vector<json>& lines, double t_s) {
  constexpr double kMiB = 1024.0 * 1024.0;
  std::string s = "\nscenario lines (t_s heapTotal total_physical_size rss, MiB):";
  for (const auto& l : lines) {
    if (!l.contains("memoryUsage") || !l.contains("heap") || !l.contains("t_s")) continue;
    double t = l["t_s"].get<double>();
    if (std::abs(t - t_s) > 3) continue;
    s += fmt::format("\n  {:.2f} {:.1f} {:.1f} {:.1f}", t, l["memoryUsage"].value("heapTotal", 0.0) / kMiB,
                     l["heap"].value("total_physical_size", 0.0) / kMiB,
                     l["memoryUsage"].value("rss", 0.0) / kMiB);
  }
  return s;
}

std::optional<BreakdownCheck> breakdown_check(const ScenarioRun& r) {
  if (r.proc.is_null() || !r.proc.contains("breakdown")) return std::nullopt;
  const auto& b = r.proc["breakdown"];
  const auto& m = b["method"];
  // The breakdown's moment as the scenario's clock reads it. The scenario's clock starts when its script
  // is loaded, after node's bootstrap (seconds under tracing). Its ready line says when that was on the
  // boot clock (boot_s, to 10 ms, at its own t_s); the moment the test saw the line is only a fallback:
  // on a busy machine the test's polling can see it most of a second late.
  double start_s = r.proc["start_time_ns"].get<double>() / 1e9;
  double bootstrap_s = static_cast<double>(r.ready_seen_boot_ns) / 1e9 - start_s - 0.025;
  BreakdownCheck c;
  if (r.ready.contains("boot_s") && r.ready.contains("t_s")) {
    double printed_s = r.ready["boot_s"].get<double>();
    bootstrap_s = printed_s - r.ready["t_s"].get<double>() - start_s;
    c.ready_seen_late_s = static_cast<double>(r.ready_seen_boot_ns) / 1e9 - printed_s;
  }
  c.scenario_t_s = m["process_age_s"].get<double>() - bootstrap_s;
  auto heap_total = scenario_figure_at(r.lines, "memoryUsage", "heapTotal", c.scenario_t_s);
  auto physical = scenario_figure_at(r.lines, "heap", "total_physical_size", c.scenario_t_s);
  auto ab = scenario_figure_at(r.lines, "memoryUsage", "arrayBuffers", c.scenario_t_s);
  auto rss = scenario_figure_at(r.lines, "memoryUsage", "rss", c.scenario_t_s);
  if (!heap_total || !physical || !ab || !rss) return std::nullopt;
  c.heap_physical = *physical;
  c.heap_total = *heap_total;
  double peak = heap_total->hi;
  int major = 0;
  for (const auto& l : r.lines) {
    if (l.value("event", "") == "ready" && l.contains("node"))
      major = std::atoi(l["node"].get<std::string>().c_str() + 1);  // "v22.23.5"
    if (l.contains("memoryUsage") && l.contains("t_s") && l["t_s"].get<double>() <= c.scenario_t_s)
      peak = std::max(peak, l["memoryUsage"].value("heapTotal", 0.0));
  }
  if (major >= 22) c.pooled_at_most = peak - heap_total->lo;
  c.array_buffers_truth = *ab;
  c.rss_truth = *rss;
  c.js_heap = b["js_heap_bytes"].get<double>();
  c.js_heap_mapped = m.value("js_heap_mapped_bytes", 0.0);
  c.array_buffers = b["array_buffers_bytes"].get<double>();
  for (const char* k : {"js_heap_bytes", "array_buffers_bytes", "native_heap_bytes", "code_bytes",
                        "stacks_bytes", "file_mapped_bytes", "other_anon_bytes"})
    c.categories_total += b[k].get<double>();
  c.unexplained = b["unexplained_bytes"].get<double>();
  // The RSS the breakdown is set against: the process's last one if it was measured at the end, else (it
  // exited) the one at its last measurement while it ran.
  c.rss_bytes = m["rss_bytes"].get<double>();
  c.process_rss_bytes = r.proc["rss_bytes"].get<double>();
  c.measured_at_end = !m.contains("before_exit_s");
  return c;
}

std::string BreakdownCheck::describe() const {
  auto mb = [](double v) { return v / (1024.0 * 1024.0); };
  return fmt::format(
      "at scenario t={:.1f}s: js_heap {:.1f} MiB (mapped {:.1f}) vs heapTotal {} (in memory {}); "
      "array_buffers "
      "{:.1f} vs arrayBuffers {}; "
      "categories {:.1f} vs rss {}; unexplained {:.1f} of rss_bytes {:.1f} (ready line seen {:.2f} s late)",
      scenario_t_s, mb(js_heap), mb(js_heap_mapped), heap_total.describe_mib(), heap_physical.describe_mib(),
      mb(array_buffers), array_buffers_truth.describe_mib(), mb(categories_total), rss_truth.describe_mib(),
      mb(unexplained), mb(rss_bytes), ready_seen_late_s);
}

std::vector<std::pair<std::string, std::string>> verdicts_of(const ScenarioRun& r) {
  std::vector<std::pair<std::string, std::string>> out;
  if (r.proc.is_null() || !r.proc.contains("verdicts")) return out;
  for (const auto& v : r.proc["verdicts"]) out.emplace_back(v.value("kind", ""), v.value("category", ""));
  return out;
}

bool has_verdict(const ScenarioRun& r, const std::string& kind, const std::string& category) {
  for (const auto& [k, c] : verdicts_of(r))
    if (k == kind && c == category) return true;
  return false;
}

std::optional<std::string> own_leak_part_of(const ScenarioRun& r, const std::string& category) {
  if (r.proc.is_null() || !r.proc.contains("verdicts")) return std::nullopt;
  for (const auto& v : r.proc["verdicts"])
    if (v.value("kind", "") == "leak_suspected" && v.value("category", "") == category)
      return v.value("part_of", "");
  return std::nullopt;
}

std::string verdicts_text(const ScenarioRun& r) {
  std::string s;
  if (r.proc.is_null() || !r.proc.contains("verdicts")) return "(no verdicts)";
  for (const auto& v : r.proc["verdicts"])
    s += fmt::format("\n  {} {}{}: {}", v.value("kind", ""), v.value("category", ""),
                     v.contains("part_of") ? " (part of " + v.value("part_of", "") + ")" : "",
                     v.value("evidence", ""));
  return s;
}

}  // namespace memlens::testing
