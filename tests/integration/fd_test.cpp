// fd tracking against ground truth: each fd scenario lists its own fds (readlink of /proc/self/fd) at a
// quiet point, and memlens's table of the same moment must agree, type by type.
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include "support/harness.h"

namespace memlens::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

// `memlens fds PID [--watch S] --json`, its one JSON object.
json memlens_fds(const TempDir& dir, pid_t pid, double watch_s) {
  std::vector<std::string> argv = {memlens_bin(), "fds", std::to_string(pid), "--json"};
  if (watch_s > 0) {
    argv.push_back("--watch");
    argv.push_back(std::to_string(watch_s));
  }
  Child c = Child::spawn(argv, dir.path(), "fds");
  auto rc = c.wait(60s);
  EXPECT_EQ(rc, 0) << c.stderr_text();
  auto lines = json_lines(c.stdout_text());
  if (lines.empty()) {
    ADD_FAILURE() << "memlens fds printed no JSON: " << c.stdout_text() << c.stderr_text();
    return json::object();
  }
  return lines.back();
}

// Asks the scenario for its fd table now (SIGUSR2) and returns it.
json scenario_fds_now(Child& scenario) {
  size_t before = 0;
  for (const auto& l : json_lines(scenario.stdout_text()))
    if (l.value("event", "") == "fds") ++before;
  scenario.signal(SIGUSR2);
  for (int i = 0; i < 100; ++i) {
    std::vector<json> fds;
    for (const auto& l : json_lines(scenario.stdout_text()))
      if (l.value("event", "") == "fds") fds.push_back(l);
    if (fds.size() > before) return fds.back();
    std::this_thread::sleep_for(50ms);
  }
  ADD_FAILURE() << "the scenario printed no fds line after SIGUSR2";
  return json::object();
}

// Compares memlens's table with the scenario's own listing, fd by fd and by type.
void expect_same_table(const json& memlens, const json& truth) {
  EXPECT_EQ(memlens["open"], truth["count"])
      << "memlens " << memlens["by_type"].dump() << " vs /proc " << truth["by_type"].dump();
  EXPECT_EQ(memlens["by_type"], truth["by_type"]);
  std::map<int, std::string> want, got;
  for (const auto& f : truth["fds"]) want[f["fd"].get<int>()] = f["type"].get<std::string>();
  for (const auto& f : memlens["fds"]) got[f["fd"].get<int>()] = f["type"].get<std::string>();
  EXPECT_EQ(got, want);
}

const json* entry_of(const json& memlens, int fd) {
  for (const auto& f : memlens["fds"])
    if (f["fd"] == fd) return &f;
  return nullptr;
}

bool stack_has(const json& entry, const std::string& needle) {
  if (!entry["stack"].is_array()) return false;
  for (const auto& f : entry["stack"])
    if (f.get<std::string>().find(needle) != std::string::npos) return true;
  return false;
}

TEST(Fds, LeakedFilesMatchProcWithTheirStacks) {
  MEMLENS_REQUIRE_TRACING();
  TempDir dir;
  Child s = Child::spawn({node_bin(), scenario("fd_leak_files"), "--duration", "3", "--rate", "20", "--hold",
                          "30", "--report-interval", "0"},
                         dir.path(), "scenario");
  auto ready = s.wait_for_event("ready", 20s);
  ASSERT_TRUE(ready) << s.stderr_text();
  std::string leak_dir = (*ready)["dir"];
  // Watches the whole leaking phase (3 s), then the quiet point.
  json m = memlens_fds(dir, s.pid(), 4.5);
  json truth = scenario_fds_now(s);
  expect_same_table(m, truth);
  // Every leaked file fd opened while watched names its opener: libuv's uv_fs_open.
  size_t leaked_with_stack = 0, leaked = 0;
  for (const auto& f : m["fds"]) {
    if (f.value("path", "").rfind(leak_dir, 0) != 0) continue;
    ++leaked;
    if (!f["opened_at"].is_null() && stack_has(f, "uv_fs_open")) ++leaked_with_stack;
  }
  EXPECT_GE(leaked, 40u);
  // The first few opens may precede the attach: the others all have their stack.
  EXPECT_GE(leaked_with_stack, leaked * 3 / 4) << m.dump();
  EXPECT_EQ(m["open"].get<uint64_t>(), m["seeded"].get<uint64_t>() + m["opened_total"].get<uint64_t>() -
                                           m["closed_total"].get<uint64_t>());
  s.signal(SIGTERM);
  EXPECT_EQ(s.wait(10s), 0);
}

TEST(Fds, LeakedSocketsMatchProcWithAddresses) {
  MEMLENS_REQUIRE_TRACING();
  TempDir dir;
  Child s = Child::spawn({node_bin(), scenario("fd_leak_sockets"), "--duration", "3", "--rate", "10",
                          "--hold", "30", "--report-interval", "0"},
                         dir.path(), "scenario");
  ASSERT_TRUE(s.wait_for_event("ready", 20s)) << s.stderr_text();
  json m = memlens_fds(dir, s.pid(), 4.5);
  json truth = scenario_fds_now(s);
  expect_same_table(m, truth);
  size_t tcp = 0, connected = 0, listening = 0;
  for (const auto& f : m["fds"]) {
    if (f["type"] != "socket" || f.value("protocol", "") != "tcp") continue;
    ++tcp;
    if (f.value("local", "").rfind("127.0.0.1:", 0) == 0 && f.value("remote", "").rfind("127.0.0.1:", 0) == 0)
      ++connected;
    if (f.value("state", "") == "LISTEN") ++listening;
  }
  EXPECT_EQ(listening, 1u);
  EXPECT_GE(connected, 40u);  // ~30 clients x 2 ends, minus any opened before the attach
  EXPECT_EQ(tcp, connected + listening);
  s.signal(SIGTERM);
  EXPECT_EQ(s.wait(10s), 0);
}

TEST(Fds, AttachReportsEveryFdAlreadyOpen) {
  MEMLENS_REQUIRE_TRACING();
  TempDir dir;
  Child s = Child::spawn({node_bin(), scenario("fd_many"), "--count", "1000", "--report-interval", "0"},
                         dir.path(), "scenario");
  ASSERT_TRUE(s.wait_for_event("ready", 30s)) << s.stderr_text();
  Child m = Child::spawn(
      {memlens_bin(), "attach", std::to_string(s.pid()), "-q", "--duration", "2", "-o", dir.file("out")},
      dir.path(), "memlens");
  ASSERT_EQ(m.wait(60s), 0) << m.stderr_text();
  json truth = scenario_fds_now(s);
  ASSERT_GE(truth["count"].get<int>(), 1000);
  auto proc = report_process(load_report(dir.file("out")), s.pid());
  ASSERT_TRUE(proc);
  ASSERT_TRUE(proc->contains("fds"));
  const json& fds = (*proc)["fds"];
  EXPECT_EQ(fds["open"], truth["count"]);
  EXPECT_EQ(fds["by_type"], truth["by_type"]);
  EXPECT_GE(fds["seeded"].get<int>(), 1000);
  // Longest open first: all of them were open before memlens, with no stack.
  ASSERT_EQ(fds["longest_open"].size(), 20u);
  EXPECT_TRUE(fds["longest_open"][0]["stack"].is_null());
  EXPECT_TRUE(fds["longest_open"][0]["opened_at"].is_null());
  s.signal(SIGTERM);
  EXPECT_EQ(s.wait(10s), 0);
}

TEST(Fds, Dup2OverAnOpenFd) {
  MEMLENS_REQUIRE_TRACING();
  TempDir dir;
  std::string prog = test_program("fd_dup2");
  ASSERT_TRUE(std::filesystem::exists(prog)) << prog << " not built";
  // fd_dup2 opens a and b, waits 2 s (memlens attaches meanwhile), dup2(a, b), holds.
  Child s = Child::spawn({prog, "30", "2000", dir.path()}, dir.path(), "dup2");
  std::this_thread::sleep_for(200ms);
  json m = memlens_fds(dir, s.pid(), 3.5);
  auto ev = s.wait_for_event("dup2", 10s);
  ASSERT_TRUE(ev) << s.stderr_text();
  ASSERT_EQ((*ev)["inode_b_after"], (*ev)["inode_a"]);
  int fd_b = (*ev)["fd_b"];
  const json* b = entry_of(m, fd_b);
  ASSERT_TRUE(b) << m.dump();
  EXPECT_EQ((*b)["path"], (*ev)["path_a"]);  // fd_b now refers to a's file
  EXPECT_EQ((*b)["opened_by"], "dup2");
  EXPECT_TRUE(stack_has(*b, "main")) << b->dump();
  // Opened while watched: the dup2 copy and opendir's fd (the listing); closed: b's file (by dup2) and
  // closedir's fd.
  EXPECT_EQ(m["opened_total"], 2);
  EXPECT_EQ(m["closed_total"], 2);
  // The whole table equals the program's own listing.
  auto lines = json_lines(s.stdout_text());
  auto listing = last_event(lines, "fds");
  ASSERT_TRUE(listing);
  std::set<int> want, got;
  for (const auto& f : (*listing)["fds"]) want.insert(f["fd"].get<int>());
  for (const auto& f : m["fds"]) got.insert(f["fd"].get<int>());
  EXPECT_EQ(got, want);
  s.signal(SIGTERM);
  EXPECT_EQ(s.wait(10s), 0);
}

TEST(Fds, ReusedNumberHoldsTheLastFile) {
  MEMLENS_REQUIRE_TRACING();
  TempDir dir;
  Child s = Child::spawn({node_bin(), scenario("fd_reuse"), "--cycles", "8", "--period-ms", "300", "--hold",
                          "30", "--report-interval", "0"},
                         dir.path(), "scenario");
  ASSERT_TRUE(s.wait_for_event("opened", 20s)) << s.stderr_text();
  json m = memlens_fds(dir, s.pid(), 4.0);
  auto lines = json_lines(s.stdout_text());
  std::optional<json> last_reuse;
  size_t same = 0;
  for (const auto& l : lines)
    if (l.value("event", "") == "reuse") {
      last_reuse = l;
      if (l["same"] == true) ++same;
    }
  ASSERT_TRUE(last_reuse);
  ASSERT_GT(same, 0u);
  int fd = (*last_reuse)["opened_fd"];
  const json* e = entry_of(m, fd);
  ASSERT_TRUE(e);
  EXPECT_EQ((*e)["path"], (*last_reuse)["opened_path"]);
  EXPECT_FALSE((*e)["opened_at"].is_null());
  EXPECT_TRUE(stack_has(*e, "uv_fs_open")) << e->dump();
  EXPECT_EQ(m["open"].get<uint64_t>(), m["seeded"].get<uint64_t>() + m["opened_total"].get<uint64_t>() -
                                           m["closed_total"].get<uint64_t>());
  expect_same_table(m, scenario_fds_now(s));
  s.signal(SIGTERM);
  EXPECT_EQ(s.wait(10s), 0);
}

const json* verdict_of(const json& proc, const std::string& category) {
  if (!proc.contains("verdicts")) return nullptr;
  for (const auto& v : proc["verdicts"])
    if (v.value("category", "") == category) return &v;
  return nullptr;
}

std::string verdicts_dump(const json& proc) {
  std::string s;
  for (const auto& v : proc.value("verdicts", json::array()))
    s += "\n  " + v.value("kind", "") + " " + v.value("category", "") + ": " + v.value("evidence", "");
  return s;
}

// fd_healthy_server traced by `memlens run` for `duration` seconds, with extra options: its quiet-point and
// final lines, and its process in the report (null when missing: the callers assert).
struct ServerRun {
  std::optional<json> quiet, final_line, proc;
  std::string stderr_text;
};
ServerRun run_healthy_server(const TempDir& dir, const std::vector<std::string>& extra,
                             const char* duration) {
  std::vector<std::string> argv = {memlens_bin(), "run", "-q", "-o", dir.file("out")};
  argv.insert(argv.end(), extra.begin(), extra.end());
  for (std::string a :
       {std::string("--"), node_bin(), scenario("fd_healthy_server"), std::string("--duration"),
        std::string(duration), std::string("--report-interval"), std::string("0")})
    argv.push_back(a);
  Child m = Child::spawn(argv, dir.path(), "memlens");
  ServerRun r;
  if (m.wait(120s) != 0) {
    r.stderr_text = m.stderr_text();
    return r;
  }
  auto lines = json_lines(m.stdout_text());
  r.quiet = last_event(lines, "fds");
  r.final_line = last_event(lines, "final");
  if (r.quiet) r.proc = report_process(load_report(dir.file("out")), pid_of(lines, *r.quiet));
  return r;
}

// By default accept and accept4 are not traced (a trap per connection): accepted sockets are found in
// /proc at each sample. The table is still exact at each sample and at exit, the totals say they are
// lower bounds, and no accepted socket is reported as opened by a traced call.
TEST(Fds, AcceptedSocketsFoundInProcByDefault) {
  MEMLENS_REQUIRE_TRACING();
  TempDir dir;
  ServerRun r = run_healthy_server(dir, {}, "8");
  ASSERT_TRUE(r.quiet && r.final_line && r.proc && r.proc->contains("fds")) << r.stderr_text;
  const json& fds = (*r.proc)["fds"];
  EXPECT_GT((*r.final_line).value("completed", 0), 20u);
  EXPECT_TRUE(fds["totals_lower_bound"].get<bool>());
  EXPECT_EQ(fds["open"].get<uint64_t>(), fds["seeded"].get<uint64_t>() + fds["opened_total"].get<uint64_t>() -
                                             fds["closed_total"].get<uint64_t>());
  // The client sockets (socket(), traced) came and went; the table at exit holds no more sockets than the
  // process listed itself at its quiet point.
  EXPECT_LE(fds["sockets_open"].get<uint64_t>(), (*r.quiet)["by_type"].value("socket", 0));
  EXPECT_LE(fds["open"].get<uint64_t>(), (*r.quiet)["count"].get<uint64_t>());
  for (const auto& e : fds["longest_open"]) EXPECT_NE(e.value("opened_by", ""), "accept4") << e.dump();
}

// Long enough (40 s) for the verdicts to judge: hundreds of connections per second come and go, and
// neither fds nor sockets are a leak. With --fd-stacks=accept every accepted connection is traced: the
// totals are exact.
TEST(Fds, HealthyServerRunReport) {
  MEMLENS_REQUIRE_TRACING();
  TempDir dir;
  ServerRun r = run_healthy_server(dir, {"--fd-stacks=accept"}, "40");
  ASSERT_TRUE(r.quiet && r.final_line && r.proc && r.proc->contains("fds")) << r.stderr_text;
  auto proc = r.proc;
  auto quiet = r.quiet;
  auto final_line = r.final_line;
  const json& fds = (*proc)["fds"];
  // Hundreds of connections came and went: each accepted and closed, each client socket opened and closed.
  uint64_t completed = (*final_line).value("completed", 0);
  EXPECT_GT(completed, 100u);
  EXPECT_GE(fds["opened_total"].get<uint64_t>(), completed);
  EXPECT_GE(fds["closed_total"].get<uint64_t>(), completed);
  // libuv closes with syscall(SYS_close), which is not traced: those closes are found by the reuse of
  // their number and by /proc, and counted apart. The table never lost track: no traced close of an fd it
  // did not hold, and every fd node created came through a traced call.
  EXPECT_GE(fds["closed_unseen"].get<uint64_t>(), completed);
  EXPECT_LE(fds["closed_unseen"].get<uint64_t>(), fds["closed_total"].get<uint64_t>());
  EXPECT_EQ(fds["unknown_closes"], 0);
  EXPECT_EQ(fds["opened_unseen"], 0);
  EXPECT_FALSE(fds["totals_lower_bound"].get<bool>());
  EXPECT_EQ(fds["open"].get<uint64_t>(), fds["seeded"].get<uint64_t>() + fds["opened_total"].get<uint64_t>() -
                                             fds["closed_total"].get<uint64_t>());
  // At the end only the baseline remains: no more sockets than the quiet point had (the listener is
  // closed by the scenario's cleanup before exit). The table at exit comes from the kernel's fd table as
  // the process exited, so closes after the last sample count too.
  EXPECT_LE(fds["sockets_open"].get<uint64_t>(), (*quiet)["by_type"].value("socket", 0));
  EXPECT_LE(fds["open"].get<uint64_t>(), (*quiet)["count"].get<uint64_t>());
  // Timeline samples carry the open count.
  ASSERT_FALSE((*proc)["timeline"].empty());
  EXPECT_TRUE((*proc)["timeline"][0].contains("fds_open"));
  EXPECT_GT(completed, 1000u) << "too little load to judge";
  for (const char* c : {"fds", "sockets"}) {
    const json* v = verdict_of(*proc, c);
    ASSERT_TRUE(v) << c << verdicts_dump(*proc);
    EXPECT_NE((*v)["kind"], "leak_suspected") << c << verdicts_dump(*proc);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Leak verdicts: a steady fd leak is called one within 60 s, with the stacks that opened the fds; a busy
// healthy server is not.

bool any_stack_mentions(const json& verdict, const std::string& text) {
  for (const auto& s : verdict["top_stacks"])
    if (s.get<std::string>().find(text) != std::string::npos) return true;
  return false;
}

// The first lines of fd_opens.folded that do not mention `function`, for failure messages.
std::string folded_lines_without(const std::string& out, const std::string& function) {
  std::ifstream in(out + "/fd_opens.folded");
  std::string line, text;
  for (int shown = 0; std::getline(in, line) && shown < 10;)
    if (line.find(function) == std::string::npos) {
      text += "\n  " + line.substr(0, 400);
      ++shown;
    }
  return text;
}

// fd_opens.folded and fd_opens.pb.gz hold the fds open at the end by opening stack: they agree with each
// other, with the report's profile totals, and with the table (no more than it holds open).
void check_fd_opens_profile(const std::string& out, const json& report, const json& proc,
                            const std::string& function, uint64_t at_least) {
  FoldedFile f = read_folded(out + "/fd_opens.folded", function);
  EXPECT_FALSE(f.malformed);
  json summary = pprof_summary(out + "/fd_opens.pb.gz", function);
  ASSERT_FALSE(summary.is_null());
  EXPECT_EQ(summary["totals"][0].get<std::string>(), std::to_string(static_cast<int64_t>(f.total)));
  for (const auto& p : report["profiles"]) {
    if (p["kind"] != "fd_opens") continue;
    EXPECT_EQ(p["totals"]["fds"].get<int64_t>(), static_cast<int64_t>(f.total));
  }
  EXPECT_LE(static_cast<uint64_t>(f.total), proc["fds"]["open"].get<uint64_t>());
  double under =
      std::stod((function.empty() ? summary["totals"] : summary["matching"]["totals"])[0].get<std::string>());
  EXPECT_GE(under, static_cast<double>(at_least))
      << "fds opened under '" << function << "'; stacks without it:" << folded_lines_without(out, function);
}

TEST(FdVerdicts, LeakedFilesAndSocketsAreLeaksWithTheirOpeningStacks) {
  MEMLENS_REQUIRE_TRACING();
  if (std::string why = checkers_missing(); !why.empty()) {
    if (in_ci()) FAIL() << "CI=true and " << why;
    GTEST_SKIP() << why;
  }
  TempDir dir;
  // Files leaked under `run`, sockets under `attach`, at the same time.
  Child files =
      Child::spawn({memlens_bin(), "run", "-q", "-o", dir.file("files"), "--", node_bin(),
                    scenario("fd_leak_files"), "--duration", "40", "--rate", "10", "--report-interval", "0"},
                   dir.path(), "files");
  Child sockets_app = Child::spawn({node_bin(), scenario("fd_leak_sockets"), "--duration", "60", "--rate",
                                    "5", "--hold", "30", "--report-interval", "0"},
                                   dir.path(), "sockets_app");
  ASSERT_TRUE(sockets_app.wait_for_event("ready", 20s)) << sockets_app.stderr_text();
  Child sockets = Child::spawn({memlens_bin(), "attach", std::to_string(sockets_app.pid()), "-q",
                                "--fd-stacks=accept", "--duration", "40", "-o", dir.file("sockets")},
                               dir.path(), "sockets");
  ASSERT_EQ(files.wait(120s), 0) << files.stderr_text();
  ASSERT_EQ(sockets.wait(120s), 0) << sockets.stderr_text();
  sockets_app.signal(SIGTERM);

  {
    SCOPED_TRACE("fd_leak_files (run)");
    auto lines = json_lines(files.stdout_text());
    auto final_line = last_event(lines, "final");
    ASSERT_TRUE(final_line) << files.stdout_text();
    uint64_t leaked = (*final_line)["leaked"];
    json report = load_report(dir.file("files"));
    auto proc = report_process(report, pid_of(lines, *final_line));
    ASSERT_TRUE(proc);
    const json* v = verdict_of(*proc, "fds");
    ASSERT_TRUE(v) << verdicts_dump(*proc);
    EXPECT_EQ((*v)["kind"], "leak_suspected") << verdicts_dump(*proc);
    // The scenario opens 10 fds per second: the fitted rate says so.
    EXPECT_TRUE(within("fd leak rate (per s)", (*v)["rate_per_s"].get<double>(), 10.0, 0.2));
    ASSERT_FALSE((*v)["top_stacks"].empty());
    EXPECT_TRUE(any_stack_mentions(*v, "openSync")) << (*v)["top_stacks"].dump(1);
    check_fd_opens_profile(dir.file("files"), report, *proc, "openSync", leaked);
  }
  {
    SCOPED_TRACE("fd_leak_sockets (attach)");
    json report = load_report(dir.file("sockets"));
    auto proc = report_process(report, sockets_app.pid());
    ASSERT_TRUE(proc);
    const json* v = verdict_of(*proc, "sockets");
    ASSERT_TRUE(v) << verdicts_dump(*proc);
    EXPECT_EQ((*v)["kind"], "leak_suspected") << verdicts_dump(*proc);
    // 5 connections per second, two socket fds each (the client's and the accepted one).
    EXPECT_TRUE(within("socket leak rate (per s)", (*v)["rate_per_s"].get<double>(), 10.0, 0.2));
    ASSERT_FALSE((*v)["top_stacks"].empty());
    // Started without V8's perf map, node's JS frames are unnamed: the stacks end in the C library's
    // socket calls, named.
    EXPECT_TRUE(any_stack_mentions(*v, "socket") && any_stack_mentions(*v, "accept4"))
        << (*v)["top_stacks"].dump(1);
    const json* fds = verdict_of(*proc, "fds");
    ASSERT_TRUE(fds);
    EXPECT_EQ((*fds)["kind"], "leak_suspected");
    check_fd_opens_profile(dir.file("sockets"), report, *proc, "", 300);
  }
}

}  // namespace
}  // namespace memlens::testing
