// The hostile-input tier, command line and lifecycle: what a new user types first, bad arguments, bad
// output directories, zombies, signals in quick succession, exec. Each case checks the exit code, the
// message, whether the report is written, and that a killed or stopped memlens left nothing attached.
#include <signal.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <thread>

#include "support/harness.h"

namespace memlens::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

bool contains(const std::string& text, const std::string& what) {
  return text.find(what) != std::string::npos;
}

// The first thing a new user types, with the default output (no -q): the summary is printed and the
// command's own status is returned, for a node that ran no GC at all.
TEST(HostileCli, TinyNodeWithDefaultOutputPrintsItsSummary) {
  MEMLENS_REQUIRE_TRACING();
  TempDir dir;
  for (int code : {0, 3}) {
    std::string script = code == 0 ? "1" : "process.exit(3)";
    Child m = Child::spawn(
        {memlens_bin(), "run", "-o", dir.file("out" + std::to_string(code)), "--", node_bin(), "-e", script},
        dir.path(), "tiny" + std::to_string(code));
    EXPECT_EQ(m.wait(60s), code) << m.stderr_text();
    EXPECT_TRUE(contains(m.stderr_text(), "memlens summary")) << m.stderr_text();
    EXPECT_FALSE(contains(m.stderr_text(), "terminate called")) << m.stderr_text();
    json report = load_report(dir.file("out" + std::to_string(code)));
    ASSERT_TRUE(report.is_object()) << m.stderr_text();
    ASSERT_EQ(report["processes"].size(), 1u);
    EXPECT_EQ(report["processes"][0]["exit_status"], code);
  }
}

TEST(HostileCli, DurationsThatNeverEndAreRefused) {
  TempDir dir;
  for (const char* d : {"0", "-1", "nan", "inf", "-inf", "1e300", "soon"}) {
    for (const char* cmd : {"run", "attach"}) {
      std::vector<std::string> argv = {memlens_bin(), cmd, std::string("--duration=") + d, "-q"};
      if (std::string(cmd) == "run")
        argv.insert(argv.end(), {"--", "true"});
      else
        argv.push_back(std::to_string(getpid()));
      Child m = Child::spawn(argv, dir.path(), std::string(cmd) + d);
      EXPECT_EQ(m.wait(20s), 2) << cmd << " --duration=" << d << ": " << m.stderr_text();
      EXPECT_TRUE(contains(m.stderr_text(), "--duration")) << m.stderr_text();
    }
  }
}

// --duration stops tracing and leaves the command running: what was asked, so exit 0 and say so.
TEST(HostileCli, RunDurationLeavesTheCommandRunningAndSucceeds) {
  MEMLENS_REQUIRE_TRACING();
  TempDir dir;
  Child m = Child::spawn(
      {memlens_bin(), "run", "-q", "--duration", "2", "-o", dir.file("out"), "--", "sleep", "60"}, dir.path(),
      "dur");
  EXPECT_EQ(m.wait(60s), 0) << m.stderr_text();
  EXPECT_TRUE(contains(m.stderr_text(), "left running")) << m.stderr_text();
  json report = load_report(dir.file("out"));
  ASSERT_TRUE(report.is_object());
  EXPECT_EQ(report["stop_reason"], "duration reached");
  ASSERT_EQ(report["processes"].size(), 1u);
  int pid = report["processes"][0]["pid"].get<int>();
  EXPECT_EQ(kill(pid, 0), 0) << "the command did not keep running";
  kill(pid, SIGKILL);
}

TEST(HostileCli, AZombieIsNotTracedAsALiveProcess) {
  MEMLENS_REQUIRE_TRACING();
  TempDir dir;
  // The background sleep exits at once; its parent execs a sleep that never reaps it.
  Child parent = Child::spawn({"sh", "-c", "sleep 0.1 & echo $!; exec sleep 60"}, dir.path(), "parent");
  pid_t zombie = 0;
  for (int i = 0; i < 100 && !zombie; ++i) {
    std::this_thread::sleep_for(50ms);
    std::string out = parent.stdout_text();
    if (!out.empty() && out.back() == '\n') zombie = std::stoi(out);
  }
  ASSERT_GT(zombie, 0);
  std::string state;
  for (int i = 0; i < 100 && state != "Z"; ++i) {
    std::this_thread::sleep_for(50ms);
    auto r = run_shell("awk '{print $3}' /proc/" + std::to_string(zombie) + "/stat 2>/dev/null");
    state = r.output.substr(0, r.output.find('\n'));
  }
  ASSERT_EQ(state, "Z");
  Child m =
      Child::spawn({memlens_bin(), "attach", std::to_string(zombie), "--duration", "3"}, dir.path(), "m");
  EXPECT_EQ(m.wait(30s), 5) << m.stderr_text();
  EXPECT_TRUE(contains(m.stderr_text(), "zombie")) << m.stderr_text();
}

// A leader that called pthread_exit shows Z in /proc/PID/stat while its other thread runs: still alive.
TEST(HostileCli, ALeaderThatExitedWhileItsThreadsRunIsTraced) {
  MEMLENS_REQUIRE_TRACING();
  TempDir dir;
  Child prog = Child::spawn({test_program("leader_exits"), "30"}, dir.path(), "leader");
  ASSERT_TRUE(prog.wait_for_event("ready", 10s));
  std::this_thread::sleep_for(300ms);
  Child m = Child::spawn(
      {memlens_bin(), "attach", std::to_string(prog.pid()), "-q", "--duration", "3", "-o", dir.file("out")},
      dir.path(), "m");
  EXPECT_EQ(m.wait(60s), 0) << m.stderr_text();
  json report = load_report(dir.file("out"));
  ASSERT_TRUE(report.is_object()) << m.stderr_text();
  auto p = report_process(report, prog.pid());
  ASSERT_TRUE(p);
  EXPECT_GT((*p)["rss_bytes"].get<uint64_t>(), 0u);
  // Its mappings' resident pages are read through the live thread (the leader has no address space):
  // from 6.16 by PAGEMAP_SCAN, through that thread's pagemap.
  const json& method = (*p)["breakdown"]["method"];
  EXPECT_EQ(method["smaps_read_failures"].get<uint64_t>(), 0u) << method.dump();
  EXPECT_GT(method["smaps_reads"].get<uint64_t>(), 0u) << method.dump();
  EXPECT_GT(method["smaps_rss_bytes"].get<uint64_t>(), 0u) << method.dump();
  struct utsname u {};
  unsigned major = 0, minor = 0;
  ASSERT_EQ(uname(&u), 0);
  ASSERT_EQ(sscanf(u.release, "%u.%u", &major, &minor), 2) << u.release;
  EXPECT_EQ(method["source"], major > 6 || (major == 6 && minor >= 16) ? "pagemap_scan" : "smaps")
      << u.release;
}

// Output directories that cannot take the report are refused before tracing, not after it.
TEST(HostileCli, BadOutputDirectoriesAreRefusedBeforeTracing) {
  MEMLENS_REQUIRE_TRACING();
  TempDir dir;
  auto refused = [&](const std::string& out, const std::string& message) {
    auto t0 = std::chrono::steady_clock::now();
    Child m = Child::spawn({memlens_bin(), "run", "-q", "--duration", "30", "-o", out, "--", "sleep", "60"},
                           dir.path(), "out");
    EXPECT_EQ(m.wait(60s), 7) << out << ": " << m.stderr_text();
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 20s) << out << " was refused only after tracing";
    EXPECT_TRUE(contains(m.stderr_text(), message)) << m.stderr_text();
  };
  std::filesystem::create_directories(dir.file("ro"));
  ASSERT_EQ(mount("tmpfs", dir.file("ro").c_str(), "tmpfs", MS_RDONLY, "size=4m"), 0) << strerror(errno);
  refused(dir.file("ro"), "ead-only");
  umount(dir.file("ro").c_str());

  std::filesystem::create_directories(dir.file("small"));
  ASSERT_EQ(mount("tmpfs", dir.file("small").c_str(), "tmpfs", 0, "size=1m"), 0) << strerror(errno);
  refused(dir.file("small") + "/out", "free");
  umount(dir.file("small").c_str());

  std::filesystem::create_directories(dir.file("real"));
  std::filesystem::create_directory_symlink(dir.file("real"), dir.file("link"));
  refused(dir.file("link"), "symbolic link");
  EXPECT_TRUE(std::filesystem::is_empty(dir.file("real")));
}

// Ctrl-C twice in quick succession: the second hurries the stop, the report the first promised is written.
TEST(HostileCli, ASecondQuickSignalStillWritesTheReport) {
  MEMLENS_REQUIRE_TRACING();
  TempDir dir;
  // The command ignores SIGINT, so the first signal starts the grace period for it to exit.
  Child m = Child::spawn({memlens_bin(), "run", "-o", dir.file("out"), "--", node_bin(), "-e",
                          "process.on('SIGINT', () => {}); setInterval(() => {}, 1000); console.log('up')"},
                         dir.path(), "m");
  std::set<uint32_t> ours;
  for (int i = 0; i < 200 && (ours.size() < 6 || !contains(m.stdout_text(), "up")); ++i) {
    std::this_thread::sleep_for(100ms);
    ours = programs_held_by(m.pid());
  }
  ASSERT_TRUE(contains(m.stdout_text(), "up")) << m.stderr_text();
  std::this_thread::sleep_for(1500ms);
  m.signal(SIGINT);
  std::this_thread::sleep_for(50ms);
  m.signal(SIGINT);
  auto rc = m.wait(60s);
  ASSERT_TRUE(rc.has_value());
  EXPECT_EQ(*rc, 128 + SIGINT) << m.stderr_text();
  EXPECT_TRUE(contains(m.stderr_text(), "stopping now")) << m.stderr_text();
  EXPECT_TRUE(contains(m.stderr_text(), "left running")) << m.stderr_text();
  json report = load_report(dir.file("out"));
  ASSERT_TRUE(report.is_object()) << "no report after two quick signals: " << m.stderr_text();
  EXPECT_EQ(report["stop_reason"], "SIGINT received");
  EXPECT_EQ(leftovers_of(m.pid(), ours, 30s), "");
  ASSERT_EQ(report["processes"].size(), 1u);
  kill(report["processes"][0]["pid"].get<int>(), SIGKILL);
}

// After exec the process runs another program: the old node's GCs and heap are not the new program's.
TEST(HostileCli, AfterExecTheOldNodesV8FiguresAreGone) {
  MEMLENS_REQUIRE_TRACING();
  REQUIRE_NODE(node, "22");  // process.execve: Node 22.15 and later
  TempDir dir;
  std::string script =
      "const a = []; for (let i = 0; i < 40; i++) { a.push(new Array(1e5).fill(i)); if (i % 10 == 0) "
      "globalThis.gc(); } setTimeout(() => process.execve('/bin/sleep', ['sleep', '2']), 1500);";
  Child m = Child::spawn({memlens_bin(), "run", "-q", "--interval", "0.2", "-o", dir.file("out"), "--", node,
                          "--expose-gc", "-e", script},
                         dir.path(), "m");
  EXPECT_EQ(m.wait(60s), 0) << m.stderr_text();
  json report = load_report(dir.file("out"));
  ASSERT_TRUE(report.is_object()) << m.stderr_text();
  ASSERT_EQ(report["processes"].size(), 1u);
  const json& p = report["processes"][0];
  EXPECT_EQ(p["comm"], "sleep");
  // The node part ran GCs (its timeline has heap figures); the sleep that replaced it has none.
  bool node_had_heap = false;
  for (const auto& s : p["timeline"])
    node_had_heap |= s.contains("js_heap_used_bytes") && !s["js_heap_used_bytes"].is_null();
  EXPECT_TRUE(node_had_heap) << "no heap figure while node ran: the test did not test anything";
  EXPECT_TRUE(!p.contains("gc") || p["gc"].is_null() || p["gc"]["count"] == 0) << p["gc"].dump();
  bool noted = false;
  for (const auto& n : p.value("notes", json::array()))
    noted |= contains(n.get<std::string>(), "before an exec");
  EXPECT_TRUE(noted) << p["notes"].dump();
}

// Many short processes with the default output: every one is in the report with its exit status, the
// summary prints, and memlens's own memory and CPU stay bounded.
TEST(HostileCli, ManyShortNodesWithDefaultOutput) {
  MEMLENS_REQUIRE_TRACING();
  TempDir dir;
  constexpr int kNodes = 20;
  std::string loop = "for i in $(seq " + std::to_string(kNodes) + "); do " + shell_quote(node_bin()) +
                     " -e 'process.exit(7)' & done; wait";
  Child m =
      Child::spawn({memlens_bin(), "run", "-o", dir.file("out"), "--", "bash", "-c", loop}, dir.path(), "m");
  ResourceUse use = watch_until_exit(m, 180s);
  ASSERT_EQ(use.exit_code, 0) << m.stderr_text();
  EXPECT_TRUE(contains(m.stderr_text(), "memlens summary")) << m.stderr_text();
  json report = load_report(dir.file("out"));
  ASSERT_TRUE(report.is_object());
  int nodes_exited_7 = 0;
  for (const auto& p : report["processes"])
    if (p.value("comm", "") == "node" && p.value("exit_status", -1) == 7) ++nodes_exited_7;
  EXPECT_EQ(nodes_exited_7, kNodes);
  // Bounds: a few times what this run takes here (~45 MB, ~0.3 s of CPU, most of it loading the programs
  // and planning node's probes once).
  EXPECT_LT(use.peak_rss_bytes, 150ull << 20);
  EXPECT_LT(use.cpu_s, 5.0);
  std::cout << "memlens over " << kNodes << " nodes: peak rss " << (use.peak_rss_bytes >> 20) << " MB, cpu "
            << use.cpu_s << " s\n";
}

TEST(HostileCli, BadArgumentsSayWhatIsWrong) {
  TempDir dir;
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  std::vector<Case> cases = {
      {{"attach"}, "pid is required"},
      {{"attach", "abc"}, "abc"},
      {{"attach", "1", "--bogus"}, "--bogus"},
      {{"run"}, "command is required"},
      {{"run", "--interval", "0", "--", "true"}, "--interval"},
      {{"run", "--interval", "nan", "--", "true"}, "--interval"},
      {{"fds", "1", "--watch", "-5"}, "--watch"},
      {{"frobnicate"}, "frobnicate"},
  };
  for (const auto& c : cases) {
    std::vector<std::string> argv = {memlens_bin()};
    argv.insert(argv.end(), c.args.begin(), c.args.end());
    Child m = Child::spawn(argv, dir.path(), "args");
    EXPECT_EQ(m.wait(20s), 2) << c.args[0] << ": " << m.stderr_text();
    EXPECT_TRUE(contains(m.stderr_text() + m.stdout_text(), c.message)) << m.stderr_text();
  }
}

// Two memlens on one target: each traces it fully and neither disturbs the other's probes.
TEST(HostileCli, TwoTracersOnOneTarget) {
  MEMLENS_REQUIRE_TRACING();
  TempDir dir;
  Child node = Child::spawn({node_bin(), scenario("long_running"), "--duration", "60"}, dir.path(), "node");
  ASSERT_TRUE(node.wait_for_event("ready", 20s));
  std::vector<Child> tracers;
  for (const char* out : {"a", "b"})
    tracers.push_back(Child::spawn(
        {memlens_bin(), "attach", std::to_string(node.pid()), "-q", "--duration", "5", "-o", dir.file(out)},
        dir.path(), out));
  for (auto& t : tracers) EXPECT_EQ(t.wait(60s), 0) << t.stderr_text();
  std::vector<json> procs;
  for (const char* out : {"a", "b"}) {
    json report = load_report(dir.file(out));
    ASSERT_TRUE(report.is_object());
    auto p = report_process(report, node.pid());
    ASSERT_TRUE(p);
    EXPECT_GT((*p)["timeline"].size(), 2u);
    EXPECT_GE((*p)["gc"]["count"].get<int>(), 1) << "the scenario collects garbage every 100 ms";
    procs.push_back(*p);
  }
  // The same process over the same seconds: the same GCs, but for the ones in the moments only one of
  // the two was attached.
  EXPECT_LE(std::abs(procs[0]["gc"]["count"].get<int>() - procs[1]["gc"]["count"].get<int>()), 3);
  EXPECT_EQ(kill(node.pid(), 0), 0);
}

}  // namespace
}  // namespace memlens::testing
