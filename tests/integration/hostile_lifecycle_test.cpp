// Hostile tier: process lifecycles that used to slip past memlens, checked against what the programs
// really did.
//  - New processes are held (SIGSTOP) from fork or exec until their probes are attached: a storm of
//    mmap+munmap pairs from its first instruction is counted whole, and so is every short-lived node.
//  - A process that memlens holds is released however memlens ends: SIGKILL included.
//  - What still escapes is counted, as an untraced process with its time and reason, apart from lost
//    events (docs/report-schema.md, "loss").
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "support/harness.h"

namespace memlens::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

struct Run {
  TempDir dir;
  std::optional<int> exit_code;
  json report;
  std::string stdout_text, stderr_text;
};

// memlens run -o DIR [extra] -- bash -c SCRIPT
std::unique_ptr<Run> run_script(const std::string& script, const std::vector<std::string>& extra = {"-q"},
                                std::chrono::seconds timeout = 180s) {
  auto r = std::make_unique<Run>();
  std::vector<std::string> argv = {memlens_bin(), "run", "-o", r->dir.file("out")};
  argv.insert(argv.end(), extra.begin(), extra.end());
  argv.insert(argv.end(), {"--", "bash", "-c", script});
  Child c = Child::spawn(argv, r->dir.path(), "memlens");
  r->exit_code = c.wait(timeout);
  r->report = load_report(r->dir.file("out"));
  r->stdout_text = c.stdout_text();
  r->stderr_text = c.stderr_text();
  return r;
}

std::vector<json> processes_named(const json& report, const std::string& comm) {
  std::vector<json> out;
  if (!report.is_object() || !report.contains("processes")) return out;
  for (const auto& p : report["processes"])
    if (p.value("comm", "") == comm) out.push_back(p);
  return out;
}

// /proc/PID/stat's state letter, '?' when the process is gone.
char state_of(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto close = text.rfind(')');
  if (close == std::string::npos || close + 2 >= text.size()) return '?';
  return text[close + 2];
}

std::vector<pid_t> children_of(pid_t pid) {
  std::vector<pid_t> out;
  std::error_code ec;
  for (const auto& t : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
    std::ifstream in(t.path() / "children");
    pid_t c;
    while (in >> c) out.push_back(c);
  }
  return out;
}

std::string comm_of(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/comm");
  std::string s;
  std::getline(in, s);
  return s;
}

// Three processes each doing 4 KiB mmap+munmap pairs from their first instruction, as fast as they can,
// for 3 s, with munmap probed (--unmap-probes): every pair each one made is in the report (held at fork and
// exec until their probes were on), or, if the ring buffer overflowed, counted as lost for that very process.
TEST(HostileLifecycle, StormCountsEveryMmapOfEveryProcess) {
  MEMLENS_REQUIRE_TRACING();
  std::string storm = shell_quote(test_program("mmap_storm"));
  auto r = run_script(storm + " 3 & " + storm + " 3 & " + storm + " 3; wait", {"-q", "--unmap-probes"});
  ASSERT_EQ(r->exit_code, 0) << r->stderr_text;
  ASSERT_TRUE(r->report.is_object()) << r->stderr_text;
  auto lines = json_lines(r->stdout_text);
  ASSERT_EQ(lines.size(), 3u) << r->stdout_text;
  for (const auto& line : lines) {
    int pid = line["pid"].get<int>();
    uint64_t made_mmap = line["mmap"].get<uint64_t>(), made_munmap = line["munmap"].get<uint64_t>();
    auto proc = report_process(r->report, pid);
    ASSERT_TRUE(proc) << "storm process " << pid << " is not in the report";
    const json& ev = (*proc)["events"];
    const json& loss = (*proc)["loss"];
    uint64_t mmap = ev["mmap"].get<uint64_t>(), munmap = ev["munmap"].get<uint64_t>();
    uint64_t lost = loss["events_lost"].get<uint64_t>();
    EXPECT_EQ(loss["untraced_s"], 0.0) << "pid " << pid << ": " << loss.dump();
    EXPECT_TRUE(loss["untraced_reason"].is_null()) << loss.dump();
    EXPECT_GE((*proc)["hold"]["count"].get<int>(), 1) << "pid " << pid << " was never held";
    if (lost == 0) {
      EXPECT_EQ(mmap, made_mmap) << "pid " << pid;
      EXPECT_EQ(munmap, made_munmap) << "pid " << pid;
    } else {
      // Lost events are counted by cause and per process: what was counted plus what was lost is what the
      // process made.
      EXPECT_LE(mmap, made_mmap);
      EXPECT_LE(munmap, made_munmap);
      EXPECT_EQ(mmap + munmap + lost, made_mmap + made_munmap) << "pid " << pid << ": " << loss.dump();
    }
  }
  EXPECT_EQ(r->report["loss"]["untraced_processes"], 0) << r->report["loss"].dump();
  // The per-process losses are part of the total, which names its causes.
  uint64_t by_cause = 0;
  for (const auto& [cause, n] : r->report["loss"]["events_lost_by_cause"].items())
    by_cause += n.get<uint64_t>();
  EXPECT_EQ(by_cause, r->report["loss"]["events_lost"].get<uint64_t>());
}

// Without the hold (--no-hold), the same storm escapes for a moment after fork and exec: memlens then
// says so, per process, with the time and the reason, and never as lost events.
TEST(HostileLifecycle, WithoutHoldTheEscapeIsCounted) {
  MEMLENS_REQUIRE_TRACING();
  std::string storm = shell_quote(test_program("mmap_storm"));
  auto r = run_script(storm + " 1 & " + storm + " 1; wait", {"-q", "--no-hold"});
  ASSERT_EQ(r->exit_code, 0) << r->stderr_text;
  auto lines = json_lines(r->stdout_text);
  ASSERT_EQ(lines.size(), 2u) << r->stdout_text;
  for (const auto& line : lines) {
    auto proc = report_process(r->report, line["pid"].get<int>());
    ASSERT_TRUE(proc);
    const json& loss = (*proc)["loss"];
    ASSERT_TRUE(loss["untraced_reason"].is_string()) << loss.dump();
    EXPECT_NE(loss["untraced_reason"].get<std::string>().find("--no-hold"), std::string::npos);
    EXPECT_GT(loss["untraced_s"].get<double>(), 0);
    EXPECT_EQ((*proc)["hold"]["count"], 0);
    EXPECT_LE((*proc)["events"]["mmap"].get<uint64_t>(), line["mmap"].get<uint64_t>());
  }
  EXPECT_GE(r->report["loss"]["untraced_processes"].get<int>(), 2);
  EXPECT_GT(r->report["loss"]["untraced_s"].get<double>(), 0);
  EXPECT_EQ(r->report["holds"]["enabled"], false);
}

// Tens of short-lived nodes, ten at a time: each one has its address-space and V8 probes (held until
// they were attached), where before most of them exited untraced.
TEST(HostileLifecycle, ShortLivedNodesAreAllTraced) {
  MEMLENS_REQUIRE_TRACING();
  std::string node = shell_quote(node_bin());
  auto r =
      run_script("for b in 1 2 3; do for i in 1 2 3 4 5 6 7 8 9 10; do " + node + " -e 1 & done; wait; done");
  ASSERT_EQ(r->exit_code, 0) << r->stderr_text;
  ASSERT_TRUE(r->report.is_object()) << r->stderr_text;
  auto nodes = processes_named(r->report, "node");
  EXPECT_EQ(nodes.size(), 30u);
  for (const auto& p : nodes) {
    EXPECT_GT(p["events"]["mmap"].get<uint64_t>(), 0u) << "pid " << p["pid"] << " has no address-space event";
    EXPECT_TRUE(p.contains("gc")) << "pid " << p["pid"]
                                  << " has no V8 probes: " << p.value("notes", json()).dump();
    EXPECT_EQ(p["loss"]["untraced_s"], 0.0) << p["loss"].dump();
    EXPECT_GE(p["hold"]["count"].get<int>(), 1);
  }
  EXPECT_EQ(r->report["loss"]["untraced_processes"], 0) << r->report["loss"].dump();
  EXPECT_EQ(r->report["loss"]["events_lost"], 0) << r->report["loss"].dump();
}

// memlens stopped (it cannot release anything), a child of the traced shell is held by the kernel; then
// memlens is killed: the watchdog releases the child, which runs to its end, and nothing is left attached.
TEST(HostileLifecycle, SigkillWhileHoldingReleasesTheChild) {
  MEMLENS_REQUIRE_TRACING();
  ASSERT_EQ(system("command -v bpftool >/dev/null 2>&1 || test -x /usr/sbin/bpftool"), 0);
  TempDir dir;
  std::string fifo = dir.file("go"), done = dir.file("done"), status = dir.file("status");
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  // The shell waits on the fifo (a builtin: no child yet), then forks a subshell that sleeps and leaves a
  // mark, and writes down how the subshell ended: the held child is that subshell.
  Child m = Child::spawn({memlens_bin(), "run", "-q", "--", "bash", "-c",
                          "read x < " + shell_quote(fifo) + "; (/bin/sleep 0.2; echo ok > " +
                              shell_quote(done) + "); echo $? > " + shell_quote(status)},
                         dir.path(), "memlens");
  std::set<uint32_t> ours;
  pid_t shell = 0, watchdog = 0;
  for (int i = 0; i < 200 && (ours.size() < 6 || !shell); ++i) {
    std::this_thread::sleep_for(100ms);
    ours = programs_held_by(m.pid());
    for (pid_t c : children_of(m.pid())) {
      if (comm_of(c) == "bash") shell = c;
      if (comm_of(c) == "memlens-release") watchdog = c;
    }
  }
  ASSERT_GE(ours.size(), 6u) << "memlens never loaded its programs: " << m.stderr_text();
  ASSERT_GT(shell, 0) << "the traced shell never started";
  ASSERT_GT(watchdog, 0) << "no watchdog process";
  std::this_thread::sleep_for(500ms);  // the shell's exec is released, it waits on the fifo

  m.signal(SIGSTOP);
  {
    int fd = open(fifo.c_str(), O_WRONLY);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(write(fd, "go\n", 3), 3);
    close(fd);
  }
  // The shell forks its child: the kernel holds it, and memlens, stopped, cannot release it.
  pid_t held = 0;
  for (int i = 0; i < 100 && !held; ++i) {
    std::this_thread::sleep_for(50ms);
    for (pid_t c : children_of(shell))
      if (state_of(c) == 'T') held = c;
  }
  ASSERT_GT(held, 0) << "no child of the traced shell was held";
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(state_of(held), 'T') << "the held child ran on before memlens released it";

  m.signal(SIGKILL);
  // Released by the watchdog within a few seconds, even while the kernel is still detaching memlens's
  // uprobes (a grace period each): the child is not left stopped, and finishes.
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (state_of(held) == 'T' && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(50ms);
  EXPECT_NE(state_of(held), 'T') << "the held child is still stopped after memlens's death";
  while (!std::filesystem::exists(status) && std::chrono::steady_clock::now() < deadline + 5s)
    std::this_thread::sleep_for(50ms);
  // Run to its end, not hung up (the kernel hangs up an orphaned process group that has a stopped member).
  EXPECT_TRUE(std::filesystem::exists(done)) << "the held child did not run to its end";
  std::ifstream st(status);
  std::string how;
  st >> how;
  EXPECT_EQ(how, "0") << "the held child's exit status (128 + signal if killed)";

  ASSERT_EQ(m.wait(120s), 128 + SIGKILL);
  EXPECT_EQ(leftovers_of(m.pid(), ours, 60s), "");
  // The watchdog leaves once its work is done.
  deadline = std::chrono::steady_clock::now() + 10s;
  while (kill(watchdog, 0) == 0 && comm_of(watchdog) == "memlens-release" &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(100ms);
  EXPECT_NE(comm_of(watchdog), "memlens-release") << "the watchdog is still there";
}

// A statically linked program has no C library to probe: it escapes the address-space probes for its
// whole life. memlens counts it as an untraced process, with its time and the reason, in report.json and
// in the summary, and not as lost events.
TEST(HostileLifecycle, AnEscapeIsCountedWithItsReason) {
  MEMLENS_REQUIRE_TRACING();
  std::string prog = shell_quote(test_program("static_sleeper"));
  auto r = run_script(prog + " 400; true", {});
  ASSERT_EQ(r->exit_code, 0) << r->stderr_text;
  ASSERT_TRUE(r->report.is_object()) << r->stderr_text;
  auto procs = processes_named(r->report, "static_sleeper");
  ASSERT_EQ(procs.size(), 1u);
  const json& loss = procs[0]["loss"];
  ASSERT_TRUE(loss["untraced_reason"].is_string()) << loss.dump();
  EXPECT_NE(loss["untraced_reason"].get<std::string>().find("statically linked"), std::string::npos)
      << loss.dump();
  EXPECT_TRUE(within("untraced_s vs the program's run time", loss["untraced_s"].get<double>(), 0.4, 0.5))
      << loss.dump();
  EXPECT_EQ(procs[0]["events"]["mmap"], 0);
  EXPECT_EQ(r->report["loss"]["untraced_processes"], 1) << r->report["loss"].dump();
  EXPECT_GE(r->report["loss"]["untraced_s"].get<double>(), loss["untraced_s"].get<double>());
  EXPECT_EQ(r->report["loss"]["events_lost"], 0);
  // The summary says the same, in the same words.
  EXPECT_NE(r->stderr_text.find("untraced processes: 1"), std::string::npos) << r->stderr_text;
  EXPECT_NE(r->stderr_text.find("statically linked"), std::string::npos) << r->stderr_text;
}

}  // namespace
}  // namespace memlens::testing
