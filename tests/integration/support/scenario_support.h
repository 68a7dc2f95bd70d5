// Running the issue-4 scenario apps under memlens (run or attach) and comparing memlens's breakdown and
// verdicts with what each scenario printed about itself (process.memoryUsage() every second).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "support/harness.h"

namespace memlens::testing {

struct ScenarioSpec {
  std::string name;                       // tests/scenarios/<name>.js
  bool attach = false;                    // memlens attach to a running scenario, else memlens run
  double trace_s = 60;                    // seconds of tracing (run: the scenario's --duration)
  std::vector<std::string> args;          // more scenario options ("--base-mb", "400")
  std::string node;                       // node binary; empty: node_bin()
  double settle_s = 1;                    // attach: seconds between the ready line and attaching
  std::vector<std::string> memlens_args;  // more memlens options ("--js-objects")
  std::vector<std::string> node_args;     // node options before the script ("--inspect-port=0")
};

// One traced scenario, started by start_scenario and completed by finish_scenario.
struct ScenarioRun {
  ScenarioSpec spec;
  TempDir dir;
  Child memlens;
  Child node;  // attach mode only: the scenario, started by the test
  int pid = 0;
  // CLOCK_BOOTTIME when the test first saw the scenario's ready line (50 ms polling; later when the
  // machine is busy), and the line itself.
  uint64_t ready_seen_boot_ns = 0;
  nlohmann::json ready;
  std::optional<int> memlens_exit;
  nlohmann::json report;
  nlohmann::json proc;                // the scenario's entry in the report (null when missing)
  std::vector<nlohmann::json> lines;  // the scenario's stdout lines
  std::string memlens_stderr;
};

std::unique_ptr<ScenarioRun> start_scenario(const ScenarioSpec& spec);
// Waits for memlens to finish, stops the scenario (attach), loads the report and the scenario's lines.
void finish_scenario(ScenarioRun& run);

uint64_t boot_time_ns();

// What a figure the scenario prints once a second was at a moment between two of its lines: somewhere
// from one line's value to the next's. V8 changes some in steps (new space doubles its semispaces at
// once, heapTotal +16 MiB), so interpolating would invent a value it never had.
struct Bracket {
  double lo = 0, hi = 0;
  std::string describe_mib() const;  // "48.2" or "48.2..70.9"
};

// A figure of the scenario's own memory lines at scenario time t_s: group is "memoryUsage"
// (process.memoryUsage()) or "heap" (v8.getHeapStatistics()).
std::optional<Bracket> scenario_figure_at(const std::vector<nlohmann::json>& lines, const std::string& group,
                                          const std::string& key, double t_s);

// The scenario's memory lines within 3 s of t_s (heapTotal, total_physical_size, rss), for failure messages.
std::string scenario_lines_near(const std::vector<nlohmann::json>& lines, double t_s);

// memlens's last breakdown next to the scenario's figures at the same moment.
struct BreakdownCheck {
  double scenario_t_s = 0;       // the breakdown's moment on the scenario's clock
  double ready_seen_late_s = 0;  // how late the test saw the ready line (for failure messages)
  double js_heap = 0;
  Bracket heap_total;
  // V8 12 and later (Node 22+) keep pages they gave up committed and resident in a pool for a while:
  // heapTotal and total_physical_size no longer count them, the kernel does. They were heapTotal's once,
  // so they are at most what heapTotal has shrunk by since its peak. 0 for older V8, which has no pool.
  double pooled_at_most = 0;
  Bracket heap_physical;      // v8.getHeapStatistics().total_physical_size: V8's heap pages in memory
  double js_heap_mapped = 0;  // breakdown.method.js_heap_mapped_bytes: V8's committed pages, resident or not
  double array_buffers = 0;
  Bracket array_buffers_truth;
  double categories_total = 0;
  Bracket rss_truth;
  double unexplained = 0;
  double rss_bytes = 0;          // breakdown.method.rss_bytes: the RSS the breakdown adds up to
  double process_rss_bytes = 0;  // the process's rss_bytes (its last RSS)
  bool measured_at_end = false;  // the breakdown is of the end of the trace (else: of a moment before exit)
  std::string describe() const;
};
std::optional<BreakdownCheck> breakdown_check(const ScenarioRun& run);

// Verdicts of the scenario process: (kind, category) pairs.
std::vector<std::pair<std::string, std::string>> verdicts_of(const ScenarioRun& run);
bool has_verdict(const ScenarioRun& run, const std::string& kind, const std::string& category);
// For a leak_suspected verdict of `category`: its part_of ("" when it is a leak of its own); nullopt when
// there is no such verdict.
std::optional<std::string> own_leak_part_of(const ScenarioRun& run, const std::string& category);
std::string verdicts_text(const ScenarioRun& run);  // headlines, for failure messages

}  // namespace memlens::testing
