// What memlens knows of V8 inside a node process: GCs, heap used at GC boundaries, live ArrayBuffer
// backing stores, external memory adjustments. Filled by the V8 extension from its probes.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace memlens::model {

// V8's GarbageCollector enum as PerformGarbageCollection receives it.
enum class GcKind : uint32_t { kScavenge = 0, kMarkCompact = 1, kMinorMarkCompact = 2, kUnknown = 255 };
const char* gc_kind_name(GcKind k);  // "scavenge", "mark_compact", "minor_mark_compact", "unknown"

struct GcEvent {
  double t_s = 0;  // start, trace time
  GcKind kind = GcKind::kUnknown;
  double pause_ms = 0;
  std::optional<uint64_t> heap_used_before_bytes;
  std::optional<uint64_t> heap_used_after_bytes;
  bool full() const { return kind == GcKind::kMarkCompact; }
};

// GCs thinned out of V8State::gcs: still counted, with their pauses.
struct GcTotals {
  uint64_t count = 0;
  std::map<std::string, uint64_t> by_kind;  // gc_kind_name -> count
  double pause_total_ms = 0, pause_max_ms = 0;
  double last_t_s = 0;  // the newest thinned GC with a heap figure, and that figure
  std::optional<uint64_t> last_heap_used_after_bytes;
};

// GC events kept per process (about 3 MB): a server scavenging 130 times a second for an hour would keep
// 470,000. Past it every other scavenge is thinned out, evenly over the trace, so the after-GC series keeps
// its shape (the verdicts reduce it to 600 points anyway) and every full GC stays (unless full GCs fill
// most of the list: then every other one of them too); from then on GCs other than full GCs are kept one in
// a stride that doubles at each thinning, so the density stays even.
inline constexpr size_t kMaxGcEventsKept = size_t{1} << 16;

struct V8State {
  bool probed = false;       // V8 GC probes are attached to this process
  std::string probe_source;  // "uprobes" or "usdt"
  std::string holder_path;   // the ELF object holding V8 (node or libnode.so), as the process sees it
  std::vector<GcEvent> gcs;  // add with record_gc
  GcTotals gcs_thinned;
  // GC trigger stacks kept (gc_triggers profile) and the GCs they stand for: a GC's stack is sampled, at
  // most one per ML_V8_GC_STACK_GAP_NS (full GCs: ML_V8_GC_FULL_STACK_GAP_NS) a thread, and weighs the
  // GCs of its kind since the last.
  uint64_t trigger_stacks = 0, trigger_stack_gcs = 0;
  bool thin_gcs = true;          // false: the owner bounds `gcs` itself (serve counts, then keeps the last)
  uint64_t gc_stride = 1;        // GCs other than full GCs are kept one in this many
  uint64_t gc_partial_seen = 0;  // GCs other than full GCs seen since the stride grew past 1
  std::optional<uint64_t> heap_used_bytes;  // after the last GC
  std::optional<uint64_t> heap_size_limit_bytes;

  // ArrayBuffer/Buffer backing stores, from Node's ArrayBuffer allocator. Live bytes are the allocators'
  // own counter (what memoryUsage().arrayBuffers returns, summed over the main thread's and the workers'
  // allocators), read from the process each sample; with --v8-alloc-probes, every allocation and free is
  // also counted.
  bool array_buffers_probed = false;     // live bytes are known
  std::string array_buffers_source;      // "allocator_counter" or "allocation_probes"
  uint64_t array_buffer_live_bytes = 0;  // now (at exit for a process that exited)
  uint64_t array_buffer_peak_bytes = 0;  // highest live figure seen (samples, and the kernel's when counting)
  uint32_t array_buffer_allocators = 0;  // allocator objects read (main thread + worker threads)
  bool array_buffers_counting = false;   // the totals below are counted (--v8-alloc-probes)
  uint64_t array_buffer_allocated_total = 0;
  uint64_t array_buffer_freed_total = 0;
  uint64_t array_buffer_allocations = 0;
  uint64_t array_buffer_frees = 0;
  // Attach mode with counting: allocations and frees before attach are unknown, so the totals count from
  // attach (see the report's notes).
  bool array_buffers_baseline_unknown = false;

  int64_t external_adjustments_bytes = 0;  // sum of signed adjustments seen
  uint64_t external_adjustments = 0;       // how many adjustments were seen
  bool external_probed = false;
};

// V8's GarbageCollector from the uprobe path, or v8::GCType bits from USDT node:gc__start.
GcKind gc_kind_from_collector(uint32_t collector);
GcKind gc_kind_from_gc_type(uint32_t gc_type_bits);

// Appends a GC, thinning the list when it is full (kMaxGcEventsKept).
void record_gc(V8State& v8, const GcEvent& g);

// The figures the report and the live line show for a process's GCs: counts, total and longest pause over
// every GC (thinned ones included); the percentiles over the GCs kept.
struct GcSummary {
  uint64_t count = 0;
  std::map<std::string, uint64_t> by_kind;  // gc_kind_name -> count
  double pause_total_ms = 0, pause_max_ms = 0, pause_p50_ms = 0, pause_p99_ms = 0;
  std::optional<uint64_t> heap_used_after_last_gc_bytes;
};
GcSummary summarize_gcs(const V8State& v8);

}  // namespace memlens::model
