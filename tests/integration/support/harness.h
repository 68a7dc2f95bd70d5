// Support for the integration tests: they run the real memlens binary against real node processes and
// compare its report with what the kernel and Node say about themselves in the same run.
#pragma once

#include <gtest/gtest.h>
#include <sys/types.h>

#include <chrono>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace memlens::testing {

// Skips the test when root, BTF or node are missing, unless CI=true, where a missing capability fails.
#define MEMLENS_REQUIRE_TRACING()                                        \
  do {                                                                   \
    std::string why_ = ::memlens::testing::missing_tracing_capability(); \
    if (!why_.empty()) {                                                 \
      if (::memlens::testing::in_ci()) FAIL() << "CI=true and " << why_; \
      GTEST_SKIP() << why_;                                              \
    }                                                                    \
  } while (0)

// Skips (fails under CI=true) when the Node build of `target` ("18" .. "24", "libnode") cannot be had;
// else declares `var` as the path of its runnable node.
#define REQUIRE_NODE(var, target)                                        \
  std::string var;                                                       \
  do {                                                                   \
    std::string why_;                                                    \
    var = ::memlens::testing::cached_node(target, why_);                 \
    if (var.empty()) {                                                   \
      if (::memlens::testing::in_ci()) FAIL() << "CI=true and " << why_; \
      GTEST_SKIP() << why_;                                              \
    }                                                                    \
  } while (0)

bool in_ci();
std::string missing_tracing_capability();  // "" when root, BTF and node are present

std::string memlens_bin();
std::string source_dir();
std::string scenario(const std::string& name);      // tests/scenarios/<name>.js
std::string node_bin();                             // node from PATH (or MEMLENS_TEST_NODE)
std::string test_program(const std::string& name);  // a program built from tests/programs/<name>.c
// The runnable node of a cache target ("18" .. "24", or "libnode") of scripts/fetch-node.sh's cache
// ($MEMLENS_NODE_CACHE, else <repo>/.cache/node), fetched when missing. Empty with the reason in why when it
// cannot be had.
std::string cached_node(const std::string& target, std::string& why);

// A fresh temporary directory, removed by the destructor.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// A child process with stdout and stderr captured to files.
class Child {
 public:
  static Child spawn(const std::vector<std::string>& argv, const std::string& capture_dir,
                     const std::string& tag);
  Child() = default;
  Child(Child&&) noexcept;
  Child& operator=(Child&&) noexcept;
  ~Child();  // kills and reaps a child still running

  pid_t pid() const { return pid_; }
  // Waits for exit up to timeout; returns the decoded exit status (code, or 128+signal), nullopt on timeout.
  std::optional<int> wait(std::chrono::milliseconds timeout);
  void signal(int sig);
  std::string stdout_text() const;
  std::string stderr_text() const;
  // Waits until stdout has a JSON line with "event": event; returns it.
  std::optional<nlohmann::json> wait_for_event(const std::string& event, std::chrono::milliseconds timeout);

 private:
  pid_t pid_ = -1;
  std::string out_path_, err_path_;
  std::optional<int> status_;
};

// What a memlens run cost, watched from outside while it ran: its exit status, the peak of its resident
// memory (VmHWM) and the CPU time it had used when last seen (user + system).
struct ResourceUse {
  std::optional<int> exit_code;
  uint64_t peak_rss_bytes = 0;
  double cpu_s = 0;
};
ResourceUse watch_until_exit(Child& child, std::chrono::milliseconds timeout);

// All JSON lines of a scenario's stdout (non-JSON lines are ignored).
std::vector<nlohmann::json> json_lines(const std::string& text);
std::optional<nlohmann::json> last_event(const std::vector<nlohmann::json>& lines, const std::string& event,
                                         std::optional<int> pid = std::nullopt);

// The pid of the scenario process that printed `line`: its own "pid", or that of the "ready" line with
// the same "tag" (child processes tag their lines).
int pid_of(const std::vector<nlohmann::json>& lines, const nlohmann::json& line);

nlohmann::json load_report(const std::string& dir);
// The process entry of the report with this pid.
std::optional<nlohmann::json> report_process(const nlohmann::json& report, int pid);

// |actual - expected| <= tolerance * expected, with a message naming both.
::testing::AssertionResult within(const char* what, double actual, double expected, double tolerance);

// A shell command's exit code and its stdout and stderr together.
struct CommandResult {
  int exit_code = -1;
  std::string output;
};
CommandResult run_shell(const std::string& cmd);
std::string shell_quote(const std::string& s);

// Why the Node-side checkers of tests/html (pprof-format, playwright-core, chromium) cannot run, or "".
std::string checkers_missing();

// A <kind>.pb.gz decoded by an implementation independent of memlens's (tests/html/pprof-summary.js):
// {"sample_types", "totals" (decimal strings, per sample type), "samples", "matching": the samples with
// a frame whose function contains `function`}. Null (and a test failure) when it does not decode.
nlohmann::json pprof_summary(const std::string& path, const std::string& function = "");

// A <kind>.folded file read back: the sum of its values, its lines, those naming `function`.
struct FoldedFile {
  long double total = 0;
  size_t lines = 0;
  size_t lines_with_function = 0;
  bool malformed = false;
};
FoldedFile read_folded(const std::string& path, const std::string& function = "");

// The programs of a memlens, opened by the test so that their figures stay readable after memlens exits.
class HeldPrograms {
 public:
  explicit HeldPrograms(const std::set<uint32_t>& ids);
  ~HeldPrograms();
  HeldPrograms(const HeldPrograms&) = delete;
  HeldPrograms& operator=(const HeldPrograms&) = delete;

  struct Runs {
    std::string name;
    uint64_t count = 0;  // run_cnt (counted while BPF run-time statistics are on)
  };
  std::map<uint32_t, Runs> runs() const;
  size_t size() const { return fds_.size(); }

 private:
  std::map<uint32_t, int> fds_;
};

// Ids of the BPF programs a process holds open (its bpf-prog fds), from /proc/PID/fdinfo.
std::set<uint32_t> programs_held_by(pid_t pid);
// What memlens (pid, holding these programs while it ran) left in the kernel after it exited: programs
// still loaded, links, tracefs probe definitions. "" when nothing is left within grace.
std::string leftovers_of(pid_t memlens_pid, const std::set<uint32_t>& programs,
                         std::chrono::milliseconds grace);

}  // namespace memlens::testing
