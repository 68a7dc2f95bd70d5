// memlens costs nothing to the processes it does not trace, and its sampled fault figures agree with the
// kernel's own counters.
//  - A fault loop in an untraced process, while memlens traces another one, runs none of memlens's
//    programs: the kernel's run count of each (BPF run-time statistics, enabled for the test with
//    BPF_ENABLE_STATS, as `sysctl kernel.bpf_stats_enabled=1` does) does not move, except the host-wide
//    lifecycle programs (fork, exec, exit), which run at those moments only.
//  - The traced fault loop's sampled faults times the sample period match the fault count the process
//    read about itself (getrusage: the kernel's minflt + majflt) within the sampling error, and the fault
//    program ran once per sample.
#include <bpf/bpf.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <map>
#include <thread>

#include "support/harness.h"

namespace memlens::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

// Programs memlens may run for a process it does not trace: they filter on the tracked-process map at the
// fork, exec and exit of every task of the host (docs/probes.md): the core's lifecycle and the fd table's
// copy at exit, and the OOM killer's choice of a victim (an OOM kill anywhere on the host, as another test
// may cause at the same time).
bool host_wide_lifecycle(const std::string& name) {
  return name == "ml_fork" || name == "ml_exec" || name == "ml_exit" || name == "ml_fd_at_exit" ||
         name == "ml_oom_victim";
}

uint64_t runs_of(const std::map<uint32_t, HeldPrograms::Runs>& runs, const std::string& name) {
  uint64_t n = 0;
  for (const auto& [id, r] : runs)
    if (r.name == name) n += r.count;
  return n;
}

// The fault loop's sampled faults in a report (samples times the period) against the fault count the
// loop read about itself (getrusage: the kernel's minflt + majflt). Its faults before its exec are the
// same process's (counted on both sides); after the getrusage the process exits (a few faults more on the
// sampled side). One thread, one event: the sampled figure is below the count by less than one period.
void expect_sampled_faults_match(const json& report, const std::string& stdout_text, double& sampled,
                                 double& period) {
  const json* proc = nullptr;
  for (const auto& p : report["processes"])
    if (p["comm"] == "fault_loop") proc = &p;
  ASSERT_NE(proc, nullptr) << report.dump();
  std::optional<json> truth;
  for (const auto& l : json_lines(stdout_text))
    if (l.value("event", "") == "faults") truth = l;
  ASSERT_TRUE(truth.has_value()) << stdout_text;
  const json& f = (*proc)["page_faults"];
  ASSERT_TRUE(f["sampled"].get<bool>());
  period = f["sample_period"].get<double>();
  ASSERT_GT(period, 0);
  sampled = f["traced_user"].get<double>() + f["traced_kernel"].get<double>();
  double kernel = truth->at("minflt").get<double>() + truth->at("majflt").get<double>();
  EXPECT_LE(std::fabs(sampled - kernel), period + 0.01 * kernel)
      << sampled << " sampled faults (period " << period << ") vs " << kernel << " in the kernel's counters";
  // The exact count leaves out what the process took before memlens tracked it (under `run`, memlens's own
  // child before the command's exec: minor_before_tracking); with those it covers the process's own count.
  EXPECT_GE(f["minor"].get<double>() + f.value("minor_before_tracking", 0.0),
            truth->at("minflt").get<double>())
      << f.dump();
}

TEST(GuestCost, UntracedFaultLoopRunsNoMemlensProgramAndTracedSamplesMatchTheKernel) {
  MEMLENS_REQUIRE_TRACING();
  // Run-time statistics on while this fd is open (the kernel's bpf_stats_enabled, counted per user).
  int stats = bpf_enable_stats(BPF_STATS_RUN_TIME);
  ASSERT_GE(stats, 0) << "cannot enable BPF run-time statistics: " << strerror(errno);
  TempDir dir;
  // The traced process waits, blocked opening a FIFO (no fork, no call memlens probes), until the test
  // lets it become the fault loop.
  std::string gate = dir.file("gate");
  ASSERT_EQ(mkfifo(gate.c_str(), 0600), 0);
  constexpr long kPages = 4096, kRounds = 50;
  std::string loop = test_program("fault_loop");
  std::string traced_cmd = "read x < " + shell_quote(gate) + "; exec " + shell_quote(loop) + " " +
                           std::to_string(kPages) + " " + std::to_string(kRounds);
  Child m = Child::spawn({memlens_bin(), "run", "-q", "--fault-sample-period", "1024", "-o", dir.file("out"),
                          "--", "sh", "-c", traced_cmd},
                         dir.path(), "memlens");
  // Its programs, once it has loaded them all (the fault sampler among them) and attached the traced
  // shell's probes.
  std::set<uint32_t> ids;
  bool has_sampler = false;
  for (int i = 0; i < 200 && !has_sampler; ++i) {
    std::this_thread::sleep_for(100ms);
    ids = programs_held_by(m.pid());
    for (const auto& [id, r] : HeldPrograms(ids).runs()) has_sampler |= r.name == "ml_fault_sample";
  }
  ASSERT_TRUE(has_sampler) << "memlens never loaded its fault program: " << m.stderr_text();
  HeldPrograms progs(ids);
  std::this_thread::sleep_for(1s);  // the shell's probes attached, its start-up done
  auto before = progs.runs();

  // The untraced loop: as many faults as the traced one will take.
  Child bystander = Child::spawn({loop, std::to_string(kPages), std::to_string(kRounds)}, dir.path(), "by");
  ASSERT_EQ(bystander.wait(120s), 0);
  auto by_lines = json_lines(bystander.stdout_text());
  ASSERT_FALSE(by_lines.empty());
  EXPECT_GE(by_lines.back()["minflt"].get<long>(), kPages * kRounds);
  auto after = progs.runs();
  for (const auto& [id, r] : after) {
    if (host_wide_lifecycle(r.name)) continue;
    EXPECT_EQ(r.count, before[id].count)
        << r.name << " ran " << (r.count - before[id].count) << " times during an untraced fault loop";
  }

  // Now the traced one.
  {
    int g = open(gate.c_str(), O_WRONLY);
    ASSERT_GE(g, 0);
    ASSERT_EQ(write(g, "go\n", 3), 3);
    close(g);
  }
  ASSERT_EQ(m.wait(120s), 0) << m.stderr_text();
  auto done = progs.runs();
  uint64_t sample_runs = runs_of(done, "ml_fault_sample") - runs_of(before, "ml_fault_sample");

  double sampled = 0, period = 0;
  expect_sampled_faults_match(load_report(dir.file("out")), m.stdout_text(), sampled, period);
  // One run of the fault program per sample.
  EXPECT_NEAR(static_cast<double>(sample_runs) * period, sampled, period);
  close(stats);
}

// A traced process whose resident figures stay put is not walked every interval: smaps is read again only
// when its anonymous, file-backed or shared RSS, or its live ArrayBuffer bytes, moved by more than the
// tolerance (1 MiB or 0.5% of the RSS), or after 30 s. The Node process here idles for its first 14 s,
// then keeps 4 MiB Buffers at 2 a second for 8 s. A read shows in the timeline as a change of the
// categories, which are constant between reads. Checked against the kernel's RSS counters of the same
// samples: every read after the first had a moved figure to justify it, and figures that moved beyond the
// tolerance were read within one read interval and one sample period (and a second of slack).
TEST(GuestCost, SteadyProcessIsNotWalkedAgainUntilItsResidentFiguresMove) {
  MEMLENS_REQUIRE_TRACING();
  TempDir dir;
  const std::string script =
      "const t0 = Date.now(), kept = [];"
      "setTimeout(() => { const grow = setInterval(() => { kept.push(Buffer.alloc(4 << 20, 1));"
      "  if (Date.now() - t0 > 22000) { clearInterval(grow); setTimeout(() => process.exit(0), 2000); } },"
      "  500); }, 14000);"
      "setInterval(() => {}, 1000);";
  Child m = Child::spawn({memlens_bin(), "run", "-q", "-o", dir.file("out"), "--", node_bin(), "-e", script},
                         dir.path(), "memlens");
  ASSERT_EQ(m.wait(90s), 0) << m.stderr_text();
  json report = load_report(dir.file("out"));
  const json* proc = nullptr;
  for (const auto& p : report["processes"])
    if (!proc || p["timeline"].size() > (*proc)["timeline"].size()) proc = &p;
  ASSERT_NE(proc, nullptr);
  const json& method = (*proc)["breakdown"]["method"];

  struct Figures {
    double t_s, anon, file, shmem, array_buffers;
  };
  auto figures = [](const json& s) {
    return Figures{s["t_s"].get<double>(), s.value("anon_bytes", 0.0), s.value("file_bytes", 0.0),
                   s.value("shmem_bytes", 0.0), s.value("array_buffers_bytes", 0.0)};
  };
  auto tolerance = [](const Figures& f) {
    return std::max(1024.0 * 1024.0, 0.005 * (f.anon + f.file + f.shmem));
  };
  auto moved = [&](const Figures& a, const Figures& b) {
    double tol = tolerance(a);
    return std::fabs(a.anon - b.anon) > tol || std::fabs(a.file - b.file) > tol ||
           std::fabs(a.shmem - b.shmem) > tol || std::fabs(a.array_buffers - b.array_buffers) > tol;
  };
  auto categories = [](const json& s) {
    json c = s.value("categories", json::object());
    c.erase("unexplained_bytes");
    return c;
  };
  // A move is looked at by the next due read: at most one read interval and one sample period later.
  double interval = std::max(2.0, method.value("smaps_interval_s", 2.0));
  double grace = interval + 1.0 + 1.0;  // the interval, one sample period (--interval 1), and slack
  std::optional<Figures> at_read;
  // The first of the samples since that read that differ from it, in a row; -1: none.
  double moved_since = -1;
  json last_categories;
  size_t reads = 0, growing_reads = 0;
  for (const auto& s : (*proc)["timeline"]) {
    json c = categories(s);
    if (c.empty()) continue;
    Figures f = figures(s);
    if (c != last_categories) {
      ++reads;
      // In its first seconds V8's probes attach, which is a reason to read whatever the figures.
      if (at_read && f.t_s > 5)
        EXPECT_TRUE(moved(*at_read, f) || f.t_s - at_read->t_s >= 30)
            << "smaps read at " << f.t_s << " s with no figure moved since the read at " << at_read->t_s
            << " s";
      growing_reads += f.t_s > 14;
      at_read = f;
      moved_since = -1;
      last_categories = c;
      continue;
    }
    ASSERT_TRUE(at_read);
    if (!moved(*at_read, f)) {
      moved_since = -1;
      continue;
    }
    if (moved_since < 0) moved_since = f.t_s;
    EXPECT_LE(f.t_s - moved_since, grace)
        << "the figures moved at " << moved_since << " s from those of the read at " << at_read->t_s
        << " s and no read followed by " << f.t_s << " s: anon " << at_read->anon << " -> " << f.anon
        << ", array buffers " << at_read->array_buffers << " -> " << f.array_buffers;
  }
  // Reads while the Buffers grow (8 s, one due every 2 s), and reads left out while the process idled (most
  // of its first 14 s).
  EXPECT_GE(growing_reads, 3u) << method.dump();
  EXPECT_GE(method.value("smaps_reads_skipped_unchanged", 0), 3) << method.dump();
  EXPECT_LE(reads, method.value("smaps_reads", 0)) << method.dump();
}

// munmap and madvise are not probed by default: the ranges a process unmapped leave the model when a
// sample finds them gone from /proc/PID/maps. A C program maps 32 regions of 1 MiB (each call's stack kept:
// above --mmap-sample-bytes), gives 24.5 of them back and waits 3 s: the mmap_growth live bytes under its
// mapping function are what it kept, by default (from /proc, recorded in the capture and replayed alike)
// and with --unmap-probes (from the events, which are counted then and only then).
TEST(GuestCost, UnmappedRangesLeaveTheLiveBytesWithOrWithoutTheUnmapProbes) {
  MEMLENS_REQUIRE_TRACING();
  TempDir dir;
  struct Case {
    std::string name;
    std::vector<std::string> flags;
  };
  for (const Case& c : {Case{"default", {}}, Case{"probed", {"--unmap-probes"}}}) {
    SCOPED_TRACE(c.name);
    std::string live = dir.file(c.name + "-live"), capture = dir.file(c.name + ".mlcap");
    std::vector<std::string> argv = {memlens_bin(), "record", "-q", "-o", capture, "--report-dir", live};
    argv.insert(argv.end(), c.flags.begin(), c.flags.end());
    argv.insert(argv.end(), {"--", test_program("map_then_unmap"), "3"});
    Child m = Child::spawn(argv, dir.path(), "memlens-" + c.name);
    ASSERT_EQ(m.wait(60s), 0) << m.stderr_text();
    std::optional<json> truth;
    for (const auto& l : json_lines(m.stdout_text()))
      if (l.value("event", "") == "unmapped") truth = l;
    ASSERT_TRUE(truth.has_value()) << m.stdout_text();
    auto rep = run_shell(shell_quote(memlens_bin()) + " report -q " + shell_quote(capture) + " -o " +
                         shell_quote(dir.file(c.name + "-replayed")) + " 2>&1");
    ASSERT_EQ(rep.exit_code, 0) << rep.output;
    for (const std::string& out : {live, dir.file(c.name + "-replayed")}) {
      SCOPED_TRACE(out);
      json summary = pprof_summary(out + "/mmap_growth.pb.gz", "map_region");
      ASSERT_FALSE(summary.is_null());
      const json& types = summary["sample_types"];
      ASSERT_EQ(types.size(), 3u) << types.dump();
      ASSERT_EQ(types[2]["type"], "live_bytes") << types.dump();
      const json& under = summary["matching"]["totals"];
      EXPECT_EQ(std::stoll(under[0].get<std::string>()), (*truth)["mapped"].get<long long>())
          << summary.dump();
      EXPECT_EQ(std::stoll(under[2].get<std::string>()), (*truth)["kept"].get<long long>()) << summary.dump();
      json report = load_report(out);
      ASSERT_EQ(report["processes"].size(), 1u);
      const json& ev = report["processes"][0]["events"];
      EXPECT_EQ(ev["unmaps_probed"], !c.flags.empty()) << ev.dump();
      if (c.flags.empty())
        EXPECT_EQ(ev["munmap"], 0) << ev.dump();
      else
        EXPECT_GE(ev["munmap"].get<int>(), 25) << ev.dump();  // 24 whole regions and a half
    }
    // The model's address space at the end holds what the program kept and its few small mappings of its
    // own (stack, heap, the loader's), not the 24.5 MiB it gave back; the replay (whose profiles are the
    // ones recorded live) rebuilds the same model from the events and the ranges recorded gone.
    const json live_mappings = load_report(live)["processes"][0]["mappings"];
    EXPECT_LT(live_mappings["anon_bytes"].get<double>(), (*truth)["kept"].get<double>() + (4 << 20))
        << live_mappings.dump();
    EXPECT_EQ(load_report(dir.file(c.name + "-replayed"))["processes"][0]["mappings"], live_mappings);
  }
}

// A process the traced one forks carries the sampling event from its fork on (inherited): its samples
// match its own fault count too.
TEST(GuestCost, ForkedChildInheritsFaultSampling) {
  MEMLENS_REQUIRE_TRACING();
  TempDir dir;
  std::string cmd = shell_quote(test_program("fault_loop")) + " 4096 50; true";  // forked, not exec'd
  Child m = Child::spawn({memlens_bin(), "run", "-q", "--fault-sample-period", "1024", "-o", dir.file("out"),
                          "--", "sh", "-c", cmd},
                         dir.path(), "memlens");
  ASSERT_EQ(m.wait(120s), 0) << m.stderr_text();
  double sampled = 0, period = 0;
  expect_sampled_faults_match(load_report(dir.file("out")), m.stdout_text(), sampled, period);
  EXPECT_GT(sampled, 0);
}

}  // namespace
}  // namespace memlens::testing
