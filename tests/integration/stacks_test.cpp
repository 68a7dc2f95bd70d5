// Stack profiles of a real node process, checked against the scenario's own code and against the report:
// tests/scenarios/stacks_buffers.js allocates every Buffer of its run in one uniquely named JS function,
// allocateReportBuffers, and writes into each page of it. Under `memlens run` (JS frames named from V8's
// metadata by default, from V8's perf map with --perf-map):
//  - that function must be on the stacks of the array_buffers profile (sampled in windows by the V8
//    capability) and of the page_faults profile;
//  - gc_triggers accounts for every GC memlens saw: GCs' stacks sampled and weighed by the GCs of their kind
//    they stand for (minus each kind's last gap, and stack captures the kernel reported lost);
//  - every <kind>.pb.gz, decoded by pprof-format (tests/html/pprof-summary.js), has sample totals equal
//    to report.json's profiles[].totals, and every <kind>.folded sums to the total of the first sample type;
//  - report.html loads in headless Chromium without console errors, with one flame graph per profile whose
//    total is the report's (tests/html/check-html.js); the screenshot is kept under
//    $MEMLENS_BUILD_DIR/test-artifacts/stacks/.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "memlens/abi.h"
#include "support/harness.h"

namespace memlens::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
namespace fs = std::filesystem;

const std::string kFunction = "allocateReportBuffers";

// One `memlens run` of the stacks_buffers scenario, its output in dir/out. fds are another capability
// with a profile of its own (fd_opens), not what these tests are about.
struct StacksRun {
  std::string out;
  std::optional<json> final_line, proc;
  json report;
  std::string problem;  // why there is no proc
};

StacksRun run_stacks_scenario(TempDir& dir, const std::string& interval_s, const std::string& duration_s,
                              std::chrono::seconds timeout, bool perf_map = false) {
  StacksRun r;
  r.out = dir.file("out");
  std::vector<std::string> argv = {
      memlens_bin(), "run",        "-q",       "--no-fds", "--fault-sample-period",
      "1024",        "--interval", interval_s, "-o",       r.out};
  if (perf_map) argv.push_back("--perf-map");
  for (const auto& a :
       {std::string("--"), node_bin(), scenario("stacks_buffers"), std::string("--duration"), duration_s})
    argv.push_back(a);
  Child c = Child::spawn(argv, dir.path(), "memlens");
  if (auto rc = c.wait(timeout); rc != 0) {
    r.problem = (rc ? "memlens exited with " + std::to_string(*rc) : std::string("memlens timed out")) +
                ": " + c.stderr_text();
    return r;
  }
  auto lines = json_lines(c.stdout_text());
  r.final_line = last_event(lines, "final");
  if (!r.final_line) {
    r.problem = "the scenario printed no final line: " + c.stdout_text().substr(0, 2000);
    return r;
  }
  r.report = load_report(r.out);
  r.proc = report_process(r.report, pid_of(lines, *r.final_line));
  if (!r.proc) r.problem = "the scenario's process is not in the report";
  return r;
}

TEST(Stacks, ProfilesNameTheAllocatingJsFunctionAndAgreeWithTheReport) {
  MEMLENS_REQUIRE_TRACING();
  if (std::string why = checkers_missing(); !why.empty()) {
    if (in_ci()) FAIL() << "CI=true and " << why;
    GTEST_SKIP() << why;
  }
  TempDir dir;
  StacksRun run = run_stacks_scenario(dir, "0.5", "12", 180s);
  ASSERT_TRUE(run.proc) << run.problem;
  ASSERT_GT((*run.final_line)["calls"].get<int>(), 1000) << "the scenario did too little work";
  const std::string& out = run.out;
  const json& report = run.report;
  const auto& proc = run.proc;
  ASSERT_TRUE(proc->contains("gc"));

  std::map<std::string, json> profiles;
  for (const auto& p : report["profiles"]) profiles[p["kind"].get<std::string>()] = p;
  for (const char* kind : {"array_buffers", "page_faults", "gc_triggers", "mmap_growth"})
    ASSERT_TRUE(profiles.count(kind)) << "no " << kind << " profile; profiles: " << report["profiles"].dump();

  json flames = json::array();
  for (const auto& [kind, prof] : profiles) {
    SCOPED_TRACE(kind);
    std::string pprof = out + "/" + prof["pprof"].get<std::string>();
    std::string folded = out + "/" + prof["folded"].get<std::string>();
    json summary = pprof_summary(pprof, kFunction);
    ASSERT_FALSE(summary.is_null());
    const json& types = summary["sample_types"];
    ASSERT_FALSE(types.empty());
    const json& totals = prof["totals"];
    ASSERT_EQ(totals.size(), types.size()) << totals.dump() << " vs " << types.dump();
    for (size_t i = 0; i < types.size(); ++i) {
      std::string type = types[i]["type"];
      ASSERT_TRUE(totals.contains(type)) << type << " not in " << totals.dump();
      EXPECT_EQ(summary["totals"][i].get<std::string>(), std::to_string(totals[type].get<int64_t>()))
          << "pprof total of " << type;
    }
    int64_t first_total = totals[types[0]["type"].get<std::string>()].get<int64_t>();
    FoldedFile f = read_folded(folded, kFunction);
    EXPECT_FALSE(f.malformed) << folded;
    EXPECT_EQ(static_cast<int64_t>(f.total), first_total) << "folded total";
    EXPECT_GT(f.lines, 0u);
    flames.push_back({{"kind", kind}, {"total", first_total}});

    if (kind == "array_buffers" || kind == "page_faults") {
      const json& m = summary["matching"];
      EXPECT_GT(m["samples"].get<int>(), 0) << kFunction << " is on no " << kind
                                            << " stack; functions seen: " << summary.dump().substr(0, 2000);
      EXPECT_GT(f.lines_with_function, 0u) << kFunction << " not in " << folded;
      std::cout << kind << ": " << m["totals"][0].get<std::string>() << " of " << first_total << " "
                << types[0]["type"].get<std::string>() << " under " << kFunction << "\n";
    }
  }

  // The scenario allocates its Buffers in allocateReportBuffers only (node's own start-up allocations
  // aside): most sampled backing-store bytes are under it.
  {
    json s = pprof_summary(out + "/array_buffers.pb.gz", kFunction);
    ASSERT_FALSE(s.is_null());
    double under = std::stod(s["matching"]["totals"][0].get<std::string>());
    double all = std::stod(s["totals"][0].get<std::string>());
    EXPECT_GT(under, 0.5 * all) << "bytes under " << kFunction << ": " << under << " of " << all;
  }

  // The GC trigger stacks account for every GC: a GC's stack is sampled, at most one per
  // ML_V8_GC_STACK_GAP_NS of a thread for young-generation GCs and one per ML_V8_GC_FULL_STACK_GAP_NS for
  // full GCs, weighing the GCs of its kind since the thread's last stacked one. Short of gc.count only by
  // the GCs of each kind after its last stacked one (within the gap of the kind's last GC) and by stack
  // captures the kernel could not make (counted as lost; a lost capture's GCs go to the next stack of
  // the kind, so only the last one's can be missing). The clocks are per thread: the scenario has one
  // isolate, whose GCs all start on its main thread, so the process's GCs are that thread's.
  int64_t gcs = (*proc)["gc"]["count"].get<int64_t>();
  int64_t triggers = profiles["gc_triggers"]["totals"]["count"].get<int64_t>();
  int64_t lost = report["loss"]["stacks_lost"].get<int64_t>();
  ASSERT_GT(gcs, 0);
  const json& gc_events = (*proc)["gc"]["events"];
  ASSERT_EQ(gc_events.size(), static_cast<size_t>(gcs)) << "no GC thinned out in a short trace";
  std::vector<double> young, full;
  for (const auto& g : gc_events)
    (g["kind"] == "mark_compact" ? full : young).push_back(g["t_s"].get<double>());
  const double gap_s = ML_V8_GC_STACK_GAP_NS / 1e9, full_gap_s = ML_V8_GC_FULL_STACK_GAP_NS / 1e9;
  // The GCs of one kind within its gap of the last (the tail), and the most within one gap (densest).
  auto unstacked_at_most = [](std::vector<double> t, double gap, int64_t& tail, int64_t& densest) {
    std::sort(t.begin(), t.end());
    for (size_t i = 0, j = 0; i < t.size(); ++i) {
      while (t[i] - t[j] > gap) ++j;
      densest = std::max<int64_t>(densest, static_cast<int64_t>(i - j + 1));
      if (t.back() - t[i] <= gap) ++tail;
    }
  };
  int64_t tail = 0, densest = 0, full_tail = 0, full_densest = 0;
  unstacked_at_most(young, gap_s, tail, densest);
  unstacked_at_most(full, full_gap_s, full_tail, full_densest);
  EXPECT_LE(triggers, gcs);
  EXPECT_GE(triggers + tail + full_tail + (lost > 0 ? densest + full_densest : 0), gcs)
      << "tail " << tail << " young and " << full_tail << " full, lost " << lost << ", at most " << densest
      << " young GCs in " << gap_s << " s, " << full_densest << " full GCs in " << full_gap_s << " s";
  // This scenario scavenges far more often than once a gap: sampling left GCs out, and the report says so
  // with the counts the profile has.
  ASSERT_GT(densest, 2) << "the scenario no longer scavenges densely: it does not test the sampling";
  ASSERT_TRUE((*proc)["gc"].contains("trigger_stacks")) << (*proc)["gc"].dump().substr(0, 400);
  EXPECT_EQ((*proc)["gc"]["trigger_stacks"]["gcs"].get<int64_t>(), triggers);
  EXPECT_LT((*proc)["gc"]["trigger_stacks"]["stacks"].get<int64_t>(), triggers / 2)
      << "fewer stack walks than half the GCs";
  std::cout << "gc_triggers: " << triggers << " of " << gcs << " GCs ("
            << ((*proc)["gc"].contains("trigger_stacks") ? (*proc)["gc"]["trigger_stacks"].dump()
                                                         : "every stack")
            << ")\n";

  // One fault in fault_sample_period has its stack, weighted by the period: the page_faults profile
  // accounts for the faults the report counts (the stacks of the faults before node's exec, memlens's own
  // child, are dropped; a stack the kernel could not record is lost whole).
  {
    const json& f = (*proc)["page_faults"];
    double traced = f["traced_user"].get<double>() + f["traced_kernel"].get<double>();
    double profiled = profiles["page_faults"]["totals"]["faults"].get<double>();
    double period = f["sample_period"].get<double>();
    EXPECT_LE(profiled, traced + period);
    EXPECT_GE(profiled + period * (static_cast<double>(lost) + 2), 0.97 * traced)
        << profiled << " faults in the page_faults profile, " << traced << " traced";
  }

  // ArrayBuffer live bytes from the allocator's counter while the scenario kept about 64 MB.
  ASSERT_TRUE(proc->contains("array_buffers"));
  EXPECT_EQ((*proc)["array_buffers"]["source"], "allocator_counter");
  EXPECT_GT((*proc)["array_buffers"]["peak_bytes"].get<double>(), 16.0 * 1048576);

  // report.html in headless Chromium: loads, no console errors, a flame graph per profile with its total.
  const char* build = getenv("MEMLENS_BUILD_DIR");
  fs::path artifacts = fs::path(build ? build : "/tmp") / "test-artifacts" / "stacks";
  fs::create_directories(artifacts);
  json expect = {{"charts_min", 1},
                 {"flames", flames},
                 {"absent_selectors", {"script[src]", "iframe"}},
                 {"load_limit_ms", 60000}};
  std::string expect_file = (artifacts / "expect.json").string();
  std::ofstream(expect_file) << expect.dump(2);
  fs::copy_file(out + "/report.html", artifacts / "report.html", fs::copy_options::overwrite_existing);
  auto html = run_shell("node " + shell_quote(source_dir() + "/tests/html/check-html.js") + " " +
                        shell_quote(out + "/report.html") + " " + shell_quote(expect_file) + " " +
                        shell_quote((artifacts / "report.png").string()));
  std::cout << html.output;
  EXPECT_EQ(html.exit_code, 0) << html.output;
  EXPECT_NE(html.output.find("check-html: OK"), std::string::npos);
  EXPECT_TRUE(fs::exists(artifacts / "report.png"));
}

// A process that exits before memlens's first sample: its maps and V8's perf map must have been read
// while it lived (when its image was loaded, and a few times a second), or its stacks come out as bare
// addresses. The interval is longer than the scenario's life, so no sample ever reads them.
TEST(Stacks, AProcessThatExitsBeforeTheFirstSampleIsStillSymbolized) {
  MEMLENS_REQUIRE_TRACING();
  TempDir dir;
  StacksRun run = run_stacks_scenario(dir, "30", "1.5", 120s, /*perf_map=*/true);
  ASSERT_TRUE(run.proc) << run.problem;
  const std::string& out = run.out;
  const auto& proc = run.proc;
  ASSERT_LE((*proc)["timeline"].size(), 1u) << "a sample was taken: the test would not test anything";
  // JS frames named from the perf map node wrote during its run.
  FoldedFile faults = read_folded(out + "/page_faults.folded", kFunction);
  EXPECT_GT(faults.lines_with_function, 0u)
      << kFunction << " not in page_faults.folded; notes: " << proc->value("notes", json::array()).dump();
  // The C library, mapped by the dynamic loader after the exec, named: the innermost frame of every
  // mmap_growth stack is one of its functions (mmap, mremap, brk), not a bare address.
  std::ifstream in(out + "/mmap_growth.folded");
  ASSERT_TRUE(in) << "no mmap_growth.folded";
  std::string line;
  size_t stacks = 0, named = 0;
  while (std::getline(in, line)) {
    auto space = line.rfind(' ');
    if (space == std::string::npos) continue;
    std::string stack = line.substr(0, space);
    std::string leaf = stack.substr(stack.rfind(';') + 1);
    ++stacks;
    if (leaf.rfind("0x", 0) != 0 && leaf.find("+0x") == std::string::npos)
      ++named;
    else
      ADD_FAILURE() << "innermost frame not named: " << leaf;
  }
  EXPECT_GT(stacks, 0u);
  EXPECT_EQ(named, stacks);
}

}  // namespace
}  // namespace memlens::testing
