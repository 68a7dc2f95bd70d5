// The per-event cost of the decode/build seam on the drain loop: a ring-buffer record decoded to a typed
// event, then applied to the model by the trace builder; and the cost of writing an event to a capture.
#include <benchmark/benchmark.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "collect/capture_file.h"
#include "collect/capture_records.h"
#include "collect/decode.h"
#include "collect/replay.h"
#include "collect/trace_builder.h"
#include "memlens/abi.h"
#include "model/trace.h"

namespace {

using namespace memlens;
using namespace memlens::collect;

ml_mm_event mm_record(uint32_t type, uint64_t addr, uint64_t i) {
  ml_mm_event e{};
  e.h.type = type;
  e.h.pid = 100;
  e.h.ts_ns = 1'000'000'000 + i;
  e.addr = addr;
  e.len_bytes = 64 << 10;
  e.result = type == ML_EV_MMAP ? static_cast<int64_t>(addr) : 0;
  e.fd = -1;
  e.flags = MAP_PRIVATE | MAP_ANONYMOUS;
  e.stack_id = static_cast<int32_t>(i % 64);
  return e;
}

void BM_Decode(benchmark::State& state) {
  auto rec = mm_record(ML_EV_MMAP, 0x7f0000000000, 1);
  for (auto _ : state) benchmark::DoNotOptimize(decode_event(&rec, sizeof rec));
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Decode);

// mmap then munmap of 64 KiB at one of 1024 addresses: the address space stays small and the map/unmap
// work is what a busy allocator costs.
void BM_DecodeAndApply(benchmark::State& state) {
  model::Trace trace;
  ReplayHost host(trace);  // address-space events never reach the host
  TraceBuilder builder(trace, host);
  builder.track(100, 1, 1'000'000'000, false);
  uint64_t i = 0;
  for (auto _ : state) {
    uint64_t addr = 0x7f0000000000 + (i % 1024) * (128 << 10);
    auto map = mm_record(ML_EV_MMAP, addr, i);
    auto unmap = mm_record(ML_EV_MUNMAP, addr, i);
    builder.apply(std::get<Event>(decode_event(&map, sizeof map)));
    builder.apply(std::get<Event>(decode_event(&unmap, sizeof unmap)));
    ++i;
  }
  state.SetItemsProcessed(2 * state.iterations());
}
BENCHMARK(BM_DecodeAndApply);

void BM_RecordEvent(benchmark::State& state) {
  std::string path = "/tmp/memlens-bench-" + std::to_string(getpid()) + ".mlcap";
  auto w = CaptureWriter::create(path, {0, "bench"});
  if (!w) {
    state.SkipWithError(w.error().describe().c_str());
    return;
  }
  auto rec = mm_record(ML_EV_MMAP, 0x7f0000000000, 1);
  Event e = std::get<Event>(decode_event(&rec, sizeof rec));
  for (auto _ : state) {
    std::get<MmEvent>(e).ts_ns += 1;
    (void)w->add(event_record_type(e), encode_event(e), RecordClass::kEvent);
  }
  (void)w->close();
  state.counters["bytes_per_event"] =
      static_cast<double>(w->bytes_written()) / static_cast<double>(state.iterations());
  state.SetItemsProcessed(state.iterations());
  unlink(path.c_str());
}
BENCHMARK(BM_RecordEvent);

}  // namespace

BENCHMARK_MAIN();
