// The decode/build seam: ring-buffer records decoded to typed events, and typed events applied to the
// model, with no host (no /proc, no probe), as a replay applies them.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/socket.h>

#include <cstring>
#include <memory>
#include <vector>

#include "collect/decode.h"
#include "collect/fd_events.h"
#include "collect/trace_builder.h"
#include "collect/v8_ab_window.h"
#include "memlens/abi.h"
#include "model/growth_sampling.h"
#include "model/trace.h"

namespace memlens::collect {
namespace {

template <typename T>
std::vector<uint8_t> bytes_of(const T& v) {
  std::vector<uint8_t> out(sizeof(T));
  std::memcpy(out.data(), &v, sizeof(T));
  return out;
}

ml_event_header header(uint32_t type, uint32_t pid, uint64_t ts_ns) {
  ml_event_header h{};
  h.type = type;
  h.pid = pid;
  h.tid = pid;
  h.ts_ns = ts_ns;
  return h;
}

template <typename T>
const T& as(const Decoded& d) {
  EXPECT_TRUE(std::holds_alternative<Event>(d));
  const auto& e = std::get<Event>(d);
  EXPECT_TRUE(std::holds_alternative<T>(e));
  return std::get<T>(e);
}

TEST(Decode, EveryRecordShorterThanItsTypeIsMalformedNeverRead) {
  ml_mm_event mm{};
  mm.h = header(ML_EV_MMAP, 42, 1000);
  auto bytes = bytes_of(mm);
  for (size_t n = 0; n < bytes.size(); ++n) {
    auto d = decode_event(bytes.data(), n);
    ASSERT_TRUE(std::holds_alternative<Malformed>(d)) << n;
    EXPECT_EQ(std::get<Malformed>(d).type, n >= sizeof(ml_event_header) ? uint32_t{ML_EV_MMAP} : 0u);
  }
  EXPECT_TRUE(std::holds_alternative<Event>(decode_event(bytes.data(), bytes.size())));
}

TEST(Decode, UnknownTypeIsMalformedAndCountedByItsSource) {
  ml_mm_event mm{};
  mm.h = header(6, 42, 1000);  // the mprotect type, never emitted
  auto d = decode_event(&mm, sizeof mm);
  ASSERT_TRUE(std::holds_alternative<Malformed>(d));
  EXPECT_STREQ(event_source(std::get<Malformed>(d).type), "tracer");
  EXPECT_STREQ(event_source(ML_EV_V8_GC), "v8");
  EXPECT_STREQ(event_source(ML_EV_FD_CLOSE), "fds");
}

TEST(Decode, ProcEventKeepsItsFieldsAndBoundsTheComm) {
  ml_proc_event e{};
  e.h = header(ML_EV_EXIT, 77, 5000);
  e.ppid = 1;
  e.exit_code = 3 << 8;
  e.start_time_ns = 4000;
  e.minflt = 11;
  e.majflt = 2;
  std::memset(e.comm, 'x', sizeof e.comm);  // no terminating NUL
  e.flags = ML_PROC_HELD;
  auto d = decode_event(&e, sizeof e);
  const auto& p = as<ProcEvent>(d);
  EXPECT_EQ(p.kind, ProcEvent::Kind::kExit);
  EXPECT_EQ(p.pid, 77);
  EXPECT_EQ(p.ts_ns, 5000u);
  EXPECT_EQ(p.start_time_ns, 4000u);
  EXPECT_EQ(p.exit_code, 3 << 8);
  EXPECT_EQ(p.minflt, 11u);
  EXPECT_EQ(p.majflt, 2u);
  EXPECT_EQ(p.comm, std::string(sizeof e.comm, 'x'));
  EXPECT_EQ(p.flags, uint32_t{ML_PROC_HELD});
  EXPECT_EQ(event_pid(std::get<Event>(d)), 77);
}

TEST(Decode, FdPathIsReadOnlyWhenTheRecordCarriesIt) {
  ml_fd_path_event e{};
  e.e.h = header(ML_EV_FD_OPEN, 9, 100);
  e.e.kind = ML_FDK_OPEN;
  e.e.result = 5;
  e.e.stack_id = -1;
  std::strcpy(e.path, "/tmp/a");
  EXPECT_EQ(as<FdEvent>(decode_event(&e, sizeof e)).path, "/tmp/a");
  EXPECT_EQ(as<FdEvent>(decode_event(&e, sizeof(ml_fd_event))).path, "");
}

Event decoded(const void* data, size_t size) {
  return std::get<Event>(decode_event(data, size));
}

TEST(TraceBuilder, MmapThenPartialMunmapLeavesTheRestAndCountsGrowthByStack) {
  model::Trace trace;
  auto& p = trace.processes.add({100, 1}, 1);
  ml_mm_event map{};
  map.h = header(ML_EV_MMAP, 100, 10);
  map.len_bytes = 3 * 4096 - 100;  // rounded up to whole pages
  map.result = 0x10000000;
  map.fd = -1;
  map.flags = MAP_PRIVATE | MAP_ANONYMOUS;
  map.prot = PROT_READ | PROT_WRITE;
  map.stack_id = 7;
  apply_mm_event(p, std::get<MmEvent>(decoded(&map, sizeof map)));
  ml_mm_event unmap{};
  unmap.h = header(ML_EV_MUNMAP, 100, 20);
  unmap.addr = 0x10000000;
  unmap.len_bytes = 4096;
  unmap.result = 0;
  unmap.stack_id = -1;
  apply_mm_event(p, std::get<MmEvent>(decoded(&unmap, sizeof unmap)));
  EXPECT_EQ(p.address_space.find(0x10000000), nullptr);
  const auto* rest = p.address_space.find(0x10000000 + 4096);
  ASSERT_NE(rest, nullptr);
  EXPECT_EQ(rest->end, 0x10000000u + 3 * 4096);
  EXPECT_EQ(p.stacks["mmap_growth"][7].bytes, 3 * 4096);
  EXPECT_EQ(p.events.mmap, 1u);
  EXPECT_EQ(p.events.munmap, 1u);
}

// Sampled stacks (model/growth_sampling.h): a call smaller than the mean stands for mean/size calls and
// the mean's bytes; one at least as large as the mean, for itself. Live bytes scale with the mapping.
TEST(TraceBuilder, SampledGrowthStacksWeighByTheInverseOfTheirChance) {
  model::Trace trace;
  auto& p = trace.processes.add({100, 1}, 1);
  auto mmap_event = [](uint64_t at, uint64_t len, uint32_t every, int32_t stack) {
    ml_mm_event e{};
    e.h = header(ML_EV_MMAP, 100, 10);
    e.len_bytes = len;
    e.result = static_cast<int64_t>(at);
    e.fd = -1;
    e.flags = MAP_PRIVATE | MAP_ANONYMOUS;
    e.stack_id = stack;
    e.stack_sample_bytes = every;
    return std::get<MmEvent>(decoded(&e, sizeof e));
  };
  apply_mm_event(p, mmap_event(0x10000000, 256 << 10, 1 << 20, 7));   // chance 1/4
  apply_mm_event(p, mmap_event(0x20000000, 4 << 20, 1 << 20, 7));     // larger than the mean: itself
  apply_mm_event(p, mmap_event(0x30000000, 256 << 10, 4 << 20, -1));  // not sampled: no stack, mapped
  const auto& w = p.stacks["mmap_growth"][7];
  EXPECT_EQ(w.bytes, (1 << 20) + (4 << 20));
  EXPECT_EQ(w.count, 4 + 1);
  EXPECT_DOUBLE_EQ(p.address_space.find(0x10000000)->stack_weight, 4.0);
  EXPECT_DOUBLE_EQ(p.address_space.find(0x20000000)->stack_weight, 1.0);
  EXPECT_NE(p.address_space.find(0x30000000), nullptr);
  EXPECT_EQ(p.growth_stack_sample_min, 1u << 20);
  EXPECT_EQ(p.growth_stack_sample_max, 4u << 20);
  EXPECT_EQ(p.events.mmap, 3u);
}

TEST(GrowthSampling, WeightIsTheInverseOfTheChanceAndOneWhenNotSampled) {
  EXPECT_DOUBLE_EQ(model::growth_stack_weight(4096, 0), 1.0);
  EXPECT_DOUBLE_EQ(model::growth_stack_weight(4096, 1 << 20), 256.0);
  EXPECT_DOUBLE_EQ(model::growth_stack_weight(1 << 20, 1 << 20), 1.0);
  EXPECT_DOUBLE_EQ(model::growth_stack_weight(8 << 20, 1 << 20), 1.0);
  EXPECT_DOUBLE_EQ(model::growth_stack_weight(0, 1 << 20), 1.0);
}

TEST(TraceBuilder, FailedMmapIsCountedNotMapped) {
  model::Trace trace;
  auto& p = trace.processes.add({100, 1}, 1);
  ml_mm_event map{};
  map.h = header(ML_EV_MMAP, 100, 10);
  map.len_bytes = 4096;
  map.result = -ENOMEM;
  map.stack_id = 3;
  apply_mm_event(p, std::get<MmEvent>(decoded(&map, sizeof map)));
  EXPECT_EQ(p.address_space.size(), 0u);
  EXPECT_EQ(p.events.mmap, 1u);
  EXPECT_TRUE(p.stacks["mmap_growth"].empty());
}

TEST(TraceBuilder, GcEventAddsItsPauseHeapAndTriggerWeight) {
  model::Trace trace;
  trace.info.started_boot_ns = 1'000'000'000;
  auto& p = trace.processes.add({100, 1}, 1);
  ml_v8_event e{};
  e.h = header(ML_EV_V8_GC, 100, 3'500'000'000);
  e.start_ns = 3'000'000'000;
  e.kind = 1;  // mark-compact
  e.flags = ML_V8_GC_HEAP_BEFORE | ML_V8_GC_HEAP_AFTER;
  e.heap_used_before_bytes = 50 << 20;
  e.heap_used_after_bytes = 20 << 20;
  e.stack_id = 4;
  apply_gc_event(trace, p, std::get<GcEvent>(decoded(&e, sizeof e)));
  ASSERT_EQ(p.v8.gcs.size(), 1u);
  EXPECT_DOUBLE_EQ(p.v8.gcs[0].t_s, trace.seconds_since_start(e.start_ns));
  EXPECT_DOUBLE_EQ(p.v8.gcs[0].pause_ms, (e.h.ts_ns - e.start_ns) / 1e6);
  EXPECT_EQ(p.v8.gcs[0].kind, model::gc_kind_from_collector(1));
  EXPECT_EQ(p.v8.heap_used_bytes, e.heap_used_after_bytes);
  EXPECT_EQ(p.stacks["gc_triggers"][4].bytes, static_cast<int64_t>(30 << 20));
  EXPECT_EQ(p.stacks["gc_triggers"][4].count, 1);
}

// A scavenge's trigger stack is sampled in the kernel (ML_V8_GC_STACK_GAP_NS): the one kept weighs the GCs
// it stands for, in count and in freed bytes, and the process says how many GCs its stacks stand for.
TEST(TraceBuilder, SampledGcStackWeighsTheGcsItStandsFor) {
  model::Trace trace;
  auto& p = trace.processes.add({100, 1}, 1);
  ml_v8_event e{};
  e.h = header(ML_EV_V8_GC, 100, 2'000'000);
  e.start_ns = 1'000'000;
  e.kind = 0;  // scavenge
  e.flags = ML_V8_GC_HEAP_BEFORE | ML_V8_GC_HEAP_AFTER;
  e.heap_used_before_bytes = 12 << 20;
  e.heap_used_after_bytes = 10 << 20;
  e.stack_id = 6;
  e.stack_weight = 5;
  apply_gc_event(trace, p, std::get<GcEvent>(decoded(&e, sizeof e)));
  e.stack_id = -1;  // an unstacked one: counted as a GC, in no stack
  e.stack_weight = 0;
  apply_gc_event(trace, p, std::get<GcEvent>(decoded(&e, sizeof e)));
  EXPECT_EQ(p.v8.gcs.size(), 2u);
  EXPECT_EQ(p.stacks["gc_triggers"][6].count, 5);
  EXPECT_EQ(p.stacks["gc_triggers"][6].bytes, static_cast<int64_t>(5 * (2 << 20)));
  EXPECT_EQ(p.v8.trigger_stacks, 1u);
  EXPECT_EQ(p.v8.trigger_stack_gcs, 5u);
}

TEST(TraceBuilder, GcWithoutHeapFiguresKeepsThemUnknown) {
  model::Trace trace;
  auto& p = trace.processes.add({100, 1}, 1);
  ml_v8_event e{};
  e.h = header(ML_EV_V8_GC, 100, 20);
  e.start_ns = 10;
  e.stack_id = -1;
  apply_gc_event(trace, p, std::get<GcEvent>(decoded(&e, sizeof e)));
  ASSERT_EQ(p.v8.gcs.size(), 1u);
  EXPECT_FALSE(p.v8.gcs[0].heap_used_before_bytes);
  EXPECT_FALSE(p.v8.heap_used_bytes);
  EXPECT_TRUE(p.stacks["gc_triggers"].empty());
}

ml_fd_event fd_event(uint32_t type, uint32_t kind, int64_t result, std::initializer_list<uint64_t> args) {
  ml_fd_event e{};
  e.h = header(type, 100, 10);
  e.kind = kind;
  e.result = result;
  size_t i = 0;
  for (uint64_t a : args) e.args[i++] = a;
  e.fds[0] = e.fds[1] = -1;
  e.stack_id = -1;
  return e;
}

TEST(FdEvents, OpenatRelativeToADirFdJoinsItsPath) {
  model::FdTable table;
  ml_fd_path_event dir{};
  dir.e = fd_event(ML_EV_FD_OPEN, ML_FDK_OPEN, 3, {0, O_RDONLY | O_DIRECTORY});
  std::strcpy(dir.path, "/var/data");
  ASSERT_TRUE(apply_fd_event(table, std::get<FdEvent>(decoded(&dir, sizeof dir)), 1.0));
  ml_fd_path_event file{};
  file.e = fd_event(ML_EV_FD_OPEN, ML_FDK_OPENAT, 4, {3, 0, O_RDONLY | O_CLOEXEC});
  std::strcpy(file.path, "x.log");
  ASSERT_TRUE(apply_fd_event(table, std::get<FdEvent>(decoded(&file, sizeof file)), 2.0));
  const auto* e = table.find(4);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->path, "/var/data/x.log");
  EXPECT_TRUE(e->cloexec);
  EXPECT_EQ(e->opened_by, "openat");
}

TEST(FdEvents, PipeOpensBothEndsAndCloseRemovesOne) {
  model::FdTable table;
  auto pipe = fd_event(ML_EV_FD_OPEN, ML_FDK_PIPE2, 0, {0, O_CLOEXEC});
  pipe.fds[0] = 5;
  pipe.fds[1] = 6;
  ASSERT_TRUE(apply_fd_event(table, std::get<FdEvent>(decoded(&pipe, sizeof pipe)), 1.0));
  EXPECT_EQ(table.open_count(), 2u);
  auto close = fd_event(ML_EV_FD_CLOSE, ML_FDK_CLOSE, 0, {5});
  ASSERT_TRUE(apply_fd_event(table, std::get<FdEvent>(decoded(&close, sizeof close)), 2.0));
  EXPECT_EQ(table.open_count(), 1u);
  EXPECT_EQ(table.find(5), nullptr);
  ASSERT_NE(table.find(6), nullptr);
  EXPECT_EQ(table.find(6)->type, model::FdType::kPipe);
}

TEST(FdEvents, AcceptTakesTheListenersProtocol) {
  model::FdTable table;
  auto listener = fd_event(ML_EV_FD_OPEN, ML_FDK_SOCKET, 7, {AF_INET6, SOCK_STREAM, 0});
  ASSERT_TRUE(apply_fd_event(table, std::get<FdEvent>(decoded(&listener, sizeof listener)), 1.0));
  auto conn = fd_event(ML_EV_FD_OPEN, ML_FDK_ACCEPT4, 8, {7, 0, SOCK_CLOEXEC});
  ASSERT_TRUE(apply_fd_event(table, std::get<FdEvent>(decoded(&conn, sizeof conn)), 2.0));
  ASSERT_NE(table.find(8), nullptr);
  ASSERT_TRUE(table.find(8)->socket);
  EXPECT_EQ(table.find(8)->socket->family, "inet6");
  EXPECT_EQ(table.find(8)->socket->protocol, "tcp");
  EXPECT_TRUE(table.find(8)->cloexec);
}

TEST(FdEvents, UnknownKindIsRefused) {
  model::FdTable table;
  auto e = fd_event(ML_EV_FD_OPEN, 99, 3, {});
  EXPECT_FALSE(apply_fd_event(table, std::get<FdEvent>(decoded(&e, sizeof e)), 1.0));
  EXPECT_EQ(table.open_count(), 0u);
}

TEST(FdEvents, ExitBitmapClosesWhatWasNotOpenAndAddsWhatWasUnseen) {
  model::FdTable table;
  for (int fd : {3, 4, 200}) {
    auto e = fd_event(ML_EV_FD_OPEN, ML_FDK_EVENTFD, fd, {0, 0});
    ASSERT_TRUE(apply_fd_event(table, std::get<FdEvent>(decoded(&e, sizeof e)), 1.0));
  }
  // Open at exit: 3 and 70 (bits of the first two words copied); 200 lies above the copied words.
  auto snap = std::make_unique<ml_fd_exit_fds>();
  snap->words = 2;
  snap->open_bits[0] = uint64_t{1} << 3;
  snap->open_bits[1] = uint64_t{1} << (70 - 64);
  apply_fds_at_exit(table, *snap, 5.0);
  EXPECT_NE(table.find(3), nullptr);
  EXPECT_EQ(table.find(4), nullptr);
  ASSERT_NE(table.find(70), nullptr);
  EXPECT_EQ(table.find(70)->type, model::FdType::kOther);
  EXPECT_NE(table.find(200), nullptr);
  EXPECT_EQ(table.open_count(), 3u);
}

TEST(FdEvents, ExitBitmapNeverReadPastItsWords) {
  model::FdTable table;
  auto snap = std::make_unique<ml_fd_exit_fds>();
  snap->words = 1u << 30;  // a count past the bitmap's size
  snap->open_bits[0] = 1;
  apply_fds_at_exit(table, *snap, 1.0);
  EXPECT_EQ(table.open_count(), 1u);
}

TEST(AbWindow, StaysOpenUntilAnAllocatorIsKnownThenClosesAndWaitsItsPeriod) {
  AbWindow w;
  EXPECT_TRUE(w.due(0));
  w.opened(1000, true);
  EXPECT_FALSE(w.due(1000));
  uint64_t over = 1000 + AbWindow::length_ns(true);
  EXPECT_FALSE(w.time_over(over - 1, true));
  EXPECT_FALSE(w.time_over(over, false));
  EXPECT_TRUE(w.time_over(over, true));
  w.closed(over);
  EXPECT_FALSE(w.is_open());
  EXPECT_FALSE(w.due(over + AbWindow::kStackWindowPeriodNs - 1));
  EXPECT_TRUE(w.due(over + AbWindow::kStackWindowPeriodNs));
  w.opened(0, false);
  w.failed(50);
  EXPECT_FALSE(w.due(50 + AbWindow::kFindWindowPeriodNs - 1));
  EXPECT_TRUE(w.due(50 + AbWindow::kFindWindowPeriodNs));
}

}  // namespace
}  // namespace memlens::collect
