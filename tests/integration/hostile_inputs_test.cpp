// Input the traced process controls, made hostile: whatever it holds, memlens must do bounded work per
// refresh and still finish its trace on time with its report. Each run is measured from outside: wall
// time, and CPU time and peak RSS from the kernel's accounting of the memlens child (wait4).
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <thread>

#include "support/harness.h"

namespace memlens::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

struct Measured {
  std::optional<int> exit_code;  // nullopt: killed at the timeout
  double wall_s = 0;
  double cpu_s = 0;         // user + system
  double peak_rss_mib = 0;  // ru_maxrss: the child's VmHWM
  std::string stderr_text;
};

Measured run_measured(const std::vector<std::string>& argv, const std::string& dir, const std::string& tag,
                      std::chrono::seconds timeout) {
  Measured m;
  std::string out = dir + "/" + tag + ".stdout", err = dir + "/" + tag + ".stderr";
  auto start = std::chrono::steady_clock::now();
  pid_t pid = fork();
  if (pid == 0) {
    int o = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int e = open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (o < 0 || e < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0) _exit(125);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execvp(args[0], args.data());
    _exit(127);
  }
  EXPECT_GT(pid, 0);
  if (pid <= 0) return m;
  int status = 0;
  rusage ru{};
  for (;;) {
    pid_t r = wait4(pid, &status, WNOHANG, &ru);
    if (r == pid) {
      m.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      break;
    }
    if (std::chrono::steady_clock::now() - start > timeout) {
      kill(pid, SIGKILL);
      wait4(pid, &status, 0, &ru);
      break;
    }
    std::this_thread::sleep_for(20ms);
  }
  m.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  m.cpu_s = static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
            static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
  m.peak_rss_mib = static_cast<double>(ru.ru_maxrss) / 1024.0;
  std::ifstream in(err);
  m.stderr_text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  return m;
}

// The perf map memlens reads for a process, removed however the test ends.
struct PlantedFile {
  std::string path;
  ~PlantedFile() { std::remove(path.c_str()); }
};

// A 2 GiB perf map (sparse: junk, then zeros) without a single newline, planted for a node process that
// is not writing one itself. A reader that waits for a newline within its total bound reads those 64 MiB
// again at every refresh (5 per second): seconds of CPU and a 64 MiB buffer for a 5 s trace. The same trace
// of the same process without the file is the reference: the hostile file may cost little more than it.
TEST(HostileInputs, HugePerfMapWithoutNewlineCostsBoundedWork) {
  MEMLENS_REQUIRE_TRACING();
  TempDir dir;
  Child node = Child::spawn({node_bin(), scenario("long_running"), "--duration", "120"}, dir.path(), "node");
  ASSERT_TRUE(node.wait_for_event("ready", 20s)) << node.stderr_text();
  PlantedFile map{"/tmp/perf-" + std::to_string(node.pid()) + ".map"};
  std::remove(map.path.c_str());
  auto attach = [&](const std::string& out) -> std::vector<std::string> {
    return {memlens_bin(), "attach",     std::to_string(node.pid()), "--duration", "5", "-q",
            "-o",          dir.file(out)};
  };

  Measured reference = run_measured(attach("reference"), dir.path(), "reference", 60s);
  ASSERT_EQ(reference.exit_code, 0) << reference.stderr_text;

  {
    std::ofstream f(map.path, std::ios::binary);
    std::string junk(1 << 20, '\0');
    for (size_t i = 0; i < junk.size(); ++i) junk[i] = static_cast<char>('!' + (i * 7919) % 90);  // no '\n'
    f << junk;
  }
  ASSERT_EQ(truncate(map.path.c_str(), 2ll << 30), 0);
  Measured hostile = run_measured(attach("hostile"), dir.path(), "hostile", 60s);
  std::printf("reference: %.2f s wall, %.2f s CPU, %.1f MiB peak RSS\n", reference.wall_s, reference.cpu_s,
              reference.peak_rss_mib);
  std::printf("2 GiB perf map without newline: %.2f s wall, %.2f s CPU, %.1f MiB peak RSS\n", hostile.wall_s,
              hostile.cpu_s, hostile.peak_rss_mib);
  ASSERT_EQ(hostile.exit_code, 0) << hostile.stderr_text;
  // Margins for a shared 2-core machine, well below what an unbounded reader costs (measured: +3 s wall,
  // +3.8 s CPU, +42 MiB).
  EXPECT_LT(hostile.wall_s, reference.wall_s + 2.0);
  EXPECT_LT(hostile.cpu_s, reference.cpu_s + 1.5);
  EXPECT_LT(hostile.peak_rss_mib, reference.peak_rss_mib + 32.0);

  json report = load_report(dir.file("hostile"));
  EXPECT_EQ(report["stop_reason"], "duration reached");
  auto proc = report_process(report, node.pid());
  ASSERT_TRUE(proc);
  // The user learns why JS frames have no names.
  bool noted = false;
  for (const auto& n : (*proc)["notes"])
    if (n.get<std::string>().find("has no valid line") != std::string::npos &&
        n.get<std::string>().find(map.path) != std::string::npos)
      noted = true;
  EXPECT_TRUE(noted) << (*proc)["notes"].dump(2);
}

// The perf map replaced mid-trace (here by a file with nothing valid in it) while the process keeps
// running code V8 described in the old one: the names learned from the old file still name the frames
// that point into it. Emptying the map at the replacement would leave every JS frame of the run unnamed.
TEST(HostileInputs, PerfMapReplacedMidTraceKeepsTheNamesLearned) {
  MEMLENS_REQUIRE_TRACING();
  TempDir dir;
  const std::string function = "allocateReportBuffers";  // the scenario's one allocating function
  std::string out = dir.file("out");
  // Names from the perf map only (MEMLENS_JS_NAMES=0): V8's metadata would name the frames without it.
  Child m = Child::spawn(
      {"/usr/bin/env", "MEMLENS_JS_NAMES=0", memlens_bin(), "run", "-q", "--no-fds", "--perf-map",
       "--interval", "0.5", "-o", out, "--", node_bin(), scenario("stacks_buffers"), "--duration", "7"},
      dir.path(), "memlens");
  auto ready = m.wait_for_event("ready", 30s);
  ASSERT_TRUE(ready) << m.stderr_text();
  int pid = (*ready)["pid"].get<int>();
  PlantedFile map{"/tmp/perf-" + std::to_string(pid) + ".map"}, old{map.path + ".old"};
  // Long enough for V8 to compile the function and for memlens to read its entries (every 200 ms).
  std::this_thread::sleep_for(3s);
  ASSERT_EQ(std::rename(map.path.c_str(), old.path.c_str()), 0) << "node wrote no perf map at " << map.path;
  std::ofstream(map.path) << "not a perf map line\n";
  ASSERT_EQ(m.wait(60s), 0) << m.stderr_text();

  FoldedFile f = read_folded(out + "/array_buffers.folded", function);
  EXPECT_FALSE(f.malformed);
  EXPECT_GT(f.lines, 0u);
  EXPECT_GT(f.lines_with_function, 0u) << "no allocation stack names " << function;
}

}  // namespace
}  // namespace memlens::testing
