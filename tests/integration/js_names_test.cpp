// JS frames named from V8's postmortem metadata, without a perf map: `memlens attach` to
// tests/scenarios/js_named_mmap_leak.js started without any perf-map flag. The scenario says which function
// leaks (its `ready` line: the function's name and __filename) and the script's source says the line it
// starts on. That function, its script and line must be on the stacks of the mmap_growth profile (V8 maps
// each large array from the function's frame) and of the page_faults profile (sampled with
// --fault-sample-period), on Node 18 (official and Debian's libnode), 20, 22 and 24; Node 20 also inside
// its own PID and mount namespaces (as in a container: memlens reads it through /proc/PID/root, its inner
// pid is 1). Started with --perf-basic-prof, the names V8's perf map gives the same frames must agree with
// the metadata's (the report says how many frames both named, and how many agree).
// One short attach per Node build: each test traces its own node for 3 s.
#include <fstream>
#include <regex>
#include <string>

#include "support/harness.h"

namespace memlens::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

struct Attached {
  std::string out;  // memlens's output directory
  std::string function, script;
  int line = 0;  // where the function starts in the script (1-based), from its source
  std::vector<std::string> notes;
  std::string problem;  // why the run could not be checked
};

int line_of(const std::string& script, const std::string& function) {
  std::ifstream in(script);
  std::string l;
  for (int n = 1; std::getline(in, l); ++n)
    if (l.find("function " + function + "(") != std::string::npos) return n;
  return 0;
}

// Starts the scenario with node (prefix: wrapper argv before it, extra: node flags), attaches memlens for
// a few seconds and reads the report back.
Attached attach_to_scenario(TempDir& dir, const std::string& node, const std::vector<std::string>& prefix,
                            const std::vector<std::string>& extra) {
  Attached a;
  std::vector<std::string> argv = prefix;
  argv.push_back(node);
  argv.insert(argv.end(), extra.begin(), extra.end());
  for (const char* s : {"--duration", "30"}) argv.emplace_back(s);
  argv.insert(argv.end() - 2, scenario("js_named_mmap_leak"));
  Child target = Child::spawn(argv, dir.path(), "node");
  auto ready = target.wait_for_event("ready", 30s);
  if (!ready) {
    a.problem = "the scenario did not start: " + target.stderr_text();
    return a;
  }
  a.function = (*ready)["function"];
  a.script = (*ready)["script"];
  a.line = line_of(a.script, a.function);
  pid_t pid = target.pid();
  if (!prefix.empty()) {  // node is the wrapper's child
    auto r = run_shell("pgrep -P " + std::to_string(target.pid()));
    if (r.exit_code != 0) {
      a.problem = "no child of the wrapper: " + r.output;
      return a;
    }
    pid = std::stoi(r.output);
  }
  a.out = dir.file("out");
  Child m = Child::spawn({memlens_bin(), "attach", std::to_string(pid), "--duration", "3", "-q", "--no-fds",
                          "--fault-sample-period", "64", "-o", a.out},
                         dir.path(), "memlens");
  if (auto rc = m.wait(90s); rc != 0) {
    a.problem = (rc ? "memlens exited with " + std::to_string(*rc) : std::string("memlens timed out")) +
                ": " + m.stderr_text();
    return a;
  }
  json report = load_report(a.out);
  auto proc = report_process(report, pid);
  if (!proc) {
    a.problem = "the scenario's process is not in the report";
    return a;
  }
  if (proc->contains("notes"))
    for (const auto& n : (*proc)["notes"]) a.notes.push_back(n.get<std::string>());
  return a;
}

std::string joined(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += x + "\n";
  return s;
}

// The leaking function, with its script and line, on the stacks of both profiles.
void expect_named(const Attached& a) {
  ASSERT_TRUE(a.problem.empty()) << a.problem;
  ASSERT_FALSE(a.function.empty());
  ASSERT_GT(a.line, 0) << a.function << " not found in " << a.script;
  bool noted = false;
  for (const auto& n : a.notes) noted |= n.find("JS frames named from V8 metadata") != std::string::npos;
  EXPECT_TRUE(noted) << joined(a.notes);
  std::string frame = a.function + " " + a.script + ":" + std::to_string(a.line) + " [js]";
  for (const char* kind : {"mmap_growth", "page_faults"}) {
    SCOPED_TRACE(kind);
    std::string path = a.out + "/" + kind + ".folded";
    FoldedFile f = read_folded(path, frame);
    EXPECT_FALSE(f.malformed) << path;
    EXPECT_GT(f.lines_with_function, 0u)
        << "no stack of " << kind << " has the frame `" << frame << "`; notes:\n"
        << joined(a.notes) << run_shell("head -c 3000 " + path).output;
  }
}

TEST(JsNames, Node20InItsOwnPidAndMountNamespaces) {
  MEMLENS_REQUIRE_TRACING();
  TempDir dir;
  expect_named(attach_to_scenario(dir, node_bin(), {"unshare", "--pid", "--fork", "--mount-proc"}, {}));
}

TEST(JsNames, Node22) {
  MEMLENS_REQUIRE_TRACING();
  REQUIRE_NODE(node, "22");
  TempDir dir;
  expect_named(attach_to_scenario(dir, node, {}, {}));
}

TEST(JsNames, Node24) {
  MEMLENS_REQUIRE_TRACING();
  REQUIRE_NODE(node, "24");
  TempDir dir;
  expect_named(attach_to_scenario(dir, node, {}, {}));
}

TEST(JsNames, Node18) {
  MEMLENS_REQUIRE_TRACING();
  REQUIRE_NODE(node, "18");
  TempDir dir;
  expect_named(attach_to_scenario(dir, node, {}, {}));
}

TEST(JsNames, DebianLibnode) {
  MEMLENS_REQUIRE_TRACING();
  REQUIRE_NODE(node, "libnode");
  TempDir dir;
  expect_named(attach_to_scenario(dir, node, {}, {}));
}

// With a perf map too, the perf map names the JIT frames (it wins) and memlens compares: every frame both
// name must name the same function, script and line.
TEST(JsNames, AgreeWithThePerfMapOfTheSameProcess) {
  MEMLENS_REQUIRE_TRACING();
  TempDir dir;
  Attached a = attach_to_scenario(dir, node_bin(), {}, {"--perf-basic-prof"});
  ASSERT_TRUE(a.problem.empty()) << a.problem;
  std::smatch m;
  std::string note;
  for (const auto& n : a.notes)
    if (n.find("JS frames named from V8 metadata") != std::string::npos) note = n;
  static const std::regex counts("of ([0-9]+) frames the perf map names too, ([0-9]+) agree");
  ASSERT_TRUE(std::regex_search(note, m, counts)) << joined(a.notes);
  long compared = std::stol(m[1]), agreed = std::stol(m[2]);
  EXPECT_GT(compared, 0);
  EXPECT_EQ(agreed, compared) << note;
  // The perf map's own name for the leaking function is on the stacks.
  FoldedFile f = read_folded(a.out + "/page_faults.folded", a.function + " " + a.script);
  EXPECT_GT(f.lines_with_function, 0u);
}

}  // namespace
}  // namespace memlens::testing
