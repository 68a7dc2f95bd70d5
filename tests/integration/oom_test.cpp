// The kernel's OOM killer ends a traced node in a memory cgroup with a limit: memlens says so as it
// happens, names the category that grew, keeps running, and its report agrees with the cgroup's own
// OOM-kill counter. The cgroup is made by the test on whichever hierarchy holds the memory controller.
#include <signal.h>
#include <unistd.h>

#include <fstream>
#include <thread>

#include "support/cgroup_support.h"
#include "support/harness.h"

namespace memlens::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

struct Leak {
  const char* name;
  const char* script;  // grows about 16 MB/s
  const char* category;
};

class OomKill : public ::testing::TestWithParam<Leak> {};

TEST_P(OomKill, IsReportedWithTheCategoryThatGrew) {
  MEMLENS_REQUIRE_TRACING();
  TempDir dir;
  LimitedCgroup cgroup("memlens-oom-test-" + std::to_string(getpid()), 192ull << 20);
  // The shell puts itself in the cgroup, then becomes node: the whole command runs under the limit.
  std::string command = "echo $$ > " + cgroup.dir() + "/cgroup.procs && exec " + shell_quote(node_bin()) +
                        " -e " + shell_quote(GetParam().script);
  Child m = Child::spawn(
      {memlens_bin(), "run", "--interval", "0.5", "-o", dir.file("out"), "--", "sh", "-c", command},
      dir.path(), "m");
  auto rc = m.wait(120s);
  ASSERT_TRUE(rc.has_value()) << "node was never killed: " << m.stderr_text();
  EXPECT_EQ(*rc, 128 + SIGKILL) << m.stderr_text();
  ASSERT_EQ(cgroup.oom_kills(), 1u) << "the kernel's own count of OOM kills in the cgroup";
  EXPECT_NE(m.stderr_text().find("killed by the OOM killer"), std::string::npos) << m.stderr_text();
  json report = load_report(dir.file("out"));
  ASSERT_TRUE(report.is_object()) << m.stderr_text();
  ASSERT_EQ(report["processes"].size(), 1u);
  const json& p = report["processes"][0];
  ASSERT_TRUE(p.contains("oom_kill")) << p.dump(1).substr(0, 2000);
  const json& k = p["oom_kill"];
  EXPECT_NE(k["scope"].get<std::string>().find("memlens-oom-test-"), std::string::npos) << k.dump();
  EXPECT_EQ(k["limit_bytes"], 192ull << 20);
  EXPECT_EQ(k["grew_most"], GetParam().category) << k.dump();
  EXPECT_EQ(p["exit_status"], 128 + SIGKILL);
  // The kernel's mark decides where memlens could attach its probe; either way the cgroup's own counter
  // rose (checked above), so the scope was counted, not inferred.
  bool marks = false;
  for (const auto& probe : report["probes"]["attached"]) marks |= probe == "oom:mark_victim";
  EXPECT_EQ(k["decided_by"], marks ? "kernel" : "counters") << k.dump();
  EXPECT_EQ(k["scope_counted"], true) << k.dump();
}

INSTANTIATE_TEST_SUITE_P(
    Leaks, OomKill,
    ::testing::Values(
        Leak{"buffers", "const a = []; setInterval(() => { a.push(Buffer.alloc(2 << 20, 1)); }, 125);",
             "array_buffers"},
        Leak{"js_objects",
             "const a = []; setInterval(() => { for (let i = 0; i < 20000; i++) a.push({ i, s: 'x' + i, "
             "n: [i, i + 1, i + 2] }); }, 125);",
             "js_heap"}),
    [](const ::testing::TestParamInfo<Leak>& info) { return std::string(info.param.name); });

// The OOM killer ends another process of the same cgroup (one memlens does not trace), then a user's
// `kill -9` ends the traced node: a SIGKILL with the cgroup's OOM-kill counter risen since tracking began.
// That is no OOM kill of the node. Two seconds later, the counters alone tell (the node's baseline has
// moved past the sibling's kill); a tenth of a second later, only the kernel's mark of the OOM killer's
// victim on the exit event does (tracepoint oom:mark_victim with the victim's task: Linux 6.8+).
struct SiblingThenUser {
  const char* name;
  std::chrono::milliseconds wait;
};

class OomKillOfASibling : public ::testing::TestWithParam<SiblingThenUser> {};

TEST_P(OomKillOfASibling, ThenAUsersSigkillIsNotReportedAsOne) {
  MEMLENS_REQUIRE_TRACING();
  TempDir dir;
  LimitedCgroup cgroup("memlens-oom-sibling-" + std::to_string(getpid()), 192ull << 20);
  std::string join =
      "echo $$ > " + cgroup.dir() + "/cgroup.procs && exec " + shell_quote(node_bin()) + " -e ";
  Child m = Child::spawn({memlens_bin(), "run", "--interval", "0.5", "-o", dir.file("out"), "--", "sh", "-c",
                          join + shell_quote("setInterval(() => {}, 1000);")},
                         dir.path(), "m");
  // The traced node, once it is in the cgroup and running node.
  pid_t traced = 0;
  for (int i = 0; i < 100 && traced == 0; ++i) {
    std::this_thread::sleep_for(100ms);
    std::ifstream procs(cgroup.dir() + "/cgroup.procs");
    pid_t pid = 0;
    std::ifstream comm;
    if (procs >> pid) comm.open("/proc/" + std::to_string(pid) + "/comm");
    std::string name;
    if (comm >> name && name.rfind("node", 0) == 0) traced = pid;
  }
  ASSERT_NE(traced, 0) << "the traced node never joined the cgroup: " << m.stderr_text();
  std::this_thread::sleep_for(2s);  // traced, sampled
  Child sibling = Child::spawn(
      {"sh", "-c",
       join + shell_quote("const a = []; setInterval(() => { a.push(Buffer.alloc(2 << 20, 1)); }, 125);")},
      dir.path(), "sibling");
  ASSERT_EQ(sibling.wait(120s), 128 + SIGKILL) << "the sibling was never OOM-killed";
  ASSERT_EQ(cgroup.oom_kills(), 1u) << "the kernel's own count of OOM kills in the cgroup";
  ASSERT_EQ(kill(traced, 0), 0) << "the OOM killer chose the traced node, not the sibling";
  std::this_thread::sleep_for(GetParam().wait);
  ASSERT_EQ(kill(traced, SIGKILL), 0);
  EXPECT_EQ(m.wait(30s), 128 + SIGKILL) << m.stderr_text();
  EXPECT_EQ(cgroup.oom_kills(), 1u) << "a user's kill is no OOM kill";
  json report = load_report(dir.file("out"));
  ASSERT_TRUE(report.is_object()) << m.stderr_text();
  std::string skipped = report["probes"]["skipped"].dump();
  std::string why = skipped.find("oom:mark_victim") == std::string::npos
                        ? ""
                        : " (this kernel's oom:mark_victim is not used: " + skipped + ")";
  EXPECT_EQ(m.stderr_text().find("killed by the OOM killer"), std::string::npos) << m.stderr_text() << why;
  ASSERT_EQ(report["processes"].size(), 1u);
  const json& p = report["processes"][0];
  EXPECT_EQ(p["exit_status"], 128 + SIGKILL);
  EXPECT_FALSE(p.contains("oom_kill")) << p["oom_kill"].dump() << why;
}

INSTANTIATE_TEST_SUITE_P(Waits, OomKillOfASibling,
                         ::testing::Values(SiblingThenUser{"after_four_samples", 2000ms},
                                           SiblingThenUser{"at_once", 100ms}),
                         [](const ::testing::TestParamInfo<SiblingThenUser>& info) {
                           return std::string(info.param.name);
                         });

// Under `top`, the OOM kill of a node memlens did not start is shown with its last figures.
TEST(OomKillUnderTop, ANodeKilledWhileTheViewRunsIsListed) {
  MEMLENS_REQUIRE_TRACING();
  TempDir dir;
  LimitedCgroup cgroup("memlens-oom-top-" + std::to_string(getpid()), 160ull << 20);
  Child top = Child::spawn({memlens_bin(), "top", "0.5", "120"}, dir.path(), "top");
  std::this_thread::sleep_for(1s);
  std::string command = "echo $$ > " + cgroup.dir() + "/cgroup.procs && exec " + shell_quote(node_bin()) +
                        " -e 'const a = []; setInterval(() => { a.push(Buffer.alloc(1 << 20, 1)); }, 100);'";
  Child node = Child::spawn({"sh", "-c", command}, dir.path(), "node");
  auto rc = node.wait(120s);
  ASSERT_EQ(rc, 128 + SIGKILL);
  ASSERT_EQ(cgroup.oom_kills(), 1u);
  std::this_thread::sleep_for(1500ms);  // the next tables
  top.signal(SIGINT);
  EXPECT_EQ(top.wait(20s), 0);
  std::string out = top.stdout_text();
  auto at = out.rfind("last OOM kills:");
  ASSERT_NE(at, std::string::npos) << out.substr(out.size() > 3000 ? out.size() - 3000 : 0);
  std::string kills = out.substr(at, out.find("memlens top", at) - at);
  EXPECT_NE(kills.find("pid " + std::to_string(node.pid()) + " "), std::string::npos) << kills;
  EXPECT_NE(kills.find("limit 160.0 MiB"), std::string::npos) << kills;
}

}  // namespace
}  // namespace memlens::testing
