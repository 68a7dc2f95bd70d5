// The whole pipeline without a host: scripted events through the trace builder into a model::Trace, samples
// taken as the tracer takes them, then the report (build_report, its verdicts with analysis_input's
// warm-up rule, render_summary). What each test asserts follows from the events it scripted.
#include <fcntl.h>
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <string>

#include "collect/trace_builder.h"
#include "memlens/abi.h"
#include "report/json_report.h"
#include "report/terminal.h"
#include "scripted_host.h"

namespace memlens::collect {
namespace {

using scripted::kSecond;
using scripted::kStart;
using scripted::ScriptedHost;

constexpr pid_t kPid = 4100;
constexpr double kTraceS = 80;

class PipelineTest : public ::testing::Test {
 protected:
  PipelineTest() : builder(trace, host) {
    trace.info.started_boot_ns = kStart;
    trace.info.interval_s = 1;
  }

  uint64_t boot(double t_s) const { return kStart + static_cast<uint64_t>(t_s * kSecond); }

  // A node process memlens started, exec'd at 0.1 s.
  model::Process& start() {
    auto* p = builder.track(kPid, 1, kStart, false);
    p->before_command_exec = true;
    ProcEvent exec;
    exec.kind = ProcEvent::Kind::kExec;
    exec.pid = kPid;
    exec.ts_ns = boot(0.1);
    exec.start_time_ns = kStart;
    exec.comm = "node";
    builder.apply(exec);
    return *p;
  }

  void open_file(double t_s, int fd, int32_t stack_id) {
    FdEvent e;
    e.ts_ns = boot(t_s);
    e.pid = kPid;
    e.kind = ML_FDK_OPENAT;
    e.result = fd;
    e.args = {static_cast<uint64_t>(AT_FDCWD), 0, O_RDONLY};
    e.stack_id = stack_id;
    e.path = "/var/log/app-" + std::to_string(fd) + ".log";
    builder.apply(e);
  }

  void close_fd(double t_s, int fd) {
    FdEvent e;
    e.ts_ns = boot(t_s);
    e.pid = kPid;
    e.close = true;
    e.kind = ML_FDK_CLOSE;
    e.args = {static_cast<uint64_t>(fd), 0, 0};
    builder.apply(e);
  }

  // One interval's sample of p at t_s, as the tracer takes it (the fd figures as its fd capability adds).
  void sample(model::Process& p, double t_s, uint64_t rss_anon) {
    host.now = t_s;
    p.rss.anon_bytes = rss_anon;
    model::Sample s;
    s.t_s = t_s;
    s.rss = p.rss;
    s.events = p.events.total();
    p.fds.record_sample(t_s);
    s.fds_open = p.fds.open_count();
    p.timeline.push_back(s);
  }

  void exit_at(double t_s) {
    ProcEvent exit;
    exit.kind = ProcEvent::Kind::kExit;
    exit.pid = kPid;
    exit.ts_ns = boot(t_s);
    exit.start_time_ns = kStart;
    builder.apply(exit);
    trace.info.duration_s = t_s;
  }

  const nlohmann::json* verdict(const nlohmann::json& report, const std::string& category) {
    for (const auto& v : report["processes"][0]["verdicts"])
      if (v["category"] == category) return &v;
    return nullptr;
  }

  model::Trace trace;
  ScriptedHost host;
  TraceBuilder builder;
};

TEST_F(PipelineTest, FilesOpenedAndNeverClosedAreAnFdLeakInTheReportAndItsSummary) {
  auto& p = start();
  int next_fd = 20;
  int opened = 0;
  for (double t = 1; t < kTraceS; t += 1) {
    open_file(t, next_fd++, 7);  // kept: the leak
    ++opened;
    open_file(t + 0.2, 10, 8);  // the same number opened and closed every second: no leak
    close_fd(t + 0.4, 10);
    sample(p, t + 0.5, 50 << 20);
  }
  exit_at(kTraceS);
  auto report = report::build_report(trace);
  const auto& proc = report["processes"][0];
  EXPECT_EQ(proc["pid"], kPid);
  EXPECT_EQ(proc["fds"]["open"], opened);
  EXPECT_EQ(proc["fds"]["opened_total"], 2 * opened);
  EXPECT_EQ(proc["fds"]["closed_total"], opened);
  const auto* fds = verdict(report, "fds");
  ASSERT_NE(fds, nullptr) << proc["verdicts"].dump(1);
  EXPECT_EQ((*fds)["kind"], "leak_suspected");
  EXPECT_NEAR((*fds)["rate_per_s"].get<double>(), 1.0, 0.05);
  const auto* rss = verdict(report, "rss");
  ASSERT_NE(rss, nullptr);
  EXPECT_EQ((*rss)["kind"], "stable");
  auto summary = report::render_summary(report, {});
  EXPECT_NE(summary.find(fmt::format("pid {} node", kPid)), std::string::npos) << summary;
  EXPECT_NE(summary.find(fmt::format("fds: {} open", opened)), std::string::npos) << summary;
}

TEST_F(PipelineTest, GrowthOnlyWhileWarmingUpIsNotJudgedGrowthAfterItIs) {
  // RSS grows by 1 MiB a second for the first 15 s (start-up), then holds, in a 45 s trace.
  auto& p = start();
  for (double t = 1; t < 45; t += 1) sample(p, t, (50u << 20) + std::min(t, 15.0) * (1 << 20));
  exit_at(45);
  auto warm = report::build_report(trace);
  const auto* rss = verdict(warm, "rss");
  ASSERT_NE(rss, nullptr) << warm["processes"][0]["verdicts"].dump(1);
  EXPECT_EQ((*rss)["kind"], "stable");
  // The warm-up rule made the difference: judged from its first sample (as a process memlens attached to
  // is), the start-up growth is seen.
  p.attached_late = true;
  auto unwarmed = report::build_report(trace);
  const auto* rss_unwarmed = verdict(unwarmed, "rss");
  ASSERT_NE(rss_unwarmed, nullptr);
  EXPECT_NE((*rss_unwarmed)["kind"], "stable") << unwarmed["processes"][0]["verdicts"].dump(1);

  // The same process growing at the same rate past its warm-up: judged, and a leak.
  model::Trace trace2;
  trace2.info.started_boot_ns = kStart;
  trace2.info.interval_s = 1;
  ScriptedHost host2;
  TraceBuilder builder2(trace2, host2);
  auto* q = builder2.track(kPid, 1, kStart, false);
  for (double t = 1; t < kTraceS; t += 1) {
    model::Sample s;
    s.t_s = t;
    s.rss.anon_bytes = (50u << 20) + static_cast<uint64_t>(t * (1 << 20));
    q->timeline.push_back(s);
  }
  auto growing = report::build_report(trace2);
  bool leak = false;
  for (const auto& v : growing["processes"][0]["verdicts"])
    leak = leak || (v["category"] == "rss" && v["kind"] == "leak_suspected");
  EXPECT_TRUE(leak) << growing["processes"][0]["verdicts"].dump(1);
}

}  // namespace
}  // namespace memlens::collect
