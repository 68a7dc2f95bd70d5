// `memlens top`: every Node process of the host, checked against the kernel's own figures (VmRSS, NSpid,
// the cgroup the test made), as a plain table and as a live view in a real terminal (tmux).
#include <bpf/bpf.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <thread>

#include "support/harness.h"

namespace memlens::testing {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

struct TopLine {
  int pid = 0, ns_pid = 0;
  std::string container, command, rss, limit;
  // The V8 columns (after the /proc ones): JS heap used after GC, committed, ArrayBuffers, native, code,
  // GC time share, verdict.
  std::string js_heap, js_committed, array_buffers, native, code, gc_share, verdict;
};

std::string trim(std::string s) {
  while (!s.empty() && s.back() == ' ') s.pop_back();
  while (!s.empty() && s.front() == ' ') s.erase(0, 1);
  return s;
}

// The rows of a plain table, by pid (columns at fixed widths: PID NSPID CONTAINER COMMAND RSS ... LIMIT).
std::map<int, TopLine> parse_table(const std::string& text) {
  std::map<int, TopLine> rows;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.size() < 110 || line.rfind("memlens", 0) == 0 || line.find("NSPID") != std::string::npos)
      continue;
    TopLine r;
    try {
      r.pid = std::stoi(line.substr(0, 7));
      r.ns_pid = std::stoi(line.substr(8, 7));
    } catch (...) {
      continue;
    }
    r.container = trim(line.substr(16, 12));
    r.command = trim(line.substr(29, 28));
    r.rss = trim(line.substr(58, 10));
    r.limit = trim(line.substr(104, 10));
    if (line.size() >= 208) {
      r.js_heap = trim(line.substr(146, 10));
      r.js_committed = trim(line.substr(157, 10));
      r.array_buffers = trim(line.substr(168, 10));
      r.native = trim(line.substr(179, 10));
      r.code = trim(line.substr(190, 10));
      r.gc_share = trim(line.substr(201, 5));
      r.verdict = trim(line.substr(207));
    }
    rows[r.pid] = r;
  }
  return rows;
}

double mib_of(const std::string& text) {
  double v = std::stod(text);
  if (text.find("GiB") != std::string::npos) return v * 1024;
  if (text.find("KiB") != std::string::npos) return v / 1024;
  return v;
}

double vm_rss_mib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stod(line.substr(6)) / 1024;
  return 0;
}

// A memory cgroup named as docker names its containers, with a limit, removed with the test.
class RuntimeStyleCgroup {
 public:
  static constexpr const char* kId = "5e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7";
  explicit RuntimeStyleCgroup(uint64_t limit_bytes) {
    if (fs::exists("/sys/fs/cgroup/memory/memory.limit_in_bytes")) {
      dir_ = std::string("/sys/fs/cgroup/memory/docker/") + kId;
      limit_file_ = "memory.limit_in_bytes";
    } else if (fs::exists("/sys/fs/cgroup/cgroup.controllers")) {
      dir_ = std::string("/sys/fs/cgroup/system.slice/docker-") + kId + ".scope";
      limit_file_ = "memory.max";
    }
    std::error_code ec;
    fs::create_directories(dir_, ec);
    std::ofstream(dir_ + "/" + limit_file_) << limit_bytes;
  }
  ~RuntimeStyleCgroup() {
    std::error_code ec;
    for (int i = 0; i < 50 && fs::exists(dir_) && rmdir(dir_.c_str()) != 0; ++i)
      std::this_thread::sleep_for(100ms);
    if (dir_.find("/docker/") != std::string::npos) rmdir(fs::path(dir_).parent_path().c_str());
  }
  bool enter(pid_t pid) {
    std::ofstream(dir_ + "/cgroup.procs") << pid;
    std::ifstream in("/proc/" + std::to_string(pid) + "/cgroup");
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    return text.find(kId) != std::string::npos;
  }

 private:
  std::string dir_, limit_file_;
};

TEST(Top, OneTableListsEveryNodeWithTheKernelsFigures) {
  MEMLENS_REQUIRE_TRACING();
  TempDir dir;
  RuntimeStyleCgroup cgroup(768ull << 20);  // before the processes: removed after they are gone
  Child plain = Child::spawn({node_bin(), scenario("long_running"), "--duration", "60"}, dir.path(), "plain");
  // In its own PID and mount namespaces, as in a container: node is pid 1 there.
  Child unshared = Child::spawn({"unshare", "--pid", "--fork", "--mount-proc", node_bin(),
                                 scenario("long_running"), "--duration", "60", "--mb", "48"},
                                dir.path(), "unshared");
  Child contained = Child::spawn({node_bin(), scenario("long_running"), "--duration", "60", "--mb", "64"},
                                 dir.path(), "contained");
  ASSERT_TRUE(plain.wait_for_event("ready", 20s));
  ASSERT_TRUE(unshared.wait_for_event("ready", 20s));
  ASSERT_TRUE(contained.wait_for_event("ready", 20s));
  ASSERT_TRUE(cgroup.enter(contained.pid()));
  // The node inside the namespace is unshare's child.
  auto r = run_shell("pgrep -P " + std::to_string(unshared.pid()));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  pid_t inner_node = std::stoi(r.output);

  Child top = Child::spawn({memlens_bin(), "top", "1", "1"}, dir.path(), "top");
  ASSERT_EQ(top.wait(60s), 0) << top.stderr_text();
  auto rows = parse_table(top.stdout_text());
  for (pid_t pid : {plain.pid(), inner_node, contained.pid()}) {
    ASSERT_TRUE(rows.count(pid)) << "pid " << pid << " missing from:\n" << top.stdout_text();
    EXPECT_TRUE(within("RSS", mib_of(rows[pid].rss), vm_rss_mib(pid), 0.05)) << top.stdout_text();
    EXPECT_NE(rows[pid].command.find("long_running"), std::string::npos) << rows[pid].command;
  }
  EXPECT_EQ(rows[plain.pid()].ns_pid, plain.pid());
  EXPECT_EQ(rows[inner_node].ns_pid, 1) << top.stdout_text();
  EXPECT_EQ(rows[contained.pid()].container, std::string(RuntimeStyleCgroup::kId).substr(0, 12))
      << top.stdout_text();
  EXPECT_EQ(rows[contained.pid()].limit, "768.0 MiB") << top.stdout_text();
  EXPECT_EQ(rows[plain.pid()].container, "-");

  // Filters: one pid, one container.
  Child one =
      Child::spawn({memlens_bin(), "top", "0.2", "1", "-p", std::to_string(plain.pid())}, dir.path(), "one");
  ASSERT_EQ(one.wait(30s), 0);
  auto only = parse_table(one.stdout_text());
  EXPECT_EQ(only.size(), 1u);
  EXPECT_TRUE(only.count(plain.pid()));
  Child box = Child::spawn({memlens_bin(), "top", "0.2", "1", "--container", "5e1f2a3b"}, dir.path(), "box");
  ASSERT_EQ(box.wait(30s), 0);
  auto boxed = parse_table(box.stdout_text());
  EXPECT_EQ(boxed.size(), 1u);
  EXPECT_TRUE(boxed.count(contained.pid()));
  contained.signal(SIGKILL);
  contained.wait(10s);
}

// A node that holds a heap of known size and 24 MiB of Buffers (written: resident) and runs a full GC every
// 100 ms, writing what V8 and node say of its memory after each one (v8.getHeapStatistics(),
// process.memoryUsage()) and the resident anonymous executable memory of its /proc/self/smaps.
const char* kKnownHeapJs = R"JS(
const v8 = require('v8'), fs = require('fs');
const keep = [], buffers = [];
for (let i = 0; i < 300000; i++) keep.push({ i, s: 'x' + i });
for (let i = 0; i < 12; i++) buffers.push(Buffer.alloc(2 << 20, 1));
function anonExecRss() {
  let exec = false, bytes = 0;
  for (const l of fs.readFileSync('/proc/self/smaps', 'utf8').split('\n')) {
    const m = /^[0-9a-f]+-[0-9a-f]+ (\S+) \S+ \S+ \S+\s*(.*)$/.exec(l);
    if (m) exec = m[1].includes('x') && (m[2] === '' || m[2].startsWith('[anon:'));
    else if (exec && l.startsWith('Rss:')) bytes += parseInt(l.split(/\s+/)[1]) * 1024;
  }
  return bytes;
}
let told = false;
setInterval(() => {
  global.gc();
  const h = v8.getHeapStatistics(), u = process.memoryUsage();
  fs.writeFileSync(process.argv[2] + '.tmp', JSON.stringify({ used: h.used_heap_size, total: h.total_heap_size,
    kept: keep.length + buffers.length, heapTotal: u.heapTotal, arrayBuffers: u.arrayBuffers,
    anonExecRss: anonExecRss() }));
  fs.renameSync(process.argv[2] + '.tmp', process.argv[2]);
  if (!told) console.log(JSON.stringify({ event: 'ready' }));
  told = true;
}, 100);
)JS";

Child known_heap_node(TempDir& dir, const std::string& name) {
  std::ofstream(dir.file("heap.js")) << kKnownHeapJs;
  return Child::spawn({node_bin(), "--expose-gc", dir.file("heap.js"), dir.file(name + ".json")}, dir.path(),
                      name);
}

nlohmann::json read_json_file(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in, nullptr, false);
}

// The V8 columns against what node says of its own heap: JS heap used (after the last GC) within 10% of
// V8's used_heap_size after its last gc() (the heap is held constant; the column is rounded to 0.1 MiB);
// JS-COMMIT within 5% of memoryUsage().heapTotal; ARRAYBUF within 5% of memoryUsage().arrayBuffers; CODE
// above 0 and at most the anonymous executable RSS of the node's smaps (plus rounding); the GC time share
// of a node that runs a full GC every 100 ms between 0 and 100 and above 0. Only V8's GC programs are
// loaded.
TEST(Top, V8ColumnsAgreeWithNodesOwnHeapFigures) {
  MEMLENS_REQUIRE_TRACING();
  TempDir dir;
  Child node = known_heap_node(dir, "known");
  ASSERT_TRUE(node.wait_for_event("ready", 20s)) << node.stderr_text();
  Child sleeper = Child::spawn({"sleep", "30"}, dir.path(), "sleeper");  // not node: never shown
  Child top =
      Child::spawn({memlens_bin(), "top", "1", "2", "-p", std::to_string(node.pid())}, dir.path(), "top");
  ASSERT_EQ(top.wait(60s), 0) << top.stderr_text();
  nlohmann::json heap = read_json_file(dir.file("known.json"));
  ASSERT_TRUE(heap.is_object());
  std::string out = top.stdout_text();
  auto last_table = out.substr(out.rfind("memlens top"));
  auto rows = parse_table(last_table);
  ASSERT_TRUE(rows.count(node.pid())) << out;
  const auto& r = rows[node.pid()];
  EXPECT_NE(last_table.find("V8 GC probes: 1 processes"), std::string::npos) << last_table;
  ASSERT_NE(r.js_heap, "-") << last_table;
  double used_mib = heap["used"].get<double>() / (1 << 20);
  EXPECT_TRUE(within("JS heap used", mib_of(r.js_heap), used_mib, 0.10)) << last_table;
  ASSERT_NE(r.js_committed, "-") << last_table;
  double heap_total_mib = heap["heapTotal"].get<double>() / (1 << 20);
  EXPECT_TRUE(within("JS heap committed", mib_of(r.js_committed), heap_total_mib, 0.05)) << last_table;
  ASSERT_NE(r.array_buffers, "-") << last_table;
  double array_buffers_mib = heap["arrayBuffers"].get<double>() / (1 << 20);
  EXPECT_TRUE(within("ArrayBuffers", mib_of(r.array_buffers), array_buffers_mib, 0.05)) << last_table;
  ASSERT_NE(r.code, "-") << last_table;
  double anon_exec_mib = heap["anonExecRss"].get<double>() / (1 << 20);
  EXPECT_GT(mib_of(r.code), 0) << last_table;
  EXPECT_LE(mib_of(r.code), anon_exec_mib * 1.05) << last_table;
  ASSERT_NE(r.gc_share, "-") << last_table;
  double share = std::stod(r.gc_share);
  EXPECT_GT(share, 0) << last_table;
  EXPECT_LE(share, 100) << last_table;
  EXPECT_NE(r.native, "-") << last_table;
  EXPECT_EQ(r.verdict, "-") << "two refreshes are too little history for a verdict:\n" << last_table;
  EXPECT_FALSE(rows.count(sleeper.pid()));
  std::cout << "JS heap column " << r.js_heap << ", node's used_heap_size " << used_mib << " MiB; JS-COMMIT "
            << r.js_committed << ", heapTotal " << heap_total_mib << " MiB; ARRAYBUF " << r.array_buffers
            << ", arrayBuffers " << array_buffers_mib << " MiB; CODE " << r.code
            << ", anonymous executable RSS " << anon_exec_mib << " MiB; GC% " << r.gc_share << "\n";

  // A node without probes (none allowed here) shows `-` in the V8 columns, and the header says why.
  Child none =
      Child::spawn({memlens_bin(), "top", "0.5", "1", "--v8-max", "0", "-p", std::to_string(node.pid())},
                   dir.path(), "none");
  ASSERT_EQ(none.wait(60s), 0) << none.stderr_text();
  auto unprobed = parse_table(none.stdout_text());
  ASSERT_TRUE(unprobed.count(node.pid())) << none.stdout_text();
  EXPECT_EQ(unprobed[node.pid()].js_heap, "-");
  EXPECT_EQ(unprobed[node.pid()].gc_share, "-");
  EXPECT_NE(none.stdout_text().find("not probed: " + std::to_string(node.pid())), std::string::npos)
      << none.stdout_text();
  sleeper.signal(SIGKILL);
  sleeper.wait(10s);
}

// While top runs with its probes on a node, the programs it loaded are V8's GC programs only, and a fault
// loop in a process top does not show runs none of them (run counts from BPF run-time statistics, with the
// probed node stopped meanwhile so that its own GCs do not move them).
TEST(Top, LoadsOnlyV8GcProgramsAndCostsBystandersNothing) {
  MEMLENS_REQUIRE_TRACING();
  int stats = bpf_enable_stats(BPF_STATS_RUN_TIME);
  ASSERT_GE(stats, 0) << "cannot enable BPF run-time statistics: " << strerror(errno);
  TempDir dir;
  Child node = known_heap_node(dir, "probed");
  ASSERT_TRUE(node.wait_for_event("ready", 20s)) << node.stderr_text();
  Child top =
      Child::spawn({memlens_bin(), "top", "1", "20", "-p", std::to_string(node.pid())}, dir.path(), "top");
  std::set<uint32_t> ids;
  bool gc_seen = false;
  for (int i = 0; i < 100 && !gc_seen; ++i) {
    std::this_thread::sleep_for(100ms);
    ids = programs_held_by(top.pid());
    for (const auto& [id, r] : HeldPrograms(ids).runs()) gc_seen |= r.name == "ml_v8_gc_start" && r.count > 0;
  }
  ASSERT_TRUE(gc_seen) << "top never ran its GC program: " << top.stderr_text();
  HeldPrograms progs(ids);
  for (const auto& [id, r] : progs.runs())
    EXPECT_TRUE(r.name.rfind("ml_v8_gc_", 0) == 0 || r.name.rfind("ml_v8_heap_", 0) == 0 ||
                r.name.rfind("ml_v8_usdt_gc", 0) == 0)
        << "top loaded " << r.name;
  node.signal(SIGSTOP);
  std::this_thread::sleep_for(200ms);  // a GC in progress ends
  auto before = progs.runs();
  Child loop = Child::spawn({test_program("fault_loop"), "4096", "50"}, dir.path(), "loop");
  ASSERT_EQ(loop.wait(60s), 0) << loop.stderr_text();
  auto after = progs.runs();
  node.signal(SIGCONT);
  for (const auto& [id, r] : after)
    EXPECT_EQ(r.count, before[id].count) << r.name << " ran while only the untraced fault loop worked";
  top.signal(SIGINT);
  EXPECT_EQ(top.wait(30s), 0) << top.stderr_text();
  close(stats);
}

// The verdict column over 25 refreshes: a node whose JS heap grows by live objects (about 1.5 MiB/s, a full
// GC every 100 ms proving it) is `leak?`; the node whose heap is held constant is `stable` (or `grow?` if
// its RSS still rose, never `leak?`).
TEST(Top, VerdictColumnNamesAJsHeapLeak) {
  MEMLENS_REQUIRE_TRACING();
  TempDir dir;
  std::ofstream(dir.file("leak.js")) << R"JS(
const keep = [];
let n = 0;
setInterval(() => {
  for (let i = 0; i < 2000; i++) keep.push({ n: n++, s: 'leak' + n });
  global.gc();
}, 100);
console.log(JSON.stringify({ event: 'ready' }));
)JS";
  Child leak = Child::spawn({node_bin(), "--expose-gc", dir.file("leak.js")}, dir.path(), "leak");
  Child steady = known_heap_node(dir, "steady");
  ASSERT_TRUE(leak.wait_for_event("ready", 20s)) << leak.stderr_text();
  ASSERT_TRUE(steady.wait_for_event("ready", 20s)) << steady.stderr_text();
  Child top_leak = Child::spawn({memlens_bin(), "top", "1", "25", "-p", std::to_string(leak.pid())},
                                dir.path(), "top_leak");
  Child top_steady = Child::spawn({memlens_bin(), "top", "1", "25", "-p", std::to_string(steady.pid())},
                                  dir.path(), "top_steady");
  ASSERT_EQ(top_leak.wait(90s), 0) << top_leak.stderr_text();
  ASSERT_EQ(top_steady.wait(90s), 0) << top_steady.stderr_text();
  auto last = [](const std::string& out) { return out.substr(out.rfind("memlens top")); };
  auto leaking = parse_table(last(top_leak.stdout_text()));
  auto holding = parse_table(last(top_steady.stdout_text()));
  ASSERT_TRUE(leaking.count(leak.pid())) << top_leak.stdout_text();
  ASSERT_TRUE(holding.count(steady.pid())) << top_steady.stdout_text();
  EXPECT_EQ(leaking[leak.pid()].verdict, "leak?") << last(top_leak.stdout_text());
  EXPECT_NE(holding[steady.pid()].verdict, "leak?") << last(top_steady.stdout_text());
  EXPECT_NE(holding[steady.pid()].verdict, "-") << last(top_steady.stdout_text());
  leak.signal(SIGKILL);
  leak.wait(10s);
}

// The probes are bounded: with --v8-max 1 and two nodes shown, one has V8 figures, the other `-`, and the
// header names the one not probed and why.
TEST(Top, V8ProbesAreBounded) {
  MEMLENS_REQUIRE_TRACING();
  TempDir dir;
  RuntimeStyleCgroup cgroup(1ull << 30);
  Child a = known_heap_node(dir, "a");
  Child b = known_heap_node(dir, "b");
  ASSERT_TRUE(a.wait_for_event("ready", 20s)) << a.stderr_text();
  ASSERT_TRUE(b.wait_for_event("ready", 20s)) << b.stderr_text();
  ASSERT_TRUE(cgroup.enter(a.pid()));
  ASSERT_TRUE(cgroup.enter(b.pid()));
  Child top = Child::spawn({memlens_bin(), "top", "1", "1", "--v8-max", "1", "--container", "5e1f2a3b"},
                           dir.path(), "top");
  ASSERT_EQ(top.wait(60s), 0) << top.stderr_text();
  std::string out = top.stdout_text();
  auto rows = parse_table(out);
  ASSERT_TRUE(rows.count(a.pid()) && rows.count(b.pid())) << out;
  bool a_probed = rows[a.pid()].js_heap != "-", b_probed = rows[b.pid()].js_heap != "-";
  EXPECT_NE(a_probed, b_probed) << out;
  pid_t unprobed = a_probed ? b.pid() : a.pid();
  EXPECT_EQ(rows[unprobed].gc_share, "-") << out;
  EXPECT_NE(out.find("V8 GC probes: 1 processes"), std::string::npos) << out;
  EXPECT_NE(out.find("not probed: " + std::to_string(unprobed) + " (at most 1"), std::string::npos) << out;
  a.signal(SIGKILL);
  b.signal(SIGKILL);
  a.wait(10s);
  b.wait(10s);
}

// The live view in a real terminal: it draws, a key changes the order, q quits.
TEST(Top, LiveViewInATerminal) {
  MEMLENS_REQUIRE_TRACING();
  if (system("command -v tmux >/dev/null 2>&1") != 0) {
    if (in_ci()) FAIL() << "CI=true and tmux is missing (scripts/test-prepare.sh installs it)";
    GTEST_SKIP() << "tmux is missing";
  }
  TempDir dir;
  Child node = Child::spawn({node_bin(), scenario("long_running"), "--duration", "60"}, dir.path(), "node");
  ASSERT_TRUE(node.wait_for_event("ready", 20s));
  std::string session = "memlens-top-" + std::to_string(getpid());
  auto tmux = [&](const std::string& args) { return run_shell("tmux " + args + " 2>&1"); };
  ASSERT_EQ(tmux("new-session -d -s " + session + " -x 200 -y 50 " + shell_quote(memlens_bin() + " top 0.5"))
                .exit_code,
            0);
  auto screen_with = [&](const std::string& what) {
    std::string screen;
    for (int i = 0; i < 100; ++i) {
      screen = tmux("capture-pane -p -t " + session).output;
      if (screen.find(what) != std::string::npos) return screen;
      std::this_thread::sleep_for(100ms);
    }
    return screen;
  };
  std::string screen = screen_with("sort: rss");
  EXPECT_NE(screen.find("sort: rss"), std::string::npos) << screen;
  EXPECT_NE(screen.find(std::to_string(node.pid())), std::string::npos) << screen;
  tmux("send-keys -t " + session + " p");
  screen = screen_with("sort: pid");
  EXPECT_NE(screen.find("sort: pid"), std::string::npos) << screen;
  tmux("send-keys -t " + session + " q");
  bool gone = false;
  for (int i = 0; i < 50 && !gone; ++i) {
    std::this_thread::sleep_for(100ms);
    gone = tmux("has-session -t " + session).exit_code != 0;
  }
  EXPECT_TRUE(gone) << "q did not quit the live view";
  if (!gone) tmux("kill-session -t " + session);
}

// A hundred Node processes that each live a fraction of a refresh: every start and exit is counted (from
// the kernel's process events), none stays in the table, and memlens stays small.
TEST(Top, ShortLivedNodesAreAllCounted) {
  MEMLENS_REQUIRE_TRACING();
  TempDir dir;
  constexpr int kNodes = 100;
  Child top = Child::spawn({memlens_bin(), "top", "1", "12"}, dir.path(), "top");
  std::this_thread::sleep_for(1500ms);  // the first table is out: the view runs
  // In batches of ten (each node takes ~40 MB while it lives).
  std::string burst = "for b in $(seq " + std::to_string(kNodes / 10) + "); do for i in $(seq 10); do " +
                      shell_quote(node_bin()) + " -e '/*memlens-short-lived*/0' & done; wait; done";
  auto r = run_shell(burst);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  ASSERT_EQ(top.wait(60s), 0) << top.stderr_text();
  std::string out = top.stdout_text();
  auto last_table = out.substr(out.rfind("memlens top"));
  auto number_before = [&](const std::string& word) {
    auto at = last_table.find(" " + word);
    auto start = last_table.rfind(' ', at - 1);
    return std::stoul(last_table.substr(start + 1, at - start - 1));
  };
  EXPECT_GE(number_before("started"), static_cast<unsigned long>(kNodes)) << last_table.substr(0, 300);
  EXPECT_GE(number_before("exited"), static_cast<unsigned long>(kNodes)) << last_table.substr(0, 300);
  EXPECT_NE(last_table.find("from kernel process events; events lost 0"), std::string::npos)
      << last_table.substr(0, 300);
  EXPECT_EQ(last_table.find("memlens-short-lived"), std::string::npos) << last_table;
  // memlens's own peak RSS, as the header says it: a viewer stays small however many processes came and went.
  auto rss_at = last_table.find(" rss ", last_table.find("memlens: cpu"));
  ASSERT_NE(rss_at, std::string::npos);
  EXPECT_LT(std::stod(last_table.substr(rss_at + 5)), 32.0) << last_table.substr(0, 300);
}

// attach --all: every Node process of the host in one report, those started meanwhile included, and a
// filter that keeps one cgroup's.
TEST(AttachAll, TracesEveryNodeIncludingNewOnes) {
  MEMLENS_REQUIRE_TRACING();
  TempDir dir;
  RuntimeStyleCgroup cgroup(1ull << 30);
  Child before =
      Child::spawn({node_bin(), scenario("long_running"), "--duration", "60"}, dir.path(), "before");
  Child unshared = Child::spawn({"unshare", "--pid", "--fork", "--mount-proc", node_bin(),
                                 scenario("long_running"), "--duration", "60"},
                                dir.path(), "unshared");
  ASSERT_TRUE(before.wait_for_event("ready", 20s));
  ASSERT_TRUE(unshared.wait_for_event("ready", 20s));
  auto r = run_shell("pgrep -P " + std::to_string(unshared.pid()));
  ASSERT_EQ(r.exit_code, 0);
  pid_t inner = std::stoi(r.output);
  Child m = Child::spawn({memlens_bin(), "attach", "--all", "-q", "--duration", "8", "-o", dir.file("all")},
                         dir.path(), "m");
  std::this_thread::sleep_for(3s);
  Child later = Child::spawn({node_bin(), scenario("long_running"), "--duration", "60"}, dir.path(), "later");
  ASSERT_TRUE(later.wait_for_event("ready", 20s));
  ASSERT_TRUE(cgroup.enter(later.pid()));
  ASSERT_EQ(m.wait(60s), 0) << m.stderr_text();
  auto report = load_report(dir.file("all"));
  ASSERT_TRUE(report.is_object());
  EXPECT_EQ(report["host_wide"], true);
  for (pid_t pid : {before.pid(), inner, later.pid()}) {
    auto p = report_process(report, pid);
    ASSERT_TRUE(p) << "pid " << pid << " not traced";
    EXPECT_GE((*p)["timeline"].size(), 1u);
    EXPECT_TRUE((*p).contains("gc")) << "V8 probes of pid " << pid;
  }

  // Only the cgroup's processes.
  Child f = Child::spawn({memlens_bin(), "attach", "--all", "--cgroup", RuntimeStyleCgroup::kId, "-q",
                          "--duration", "2", "-o", dir.file("one")},
                         dir.path(), "f");
  ASSERT_EQ(f.wait(60s), 0) << f.stderr_text();
  auto one = load_report(dir.file("one"));
  ASSERT_TRUE(one.is_object());
  ASSERT_EQ(one["processes"].size(), 1u) << one["processes"].dump().substr(0, 500);
  EXPECT_EQ(one["processes"][0]["pid"], later.pid());
  later.signal(SIGKILL);
  later.wait(10s);
}

// attach --all and nodes shorter than a second: each of 20 started (and ended) while it runs is in the
// report, traced or listed as missed with why. None goes unseen.
TEST(AttachAll, SeesNodesShorterThanASecond) {
  MEMLENS_REQUIRE_TRACING();
  TempDir dir;
  Child m = Child::spawn(
      {memlens_bin(), "attach", "--all", "-q", "--duration", "15", "-o", dir.file("short")}, dir.path(), "m");
  std::this_thread::sleep_for(3s);  // memlens has loaded its programs and listens
  std::vector<pid_t> pids;
  double longest_s = 0;
  for (int i = 0; i < 20; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    Child n = Child::spawn({node_bin(), "-e", "Buffer.alloc(1e7)"}, dir.path(), "n" + std::to_string(i));
    ASSERT_EQ(n.wait(20s), 0);
    longest_s =
        std::max(longest_s, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    pids.push_back(n.pid());
  }
  ASSERT_EQ(m.wait(60s), 0) << m.stderr_text();
  auto which = run_shell("readlink -f \"$(command -v " + shell_quote(node_bin()) + ")\"");
  std::string node_exe = which.output.substr(0, which.output.find('\n'));
  auto report = load_report(dir.file("short"));
  ASSERT_TRUE(report.is_object());
  const auto& discovery = report["discovery"];
  ASSERT_TRUE(discovery.is_object()) << report.dump().substr(0, 500);
  EXPECT_EQ(discovery["source"], "kernel process events");
  EXPECT_GE(discovery["node_started"].get<uint64_t>(), pids.size());
  EXPECT_EQ(report["loss"]["missed_processes"], discovery["missed"].size());
  size_t traced = 0, missed = 0;
  for (pid_t pid : pids) {
    if (report_process(report, pid)) {
      ++traced;
      continue;
    }
    bool listed = false;
    for (const auto& x : discovery["missed"])
      if (x["pid"] == pid) {
        listed = true;
        EXPECT_FALSE(x["reason"].get<std::string>().empty());
        EXPECT_EQ(x["exe"], node_exe);
      }
    EXPECT_TRUE(listed) << "pid " << pid << " neither traced nor listed as missed";
    missed += listed;
  }
  std::cout << "20 nodes of up to " << longest_s << " s each: " << traced << " traced, " << missed
            << " listed as missed\n";
}

// A program that embeds Node under another name maps libnode.so only once the loader has run, after its
// exec: attach --all recognises it all the same (from the executable's DT_NEEDED, at the exec), and lists
// it in the report, traced or missed; so too when it is killed 10 ms after its exec, still in the loader.
TEST(AttachAll, SeesShortProgramsEmbeddingLibnode) {
  MEMLENS_REQUIRE_TRACING();
  REQUIRE_NODE(run_node, "libnode");
  TempDir dir;
  // Debian's node binary (it links libnode.so) copied under a name that is not node's.
  std::string root = run_node.substr(0, run_node.rfind('/')) + "/root";
  std::string embedder = dir.file("svc-embedder");
  std::filesystem::copy_file(root + "/usr/bin/node", embedder);
  std::filesystem::permissions(embedder, std::filesystem::perms::owner_exec,
                               std::filesystem::perm_options::add);
  // libnode reads its builtins from /usr/share/nodejs: overlaid in a private mount namespace unless the host
  // has them (as run-node does).
  std::string script = "setTimeout(() => {}, 300)";
  std::string run = "export LD_LIBRARY_PATH=" + shell_quote(root + "/usr/lib/x86_64-linux-gnu") + "; " +
                    "if [ -e /usr/share/nodejs/cjs-module-lexer/lexer.js ]; then exec " +
                    shell_quote(embedder) + " -e " + shell_quote(script) + "; fi; exec unshare -m sh -c " +
                    shell_quote("mount -t overlay overlay -o lowerdir=" + root +
                                "/usr/share:/usr/share /usr/share && exec " + shell_quote(embedder) + " -e " +
                                shell_quote(script));
  Child m = Child::spawn({memlens_bin(), "attach", "--all", "-q", "--duration", "12", "-o", dir.file("lib")},
                         dir.path(), "m");
  std::this_thread::sleep_for(3s);
  std::vector<pid_t> pids;
  for (int i = 0; i < 5; ++i) {
    Child n = Child::spawn({"sh", "-c", run}, dir.path(), "e" + std::to_string(i));
    ASSERT_EQ(n.wait(20s), 0) << n.stderr_text();
    pids.push_back(n.pid());  // the shell execs unshare, which execs the shell that execs the embedder
  }
  // Killed 10 ms after its exec is seen (not after the fork: a kill that lands before the exec leaves no
  // embedder to see).
  std::string killed = "export LD_LIBRARY_PATH=" + shell_quote(root + "/usr/lib/x86_64-linux-gnu") +
                       "; exec " + shell_quote(embedder) + " -e 0";
  for (int i = 0; i < 5; ++i) {
    Child n = Child::spawn({"sh", "-c", killed}, dir.path(), "k" + std::to_string(i));
    std::string exe_link = "/proc/" + std::to_string(n.pid()) + "/exe";
    auto give_up = std::chrono::steady_clock::now() + 10s;
    std::error_code ec;
    while (std::filesystem::read_symlink(exe_link, ec) != embedder &&
           std::chrono::steady_clock::now() < give_up)
      std::this_thread::sleep_for(100us);
    ASSERT_EQ(std::filesystem::read_symlink(exe_link, ec), embedder) << "the embedder was never exec'd";
    std::this_thread::sleep_for(10ms);
    n.signal(SIGKILL);
    n.wait(20s);
    pids.push_back(n.pid());
  }
  ASSERT_EQ(m.wait(60s), 0) << m.stderr_text();
  auto report = load_report(dir.file("lib"));
  ASSERT_TRUE(report.is_object());
  const auto& discovery = report["discovery"];
  for (pid_t pid : pids) {
    bool seen = false;
    for (const auto& p : report["processes"])
      seen |= p["pid"] == pid && p["exe"].is_string() &&
              p["exe"].get<std::string>().find("svc-embedder") != std::string::npos;
    for (const auto& x : discovery["missed"])
      seen |= x["pid"] == pid && x["exe"].get<std::string>().find("svc-embedder") != std::string::npos;
    EXPECT_TRUE(seen) << "pid " << pid << " neither traced nor listed as missed\n" << discovery.dump(1);
  }
}

}  // namespace
}  // namespace memlens::testing
