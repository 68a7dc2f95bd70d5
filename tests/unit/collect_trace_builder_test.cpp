// The trace builder with a scripted host: the life of processes (fork, exec, exit, lost events) applied to
// the model with no /proc and no probe, as a replay applies them. The host records what it was asked.
#include <gtest/gtest.h>
#include <sys/mman.h>

#include <string>
#include <vector>

#include "collect/trace_builder.h"
#include "memlens/abi.h"
#include "model/trace.h"
#include "scripted_host.h"

namespace memlens::collect {
namespace {

using scripted::kSecond;
using scripted::kStart;
using scripted::ScriptedHost;

class TraceBuilderTest : public ::testing::Test {
 protected:
  TraceBuilderTest() : builder(trace, host) { trace.info.started_boot_ns = kStart; }

  ProcEvent proc(ProcEvent::Kind kind, pid_t pid, double t_s, double started_s = 0) {
    ProcEvent e;
    e.kind = kind;
    e.pid = pid;
    e.ts_ns = kStart + static_cast<uint64_t>(t_s * kSecond);
    e.start_time_ns = kStart + static_cast<uint64_t>(started_s * kSecond);
    e.comm = "node";
    return e;
  }
  MmEvent mmap(pid_t pid, double t_s, uint64_t addr, uint64_t len) {
    MmEvent e;
    e.kind = MmEvent::Kind::kMmap;
    e.pid = pid;
    e.ts_ns = kStart + static_cast<uint64_t>(t_s * kSecond);
    e.result = static_cast<int64_t>(addr);
    e.len_bytes = len;
    e.flags = MAP_PRIVATE | MAP_ANONYMOUS;
    return e;
  }

  model::Trace trace;
  ScriptedHost host;
  TraceBuilder builder;
};

TEST_F(TraceBuilderTest, ForkExecMapExitFollowOneProcessThroughItsLife) {
  auto root = builder.track(100, 1, kStart, false);
  ASSERT_NE(root, nullptr);
  auto fork = proc(ProcEvent::Kind::kFork, 101, 0.5, 0.5);
  fork.ppid = 100;
  builder.apply(fork);
  builder.apply(proc(ProcEvent::Kind::kExec, 101, 0.6, 0.5));
  builder.apply(mmap(101, 0.7, 0x10000, 8192));
  builder.apply(mmap(101, 0.8, 0x40000, 4096));
  auto exit = proc(ProcEvent::Kind::kExit, 101, 2.0, 0.5);
  exit.exit_code = 3 << 8;
  exit.minflt = 50;
  builder.apply(exit);

  auto* child = trace.processes.find({101, model::start_time_ns_to_ticks(fork.start_time_ns)});
  ASSERT_NE(child, nullptr);
  EXPECT_EQ(child->ppid(), 100);
  EXPECT_EQ(child->exe, "/usr/bin/node");
  EXPECT_EQ(child->address_space.size(), 2u);
  EXPECT_EQ(child->events.mmap, 2u);
  EXPECT_EQ(child->exit_status, 3);
  EXPECT_EQ(child->minflt, 50u);
  EXPECT_TRUE(child->has_kernel_fault_counts);
  EXPECT_FALSE(child->alive());
  EXPECT_FALSE(child->image_loading);
  // Probes before its seed and release; the image is loaded once, at its first call after exec.
  EXPECT_EQ(host.calls, (std::vector<std::string>{"new 100", "new 101", "attach 101", "seed 101",
                                                  "release 101", "identity 101", "seed 101", "exec 101",
                                                  "release 101", "loaded 101", "exited 101"}));
  EXPECT_EQ(builder.unknown_process_events(), 0u);
  EXPECT_EQ(child->oom_victim_marked, false) << "an exit event without the kernel's OOM mark";
}

// The kernel's mark of the OOM killer's victim, carried by the exit event, is kept; a process with no
// exit event has no word either way.
TEST_F(TraceBuilderTest, TheOomKillersMarkOnAnExitEventIsKept) {
  auto* victim = builder.track(200, 1, kStart, false);
  auto* other = builder.track(201, 1, kStart, false);
  ASSERT_TRUE(victim && other);
  EXPECT_FALSE(victim->oom_victim_marked.has_value());
  auto exit = proc(ProcEvent::Kind::kExit, 200, 3.0, 0.0);
  exit.start_time_ns = victim->start_time_ns;
  exit.exit_code = 9;
  exit.flags = ML_PROC_OOM_VICTIM;
  builder.apply(exit);
  EXPECT_EQ(victim->oom_victim_marked, true);
  EXPECT_EQ(victim->exit_status, 128 + 9);
  EXPECT_FALSE(other->oom_victim_marked.has_value());
}

TEST_F(TraceBuilderTest, ExitOfAProcessWhoseForkWasLostIsCountedUntracedForItsWholeLife) {
  auto exit = proc(ProcEvent::Kind::kExit, 300, 4.0, 1.0);
  exit.exit_code = 9;  // killed by SIGKILL
  builder.apply(exit);
  auto* p = trace.processes.find({300, model::start_time_ns_to_ticks(exit.start_time_ns)});
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->exit_status, 128 + 9);
  EXPECT_DOUBLE_EQ(p->untraced.seconds(4.0), 3.0);
  EXPECT_NE(p->untraced.reason().find("fork event was lost"), std::string::npos);
  EXPECT_TRUE(host.calls.empty());  // nothing asked of the host for a process already gone
}

TEST_F(TraceBuilderTest, ExecOfAProcessWhoseForkWasLostIsTracedFromItsExec) {
  host.parents[400] = 100;
  builder.apply(proc(ProcEvent::Kind::kExec, 400, 2.5, 2.0));
  auto* p = trace.processes.find_live(400);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->ppid(), 100);
  EXPECT_DOUBLE_EQ(p->untraced.seconds(2.5), 0.5);
  EXPECT_TRUE(p->image_loading);
  EXPECT_EQ(host.calls.front(), "new 400");
  EXPECT_EQ(host.calls[1], "attach 400");
}

TEST_F(TraceBuilderTest, ASecondExitEventKeepsTheLargerFaultCounts) {
  auto fork = proc(ProcEvent::Kind::kFork, 500, 1.0, 1.0);
  builder.apply(fork);
  auto exit = proc(ProcEvent::Kind::kExit, 500, 2.0, 1.0);
  exit.minflt = 10;
  builder.apply(exit);
  exit.minflt = 25;  // another thread's exit folded in more faults
  exit.majflt = 1;
  builder.apply(exit);
  exit.minflt = 5;
  builder.apply(exit);
  auto* p = trace.processes.find({500, model::start_time_ns_to_ticks(fork.start_time_ns)});
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->minflt, 25u);
  EXPECT_EQ(p->majflt, 1u);
  EXPECT_EQ(std::count(host.calls.begin(), host.calls.end(), "exited 500"), 1);
}

TEST_F(TraceBuilderTest, ForkTheKernelCouldNotFollowIsUntracedAndNotProbed) {
  auto fork = proc(ProcEvent::Kind::kFork, 600, 1.0, 1.0);
  fork.flags = ML_PROC_UNTRACKED;
  builder.apply(fork);
  auto* p = trace.processes.find_live(600);
  ASSERT_NE(p, nullptr);
  EXPECT_TRUE(p->untraced.any());
  EXPECT_NE(p->untraced.reason().find("--max-processes"), std::string::npos);
  EXPECT_EQ(host.calls, (std::vector<std::string>{"new 600"}));
}

TEST_F(TraceBuilderTest, EventsOfUnknownPidsAndMalformedRecordsAreCountedBySource) {
  builder.apply(mmap(999, 1.0, 0x1000, 4096));
  builder.apply(proc(ProcEvent::Kind::kExec, 998, 1.0));  // no parent known: tracked from its exec
  builder.malformed(Malformed{ML_EV_V8_GC, 5});
  builder.malformed(Malformed{0, 0});
  builder.track(700, 1, kStart, false);
  FdEvent fd;
  fd.pid = 700;
  fd.kind = 99;  // no such kind
  builder.apply(fd);
  host.take_capability_events = false;
  builder.apply(ArrayBufferNotice{kStart, 700, 1, 0x1000});
  EXPECT_EQ(builder.unknown_process_events(), 1u);
  const auto& m = builder.malformed_by_source();
  EXPECT_EQ(m.at("v8"), 2u);  // the cut GC record and the notice no capability took
  EXPECT_EQ(m.at("tracer"), 1u);
  EXPECT_EQ(m.at("fds"), 1u);
}

TEST_F(TraceBuilderTest, ExecOfTheCommandDropsWhatMemlensOwnChildDidBeforeIt) {
  auto* p = builder.track(800, 1, kStart, false);
  p->before_command_exec = true;
  p->stacks["mmap_growth"][1].bytes = 4096;
  builder.apply(proc(ProcEvent::Kind::kExec, 800, 0.1));
  EXPECT_TRUE(p->stacks.empty());
  EXPECT_FALSE(p->before_command_exec);
  EXPECT_EQ(p->comm, "node");
}

}  // namespace
}  // namespace memlens::collect
