// memlens run by a non-root user with exactly the capabilities the README documents (CAP_BPF +
// CAP_PERFMON, + CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH for other users' processes), given as ambient
// capabilities by setpriv: it traces, with nothing refused on the way. With one missing, it stops before
// tracing with exit 3 and names the capability; `doctor` and `fds` diagnose missing privileges as privileges,
// never as a kernel that lacks a feature or a missing pid.
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <set>
#include <thread>

#include "support/harness.h"

namespace memlens::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

constexpr int kNobody = 65534;

// argv run as uid/gid 65534 with these capabilities (setpriv syntax, "+bpf,+perfmon") and no others.
std::vector<std::string> as_nobody(const std::string& caps, const std::vector<std::string>& argv) {
  std::vector<std::string> out = {"setpriv", "--reuid=" + std::to_string(kNobody),
                                  "--regid=" + std::to_string(kNobody), "--clear-groups"};
  if (caps.empty()) {
    out.push_back("--inh-caps=-all");
  } else {
    out.push_back("--inh-caps=-all," + caps);
    out.push_back("--ambient-caps=-all," + caps);
  }
  out.insert(out.end(), argv.begin(), argv.end());
  return out;
}

// A directory uid 65534 can write reports into.
std::string nobody_out_dir(const TempDir& dir) {
  chmod(dir.path().c_str(), 0755);
  std::string out = dir.file("out");
  std::filesystem::create_directory(out);
  EXPECT_EQ(chown(out.c_str(), kNobody, kNobody), 0);
  return out;
}

std::string setpriv_missing() {
  if (system("setpriv --help >/dev/null 2>&1") != 0) return "setpriv (util-linux) is not installed";
  return "";
}

#define REQUIRE_SETPRIV()                           \
  do {                                              \
    MEMLENS_REQUIRE_TRACING();                      \
    std::string why = setpriv_missing();            \
    if (!why.empty()) {                             \
      if (in_ci()) FAIL() << "CI=true and " << why; \
      GTEST_SKIP() << why;                          \
    }                                               \
  } while (0)

// Attaches to the node process for 3 s with these capabilities; checks a trace was made.
void expect_traces(const std::string& caps, pid_t node_pid, const TempDir& dir, const std::string& tag) {
  std::string out = nobody_out_dir(dir) + "/" + tag;
  Child m = Child::spawn(as_nobody(caps, {memlens_bin(), "attach", std::to_string(node_pid), "--duration",
                                          "3", "-q", "-o", out}),
                         dir.path(), tag);
  // The programs it loaded as a non-root user, to check that its exit took them all away.
  std::set<uint32_t> ours;
  for (int i = 0; i < 100 && ours.size() < 6; ++i) {
    std::this_thread::sleep_for(50ms);
    ours = programs_held_by(m.pid());
  }
  EXPECT_GE(ours.size(), 6u) << "memlens never loaded its programs";
  ASSERT_EQ(m.wait(60s), 0) << m.stderr_text();
  EXPECT_EQ(leftovers_of(m.pid(), ours, 30s), "");
  json report = load_report(out);
  EXPECT_EQ(report["stop_reason"], "duration reached");
  auto proc = report_process(report, node_pid);
  ASSERT_TRUE(proc) << report.dump().substr(0, 2000);
  EXPECT_GT((*proc)["rss_bytes"].get<double>(), 0);
  EXPECT_GE((*proc)["timeline"].size(), 2u);
  // Its maps and binaries were readable: V8's heap was found and its resident bytes attributed.
  EXPECT_GT((*proc)["breakdown"]["js_heap_bytes"].get<double>(), 0) << (*proc)["breakdown"].dump();
  EXPECT_GT((*proc)["fds"]["open"].get<int>(), 0) << (*proc)["fds"].dump();
  for (const auto& n : (*proc)["notes"])
    EXPECT_EQ(n.get<std::string>().find("ermission denied"), std::string::npos) << n;
}

TEST(HostilePrivileges, DocumentedCapabilitiesTraceAnotherUsersNode) {
  REQUIRE_SETPRIV();
  TempDir dir;
  Child node = Child::spawn({node_bin(), scenario("long_running"), "--duration", "60"}, dir.path(), "node");
  ASSERT_TRUE(node.wait_for_event("ready", 20s)) << node.stderr_text();
  expect_traces("+bpf,+perfmon,+sys_ptrace,+dac_read_search", node.pid(), dir, "root-node");
}

TEST(HostilePrivileges, BpfAndPerfmonTraceOwnNode) {
  REQUIRE_SETPRIV();
  TempDir dir;
  chmod(dir.path().c_str(), 0777);  // node's captured output is written by root before setpriv runs
  Child node = Child::spawn(as_nobody("", {node_bin(), scenario("long_running"), "--duration", "60"}),
                            dir.path(), "node");
  ASSERT_TRUE(node.wait_for_event("ready", 20s)) << node.stderr_text();
  expect_traces("+bpf,+perfmon", node.pid(), dir, "own-node");
}

// `run` as a non-root user with ambient capabilities: the command is traced, and does not inherit them.
TEST(HostilePrivileges, RunDoesNotPassItsCapabilitiesToTheCommand) {
  REQUIRE_SETPRIV();
  TempDir dir;
  std::string out = nobody_out_dir(dir) + "/run";
  Child m = Child::spawn(as_nobody("+bpf,+perfmon", {memlens_bin(), "run", "-q", "-o", out, "--", "grep",
                                                     "-E", "^Cap(Eff|Prm|Amb):", "/proc/self/status"}),
                         dir.path(), "run");
  ASSERT_EQ(m.wait(60s), 0) << m.stderr_text();
  std::string text = m.stdout_text();
  for (const char* line :
       {"CapEff:\t0000000000000000", "CapPrm:\t0000000000000000", "CapAmb:\t0000000000000000"})
    EXPECT_NE(text.find(line), std::string::npos) << line << " in:\n" << text;
  json report = load_report(out);
  EXPECT_FALSE(report["processes"].empty()) << report.dump().substr(0, 2000);
}

TEST(HostilePrivileges, MissingCapabilityIsNamedWithExit3) {
  REQUIRE_SETPRIV();
  TempDir dir;
  Child node = Child::spawn({node_bin(), scenario("long_running"), "--duration", "60"}, dir.path(), "node");
  ASSERT_TRUE(node.wait_for_event("ready", 20s)) << node.stderr_text();
  std::string out = nobody_out_dir(dir);
  struct Case {
    std::string caps;
    std::string named;
  };
  for (const Case& c :
       {Case{"", "lacks CAP_BPF and CAP_PERFMON"}, Case{"+bpf", "lacks CAP_PERFMON"},
        Case{"+perfmon,+sys_ptrace", "lacks CAP_BPF"}, Case{"+bpf,+perfmon", "without CAP_SYS_PTRACE"}}) {
    SCOPED_TRACE("capabilities: " + c.caps);
    Child m = Child::spawn(as_nobody(c.caps, {memlens_bin(), "attach", std::to_string(node.pid()),
                                              "--duration", "3", "-q", "-o", out + "/x"}),
                           dir.path(), "memlens");
    EXPECT_EQ(m.wait(60s), 3) << m.stderr_text();
    EXPECT_NE(m.stderr_text().find(c.named), std::string::npos) << m.stderr_text();
    EXPECT_NE(m.stderr_text().find("remedy"), std::string::npos) << m.stderr_text();
    EXPECT_EQ(m.stderr_text().find("BTF"), std::string::npos) << m.stderr_text();
  }
}

TEST(HostilePrivileges, DoctorSaysPrivilegesNotKernel) {
  REQUIRE_SETPRIV();
  TempDir dir;
  chmod(dir.path().c_str(), 0755);
  {
    Child d = Child::spawn(as_nobody("", {memlens_bin(), "doctor"}), dir.path(), "doctor-none");
    EXPECT_EQ(d.wait(60s), 1);
    std::string text = d.stdout_text();
    EXPECT_NE(text.find("[FAIL] privileges: uid 65534 lacks CAP_BPF and CAP_PERFMON"), std::string::npos)
        << text;
    EXPECT_EQ(text.find("not supported by this kernel"), std::string::npos) << text;
    EXPECT_NE(text.find("BPF ring buffer: cannot be probed"), std::string::npos) << text;
  }
  {
    Child d = Child::spawn(as_nobody("+bpf,+perfmon", {memlens_bin(), "doctor"}), dir.path(), "doctor-caps");
    EXPECT_EQ(d.wait(60s), 0) << d.stdout_text() << d.stderr_text();
    EXPECT_NE(d.stdout_text().find("all checks passed"), std::string::npos) << d.stdout_text();
  }
}

TEST(HostilePrivileges, FdsOfAnotherUsersProcessIsAPermissionError) {
  REQUIRE_SETPRIV();
  TempDir dir;
  chmod(dir.path().c_str(), 0755);
  Child m = Child::spawn(as_nobody("", {memlens_bin(), "fds", "1"}), dir.path(), "fds");
  EXPECT_EQ(m.wait(30s), 3) << m.stderr_text();
  EXPECT_NE(m.stderr_text().find("permission denied"), std::string::npos) << m.stderr_text();
  EXPECT_NE(m.stderr_text().find("CAP_SYS_PTRACE"), std::string::npos) << m.stderr_text();
  EXPECT_EQ(m.stderr_text().find("no process"), std::string::npos) << m.stderr_text();
}

}  // namespace
}  // namespace memlens::testing
