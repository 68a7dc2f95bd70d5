// `memlens record` then `memlens report`, on a machine that no longer has what the trace read: a node copied
// into a scratch directory, started with V8's perf map, is recorded; then the node copy and its perf map
// are moved away, and the report of the capture must give the same folded and pprof files as the live
// trace wrote (record --report-dir), JS frames still named from the perf map that is gone.
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "../common/replay_compare.h"
#include "support/harness.h"

namespace memlens::testing {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(Record, ReportWithoutTheBinariesOrPerfMapsGivesTheLiveProfiles) {
  MEMLENS_REQUIRE_TRACING();
  REQUIRE_NODE(cached, "22");
  TempDir dir;
  fs::path bin = fs::path(dir.path()) / "bin";
  fs::create_directories(bin);
  fs::copy_file(cached, bin / "node");
  fs::permissions(bin / "node", fs::perms::owner_all);
  std::string capture = dir.file("trace.mlcap"), live = dir.file("live");
  Child c =
      Child::spawn({memlens_bin(), "record", "-q", "--no-fds", "--fault-sample-period", "256", "--interval",
                    "0.5", "-o", capture, "--report-dir", live, "--", (bin / "node").string(),
                    "--perf-basic-prof", scenario("stacks_buffers"), "--duration", "3"},
                   dir.path(), "memlens");
  auto rc = c.wait(120s);
  ASSERT_EQ(rc, 0) << c.stderr_text();
  auto report = load_report(live);
  ASSERT_FALSE(report["processes"].empty());
  int pid = report["processes"][0]["pid"];
  fs::path perf_map = "/tmp/perf-" + std::to_string(pid) + ".map";
  ASSERT_TRUE(fs::exists(perf_map)) << "node wrote no perf map: the test proves nothing without one";
  ASSERT_NE(slurp(perf_map).find("allocateReportBuffers"), std::string::npos);

  // Away with what a live trace reads: the binary and the perf map.
  fs::rename(bin, fs::path(dir.path()) / "moved-bin");
  fs::rename(perf_map, dir.file("moved-perf.map"));
  ASSERT_FALSE(fs::exists(bin / "node"));

  std::string replay = dir.file("replay");
  Child r = Child::spawn({memlens_bin(), "report", capture, "-o", replay}, dir.path(), "report");
  ASSERT_EQ(r.wait(60s), 0) << r.stderr_text();
  int profiles = 0;
  for (const auto& e : fs::directory_iterator(live)) {
    std::string name = e.path().filename();
    if (!name.ends_with(".folded") && !name.ends_with(".pb.gz")) continue;
    SCOPED_TRACE(name);
    ++profiles;
    ASSERT_TRUE(fs::exists(fs::path(replay) / name));
    EXPECT_TRUE(slurp(e.path()) == slurp(fs::path(replay) / name)) << "the replay's file differs";
  }
  EXPECT_GE(profiles, 4) << "array_buffers, page_faults, mmap_growth, gc_triggers: folded and pprof each";
  // The JS function's name came from the perf map that is gone.
  EXPECT_NE(slurp(fs::path(replay) / "page_faults.folded").find("allocateReportBuffers"), std::string::npos);
  EXPECT_TRUE(slurp(fs::path(live) / "report.json") == slurp(fs::path(replay) / "report.json"));
  // The event stream, applied again with the host's recorded answers, rebuilds what the live trace had.
  expect_replay_rebuilds_live(capture, report);
}

// Attach mode: memlens tracks a process that already runs (attached late) and keeps it at the end; its
// capture's event stream, applied again with the host's recorded answers, rebuilds what the live trace had,
// the figures read at the end of the trace included.
TEST(Record, AttachedCaptureReplaysToTheLiveFigures) {
  MEMLENS_REQUIRE_TRACING();
  TempDir dir;
  Child node = Child::spawn({node_bin(), scenario("long_running"), "--duration", "30"}, dir.path(), "node");
  auto ready = node.wait_for_event("ready", 20s);
  ASSERT_TRUE(ready) << node.stderr_text();
  std::string capture = dir.file("attach.mlcap"), live = dir.file("live");
  Child m = Child::spawn({memlens_bin(), "record", "-q", "--interval", "0.5", "--duration", "2", "-o",
                          capture, "--report-dir", live, "--pid", std::to_string(node.pid())},
                         dir.path(), "memlens");
  ASSERT_EQ(m.wait(60s), 0) << m.stderr_text();
  kill(node.pid(), SIGTERM);
  auto report = load_report(live);
  ASSERT_FALSE(report["processes"].empty());
  EXPECT_EQ(report["processes"][0]["attached_late"], true);
  EXPECT_TRUE(report["processes"][0]["exit_status"].is_null()) << "the process outlived the trace";
  expect_replay_rebuilds_live(capture, report);
}

// memlens killed (SIGKILL) while recording: the capture reports the trace up to its last snapshot and says
// it was cut short; the process it names is the scenario that ran.
TEST(Record, CaptureOfAKilledRecordingReportsWhatItHas) {
  MEMLENS_REQUIRE_TRACING();
  TempDir dir;
  std::string capture = dir.file("trace.mlcap");
  Child c = Child::spawn({memlens_bin(), "record", "-q", "--interval", "0.5", "-o", capture, "--", node_bin(),
                          scenario("js_cache_leak"), "--duration", "60", "--report-interval", "1"},
                         dir.path(), "memlens");
  // Until the scenario has run 7 s under the trace (its memory lines, one a second): past the second
  // snapshot (the first sample, then every 5 s).
  std::optional<nlohmann::json> ready, first_memory;
  int memory_lines = 0;
  for (int i = 0; i < 300 && memory_lines < 7; ++i) {
    std::this_thread::sleep_for(100ms);
    auto lines = json_lines(c.stdout_text());
    ready = last_event(lines, "ready");
    memory_lines = 0;
    for (const auto& l : lines)
      if (l.value("event", "") == "memory" && ++memory_lines == 1) first_memory = l;
  }
  ASSERT_TRUE(ready.has_value() && memory_lines >= 7) << c.stdout_text() << c.stderr_text();
  int pid = (*ready)["pid"];
  c.signal(SIGKILL);
  c.wait(10s);
  kill(pid, SIGKILL);  // the command memlens left behind

  std::string out = dir.file("out");
  Child r = Child::spawn({memlens_bin(), "report", capture, "-o", out}, dir.path(), "report");
  ASSERT_EQ(r.wait(60s), 0) << r.stderr_text();
  EXPECT_NE(r.stderr_text().find("cut short"), std::string::npos) << r.stderr_text();
  auto report = load_report(out);
  EXPECT_EQ(report["capture"]["complete"], false);
  EXPECT_EQ(report["capture"]["reported_from"], "last snapshot taken during the trace");
  auto proc = report_process(report, pid);
  ASSERT_TRUE(proc.has_value()) << "the scenario's process is not in the report: "
                                << report.dump().substr(0, 2000);
  // The snapshot (at 5 s or later) saw at least the RSS node reported of itself at 1 s (the kernel's figure
  // both; a tenth for the pages that come and go between two readings).
  double rss_at_1s = (*first_memory)["memoryUsage"]["rss"];
  EXPECT_GE((*proc)["rss_peak_bytes"].get<double>(), 0.9 * rss_at_1s) << proc->dump().substr(0, 2000);
}

// --max-size: the capture never passes its bound; the events that did not fit are counted, and both the
// recording and the report say so (report.json's capture object), while the report still has the process.
TEST(Record, SizeBoundDropsEventsAndBothCommandsSaySo) {
  MEMLENS_REQUIRE_TRACING();
  TempDir dir;
  std::string capture = dir.file("bounded.mlcap");
  // Each 300 kB Buffer is its own mmap and munmap (probed: --unmap-probes): tens of thousands of
  // address-space events in 3 s.
  auto rec =
      run_shell(shell_quote(memlens_bin()) + " record -q --unmap-probes --max-size 128K -o " +
                shell_quote(capture) + " -- " + shell_quote(node_bin()) +
                " -e 'const t = Date.now(); while (Date.now() - t < 3000) Buffer.allocUnsafeSlow(300000)' "
                "2>&1");
  ASSERT_EQ(rec.exit_code, 0) << rec.output;
  EXPECT_LE(fs::file_size(capture), 128u << 10);
  EXPECT_NE(rec.output.find("reached its --max-size bound"), std::string::npos) << rec.output;
  auto rep = run_shell(shell_quote(memlens_bin()) + " report -q " + shell_quote(capture) + " -o " +
                       shell_quote(dir.file("out")) + " 2>&1");
  ASSERT_EQ(rep.exit_code, 0) << rep.output;
  EXPECT_NE(rep.output.find("size bound (--max-size) dropped"), std::string::npos) << rep.output;
  auto report = load_report(dir.file("out"));
  ASSERT_TRUE(report.contains("capture")) << report.dump().substr(0, 1000);
  EXPECT_GT(report["capture"]["event_records_dropped_by_size_bound"].get<uint64_t>(), 1000u);
  ASSERT_EQ(report["processes"].size(), 1u);
  EXPECT_GT(report["processes"][0]["rss_peak_bytes"].get<uint64_t>(), 0u);
}

// A command line that is not UTF-8 (JSON's only encoding): the live report, the capture and its report
// replace the bad bytes (U+FFFD) instead of stopping, and the replayed report is the live one byte for byte.
TEST(Record, CommandLineThatIsNotUtf8IsReplacedNotFatal) {
  MEMLENS_REQUIRE_TRACING();
  TempDir dir;
  std::string capture = dir.file("bytes.mlcap");
  auto rec = run_shell(shell_quote(memlens_bin()) + " record -o " + shell_quote(capture) + " --report-dir " +
                       shell_quote(dir.file("live")) + " -- " + shell_quote(node_bin()) +
                       " -e 0 $(printf '\\377\\376') 2>&1");
  ASSERT_EQ(rec.exit_code, 0) << rec.output;
  EXPECT_NE(rec.output.find("memlens summary"), std::string::npos) << rec.output;
  auto live = load_report(dir.file("live"));
  ASSERT_FALSE(live["processes"].empty());
  EXPECT_EQ(live["processes"][0]["cmdline"].back(), "\xef\xbf\xbd\xef\xbf\xbd");
  auto rep = run_shell(shell_quote(memlens_bin()) + " report " + shell_quote(capture) + " -o " +
                       shell_quote(dir.file("out")) + " 2>&1");
  ASSERT_EQ(rep.exit_code, 0) << rep.output;
  EXPECT_TRUE(slurp(dir.file("live") + "/report.json") == slurp(dir.file("out") + "/report.json"));
}

// A capture is never written over an existing file (nor through a symbolic link), and record needs a target.
TEST(Record, RefusesAnExistingCaptureFileAndAMissingTarget) {
  MEMLENS_REQUIRE_TRACING();
  TempDir dir;
  std::string existing = dir.file("kept.mlcap");
  { std::ofstream(existing) << "kept"; }
  fs::create_symlink(existing, dir.file("link.mlcap"));
  for (const auto& path : {existing, dir.file("link.mlcap")}) {
    auto r = run_shell(shell_quote(memlens_bin()) + " record -q -o " + shell_quote(path) + " -- " +
                       shell_quote(node_bin()) + " -e 0 2>&1");
    EXPECT_EQ(r.exit_code, 7) << r.output;
    EXPECT_NE(r.output.find("never overwritten"), std::string::npos) << r.output;
    EXPECT_EQ(slurp(existing), "kept");
  }
  auto r =
      run_shell(shell_quote(memlens_bin()) + " record -o " + shell_quote(dir.file("new.mlcap")) + " 2>&1");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("--pid"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir.file("new.mlcap")));
}

}  // namespace
}  // namespace memlens::testing
