// V8 figures against V8's own: for each Node major (18, 20, 22, 24 from scripts/fetch-node.sh's cache) and
// Debian's libnode.so layout, the scenario v8_gc_buffers runs with --trace-gc under `memlens run`; every GC
// memlens reports must be one V8 printed (same count, same kind, heap used after it within max(2%, 0.1 MB)
// of the printed figure), and live ArrayBuffer bytes at the scenario's quiet point must be within 5% of
// process.memoryUsage().arrayBuffers, both by default (the allocator's counter read from the process) and
// with --v8-alloc-probes (every allocation and free counted: allocated - freed must agree too). Attaching
// to a running node must find the same V8 probes as run, and its live ArrayBuffer bytes.
// The USDT path is checked with tests/programs/usdt_provider, which is not node but carries node's notes.
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "support/harness.h"

namespace memlens::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

constexpr double kMiB = 1048576.0;

struct TracedRun {
  TempDir dir;
  std::optional<int> exit_code;
  json report;
  std::string stdout_text, stderr_text;
  std::vector<json> lines;
};

std::unique_ptr<TracedRun> run_traced(const std::vector<std::string>& command,
                                      const std::vector<std::string>& options = {}) {
  auto r = std::make_unique<TracedRun>();
  std::vector<std::string> argv = {memlens_bin(), "run", "-q", "--no-stacks",
                                   "--interval",  "0.5", "-o", r->dir.file("out")};
  argv.insert(argv.end(), options.begin(), options.end());
  argv.push_back("--");
  argv.insert(argv.end(), command.begin(), command.end());
  Child c = Child::spawn(argv, r->dir.path(), "memlens");
  r->exit_code = c.wait(120s);
  r->stdout_text = c.stdout_text();
  r->stderr_text = c.stderr_text();
  r->report = load_report(r->dir.file("out"));
  r->lines = json_lines(r->stdout_text);
  return r;
}

// One line of --trace-gc: "[pid:0x..]   123 ms: Scavenge 2.0 (2.3) -> 1.2 (3.3) MB, 0.8 / 0.0 ms ...".
struct TraceGcLine {
  std::string kind;  // memlens's name for V8's collector name
  double ms = 0;     // since the isolate started
  double before_mb = 0, after_mb = 0;
  std::string text;
};

std::vector<TraceGcLine> parse_trace_gc(const std::string& text) {
  static const std::regex rx(
      R"((\d+) ms: ([A-Za-z -]+?)(?: \([a-z]+\))? ([\d.]+) \(([\d.]+)\) -> ([\d.]+) \(([\d.]+)\) MB)");
  std::vector<TraceGcLine> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    std::smatch m;
    if (!std::regex_search(line, m, rx)) continue;
    TraceGcLine g;
    g.ms = std::stod(m[1]);
    std::string name = m[2];
    if (name == "Scavenge")
      g.kind = "scavenge";
    else if (name == "Mark-Compact" || name == "Mark-sweep" || name == "Mark-Compact (reduce)")
      g.kind = "mark_compact";
    else if (name.starts_with("Minor Mark"))
      g.kind = "minor_mark_compact";
    else
      g.kind = "other:" + name;
    g.before_mb = std::stod(m[3]);
    g.after_mb = std::stod(m[5]);
    g.text = line;
    out.push_back(g);
  }
  return out;
}

std::set<std::string> v8_probes(const json& report) {
  std::set<std::string> out;
  for (const auto& p : report["probes"]["attached"])
    if (p.get<std::string>().starts_with("v8:")) out.insert(p.get<std::string>());
  return out;
}

void check_scenario_run(const std::string& node, const std::string& target, bool alloc_probes) {
  auto r =
      run_traced({node, "--trace-gc", scenario("v8_gc_buffers")},
                 alloc_probes ? std::vector<std::string>{"--v8-alloc-probes"} : std::vector<std::string>{});
  ASSERT_EQ(r->exit_code, 0) << r->stderr_text;
  auto quiet = last_event(r->lines, "quiet");
  ASSERT_TRUE(quiet) << "the scenario printed no quiet line\n" << r->stdout_text.substr(0, 2000);
  int pid = pid_of(r->lines, *quiet);
  auto proc = report_process(r->report, pid);
  ASSERT_TRUE(proc) << "no process " << pid << " in the report";
  SCOPED_TRACE("Node " + target + " " + quiet->value("node", std::string("?")) +
               (alloc_probes ? " --v8-alloc-probes" : ""));

  std::vector<std::string> wanted = {"v8:gc_start", "v8:gc_end", "v8:array_buffer_window"};
  std::vector<std::string> per_allocation = {"v8:array_buffer_alloc", "v8:array_buffer_alloc_uninit",
                                             "v8:array_buffer_free"};
  if (alloc_probes) wanted.insert(wanted.end(), per_allocation.begin(), per_allocation.end());
  for (const auto& want : wanted)
    EXPECT_TRUE(v8_probes(r->report).count(want))
        << want << " not attached; skipped: " << r->report["probes"]["skipped"].dump();
  // Every official build has the heap figures read as each GC ends (node/probe_plan: HeapFiguresInTracer):
  // no probe of their own, two traps a GC. The figures are checked against --trace-gc below.
  for (const char* own : {"v8:heap_used_before", "v8:heap_used_after"})
    EXPECT_FALSE(v8_probes(r->report).count(own)) << own << " attached: the GC end reads the figures";
  // The default path puts no probe on every allocation.
  if (!alloc_probes) {
    for (const auto& unwanted : per_allocation) {
      EXPECT_FALSE(v8_probes(r->report).count(unwanted)) << unwanted;
    }
  }

  // GCs: one memlens event per --trace-gc line, in the same order.
  auto trace_gc = parse_trace_gc(r->stdout_text);
  ASSERT_TRUE(proc->contains("gc")) << "no gc section; notes: " << proc->value("notes", json::array()).dump();
  const json& gc = (*proc)["gc"];
  ASSERT_GT(trace_gc.size(), 5u) << "the scenario should cause GCs";
  // Every GC, from the first: the probes are in place before node's start-up (for Debian's libnode
  // layout too, whose libnode.so is attached by file before the dynamic loader maps it).
  size_t count = gc["count"].get<size_t>(), skip = 0;
  EXPECT_EQ(count + skip, trace_gc.size());
  ASSERT_EQ(gc["events"].size() + skip, trace_gc.size());
  size_t heap_mismatches = 0;
  for (size_t i = 0; i < gc["events"].size(); ++i) {
    const json& e = gc["events"][i];
    const auto& t = trace_gc[i + skip];
    EXPECT_EQ(e["kind"].get<std::string>(), t.kind) << "GC " << i << ": " << t.text;
    ASSERT_TRUE(e["heap_used_after_bytes"].is_number()) << "GC " << i << " has no heap figure";
    double after = e["heap_used_after_bytes"].get<double>(), expected = t.after_mb * kMiB;
    double tolerance = std::max(0.02 * expected, 0.1 * kMiB);
    if (std::fabs(after - expected) > tolerance) {
      ++heap_mismatches;
      ADD_FAILURE() << "GC " << i << ": heap used after " << after / kMiB << " MB vs --trace-gc "
                    << t.after_mb << " MB: " << t.text;
    }
    // The figure before the GC too (read where V8 stored it, docs/v8-probes.md): what --trace-gc prints
    // left of the arrow.
    ASSERT_TRUE(e["heap_used_before_bytes"].is_number()) << "GC " << i << " has no heap figure before";
    double before = e["heap_used_before_bytes"].get<double>(), expected_before = t.before_mb * kMiB;
    if (std::fabs(before - expected_before) > std::max(0.02 * expected_before, 0.1 * kMiB)) {
      ++heap_mismatches;
      ADD_FAILURE() << "GC " << i << ": heap used before " << before / kMiB << " MB vs --trace-gc "
                    << t.before_mb << " MB: " << t.text;
    }
    EXPECT_GE(e["pause_ms"].get<double>(), 0.0);
  }
  EXPECT_EQ(heap_mismatches, 0u);
  EXPECT_EQ(gc["heap_used_after_gc_bytes"], gc["events"].back()["heap_used_after_bytes"]);
  // Counted kinds agree with the events.
  uint64_t by_kind_sum = 0;
  for (const auto& [k, n] : gc["by_kind"].items()) by_kind_sum += n.get<uint64_t>();
  EXPECT_EQ(by_kind_sum, count);

  // ArrayBuffers: the scenario reads memoryUsage() at its quiet point and again right before it exits
  // (process.exit frees no backing store); memlens's figures at exit must agree with both.
  ASSERT_TRUE(proc->contains("array_buffers"));
  auto final_event = last_event(r->lines, "final");
  ASSERT_TRUE(final_event);
  double live = (*proc)["array_buffers"]["live_bytes"].get<double>();
  double at_quiet = (*quiet)["memoryUsage"]["arrayBuffers"].get<double>();
  double at_exit = (*final_event)["memoryUsage"]["arrayBuffers"].get<double>();
  ASSERT_GT(at_quiet, 10 * kMiB);
  EXPECT_TRUE(within("array_buffers.live_bytes vs memoryUsage().arrayBuffers at exit", live, at_exit, 0.05));
  EXPECT_TRUE(within("array_buffers.live_bytes vs memoryUsage().arrayBuffers at the quiet point", live,
                     at_quiet, 0.05));
  // Every sample after the first GC carries the heap figure.
  const json& tl = (*proc)["timeline"];
  ASSERT_GE(tl.size(), 3u);
  EXPECT_TRUE(tl.back().contains("js_heap_used_bytes"));
  EXPECT_TRUE(tl.back().contains("array_buffers_bytes"));
  const json& ab = (*proc)["array_buffers"];
  EXPECT_GE(ab["peak_bytes"].get<uint64_t>(), ab["live_bytes"].get<uint64_t>());
  EXPECT_EQ(ab["source"], "allocator_counter");
  EXPECT_GE(ab["allocators"].get<int>(), 1);
  EXPECT_EQ(ab["counting"], alloc_probes);
  if (alloc_probes) {
    // Counted independently of the counter read: the totals must tell the same live figure.
    double counted = ab["allocated_bytes_total"].get<double>() - ab["freed_bytes_total"].get<double>();
    EXPECT_TRUE(within("allocated - freed vs memoryUsage().arrayBuffers at exit", counted, at_exit, 0.05));
    EXPECT_GE(ab["allocations"].get<uint64_t>(), ab["frees"].get<uint64_t>());
    EXPECT_EQ(ab["counted_since_attach"], false);
    EXPECT_EQ(ab["totals_exact"], true);
  } else {
    // Not counted: the totals are lower bounds from the live figure's rises and falls between samples, and
    // say so. Traced from the start, they still tell the live figure at exit.
    EXPECT_EQ(ab["totals_exact"], false);
    EXPECT_TRUE(ab.contains("totals_note"));
    double allocated = ab["allocated_bytes_total"].get<double>(),
           freed = ab["freed_bytes_total"].get<double>();
    EXPECT_GE(allocated, at_quiet);
    EXPECT_TRUE(within("allocated - freed (lower bounds) vs memoryUsage().arrayBuffers at exit",
                       allocated - freed, at_exit, 0.05));
  }
  EXPECT_EQ(r->report["loss"]["events_lost_by_cause"]["unpaired"], 0);
  EXPECT_EQ(r->report["loss"]["events_lost_by_cause"]["ring_full"], 0);
  if (alloc_probes) return;  // attach is checked once per build

  // Attach to a running node of the same build: the same V8 probes.
  TempDir adir;
  // It keeps 8 MB of Buffers allocated before attach and allocates a small one every 50 ms: the first
  // window learns the allocator's address from such an allocation.
  Child app = Child::spawn(
      {node, scenario("v8_attach_buffers"), "--duration", "60", "--mb", "8", "--report-interval", "0.5"},
      adir.path(), "app");
  auto ready = app.wait_for_event("ready", 30s);
  ASSERT_TRUE(ready) << app.stderr_text();
  int app_pid = (*ready)["pid"].get<int>();
  Child attach = Child::spawn({memlens_bin(), "attach", std::to_string(app_pid), "-q", "--no-stacks",
                               "--duration", "3", "--interval", "0.5", "-o", adir.file("out")},
                              adir.path(), "memlens");
  ASSERT_EQ(attach.wait(60s), 0) << attach.stderr_text();
  json areport = load_report(adir.file("out"));
  EXPECT_EQ(v8_probes(areport), v8_probes(r->report)) << "attach: " << areport["probes"].dump();
  auto aproc = report_process(areport, app_pid);
  ASSERT_TRUE(aproc);
  ASSERT_TRUE(aproc->contains("array_buffers")) << aproc->value("notes", json::array()).dump();
  // The allocator's counter covers what was allocated before attach too. memlens's last sample and the
  // app's lines are taken at different instants: the figure must lie within what the app printed.
  double lo = 0, hi = 0;
  for (const auto& line : json_lines(app.stdout_text())) {
    if (line.value("event", "") != "memory") continue;
    double v = line["memoryUsage"]["arrayBuffers"].get<double>();
    lo = lo == 0 ? v : std::min(lo, v);
    hi = std::max(hi, v);
  }
  ASSERT_GT(lo, 8 * kMiB) << "no memory line from the app";
  double attached_live = (*aproc)["array_buffers"]["live_bytes"].get<double>();
  EXPECT_GE(attached_live, 0.95 * lo) << "memoryUsage().arrayBuffers ranged " << lo << " to " << hi;
  EXPECT_LE(attached_live, 1.05 * hi) << "memoryUsage().arrayBuffers ranged " << lo << " to " << hi;
  EXPECT_FALSE((*aproc)["array_buffers"].contains("counted_since_attach"));
  app.signal(SIGTERM);
  app.wait(10s);
}

class V8Matrix : public ::testing::TestWithParam<std::string> {};

TEST_P(V8Matrix, GcHeapAndArrayBuffersMatchV8) {
  MEMLENS_REQUIRE_TRACING();
  REQUIRE_NODE(node, GetParam());
  check_scenario_run(node, GetParam(), false);
}

TEST_P(V8Matrix, AllocationProbesCountEveryBackingStore) {
  MEMLENS_REQUIRE_TRACING();
  REQUIRE_NODE(node, GetParam());
  check_scenario_run(node, GetParam(), true);
}

INSTANTIATE_TEST_SUITE_P(Node, V8Matrix, ::testing::Values("18", "20", "22", "24", "libnode"),
                         [](const auto& info) { return "node_" + info.param; });

// A stripped node: Node 24 keeps V8's internal symbols out of .dynsym, so without .symtab the GC and heap
// probes cannot be placed. doctor says so per probe, the report lists them as skipped with the reason, and
// the rest still works: RSS from the kernel, ArrayBuffer memory from Node's own allocator (its symbols are
// exported).
TEST(V8, StrippedBinarySkipsWhatItCannotProbeAndTracesTheRest) {
  MEMLENS_REQUIRE_TRACING();
  REQUIRE_NODE(node, "24");
  TempDir dir;
  std::string stripped = dir.file("node");
  ASSERT_EQ(system(("cp " + shell_quote(node) + " " + shell_quote(stripped) + " && strip --strip-all " +
                    shell_quote(stripped))
                       .c_str()),
            0);
  auto doctor = run_shell(memlens_bin() + " doctor --binary " + shell_quote(stripped));
  EXPECT_NE(doctor.output.find("gc_start: not found: binary is stripped"), std::string::npos)
      << doctor.output;
  EXPECT_NE(doctor.output.find("array_buffer_alloc: found .dynsym"), std::string::npos) << doctor.output;

  auto r = run_traced({stripped, scenario("v8_gc_buffers")});
  ASSERT_EQ(r->exit_code, 0) << r->stderr_text;
  std::map<std::string, std::string> skipped;
  for (const auto& s : r->report["probes"]["skipped"]) skipped[s["name"]] = s["reason"];
  for (const char* probe : {"v8:gc_start", "v8:gc_end", "v8:heap_used_after"}) {
    ASSERT_TRUE(skipped.count(probe)) << probe << " not in probes.skipped: " << r->report["probes"].dump();
    EXPECT_NE(skipped[probe].find("stripped"), std::string::npos) << skipped[probe];
  }
  EXPECT_FALSE(v8_probes(r->report).count("v8:gc_start"));
  auto final_event = last_event(r->lines, "final");
  ASSERT_TRUE(final_event) << r->stdout_text.substr(0, 2000);
  auto proc = report_process(r->report, pid_of(r->lines, *final_event));
  ASSERT_TRUE(proc);
  EXPECT_FALSE(proc->contains("gc"));
  // What the process read about itself right before it exited.
  EXPECT_TRUE(within("rss_bytes vs VmRSS", (*proc)["rss_bytes"].get<double>(),
                     (*final_event)["status"]["vm_rss"].get<double>(), 0.05));
  ASSERT_TRUE(proc->contains("array_buffers")) << proc->value("notes", json::array()).dump();
  EXPECT_TRUE(within("array_buffers.live_bytes vs memoryUsage().arrayBuffers",
                     (*proc)["array_buffers"]["live_bytes"].get<double>(),
                     (*final_event)["memoryUsage"]["arrayBuffers"].get<double>(), 0.05));
}

TEST(V8, UsdtNotesOfANonNodeProcessAreAttached) {
  MEMLENS_REQUIRE_TRACING();
  std::string provider = test_program("usdt_provider");
  ASSERT_EQ(access(provider.c_str(), X_OK), 0) << provider << " is not built";
  // 40 pairs of start and done 25 ms apart once both semaphores are raised, then 2 lone dones.
  auto r = run_traced({provider, "40", "25", "2"});
  ASSERT_EQ(r->exit_code, 0) << r->stderr_text;
  std::smatch m;
  static const std::regex rx(R"(fired gc__start (\d+) gc__done (\d+))");
  ASSERT_TRUE(std::regex_search(r->stdout_text, m, rx)) << r->stdout_text;
  int fired_start = std::stoi(m[1]), fired_done = std::stoi(m[2]);
  // The semaphores were raised (without a tracer the provider fires nothing) and stayed raised.
  ASSERT_EQ(fired_start, 40) << r->stdout_text;
  ASSERT_GT(fired_done, fired_start) << r->stdout_text;
  auto probes = v8_probes(r->report);
  EXPECT_TRUE(probes.count("v8:usdt:node:gc__start"));
  EXPECT_TRUE(probes.count("v8:usdt:node:gc__done"));
  int pid = std::stoi(r->stdout_text);
  auto proc = report_process(r->report, pid);
  ASSERT_TRUE(proc);
  ASSERT_TRUE(proc->contains("gc"));
  EXPECT_EQ((*proc)["gc"]["source"], "usdt");
  // Every start with its done is one GC; each done with no start before it is counted as unmatched.
  uint64_t unmatched = r->report["loss"]["events_lost_by_cause"]["unpaired"].get<uint64_t>();
  EXPECT_EQ((*proc)["loss"]["events_lost_by_cause"]["unpaired"].get<uint64_t>(), unmatched);
  EXPECT_EQ((*proc)["gc"]["count"].get<int>(), fired_start);
  EXPECT_EQ(unmatched, static_cast<uint64_t>(fired_done - fired_start));
}

}  // namespace
}  // namespace memlens::testing
