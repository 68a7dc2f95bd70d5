// V8's GC probes alone (bpf/v8_gc.bpf.c), per process, for a viewer (`memlens top`): the start and end of
// each GC, V8's heap used after it and its committed heap (the return of Heap::CommittedMemory, which V8
// calls around each GC), nothing else; and the ArrayBuffer allocator's own byte counter, read from the
// process's memory (the allocator object found by its vtable pointer, no probe). No host-wide program: each
// probe is a uprobe (or USDT probe) on one process, attached when the viewer shows it and detached when it
// stops (or the viewer exits: the object owns every link).
#pragma once

#include <sys/types.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "collect/uprobe_link.h"
#include "collect/v8_process_reads.h"
#include "common/result.h"

struct v8_gc_bpf;
struct ring_buffer;

namespace memlens::collect {

// One GC seen by the probes.
struct GcSeen {
  double end_s = 0;    // CLOCK_BOOTTIME, seconds
  double seconds = 0;  // pause: end - start
  bool full = false;   // mark-compact (uprobes) or mark-sweep-compact (USDT type bits)
  std::optional<uint64_t> heap_used_after_bytes;  // Heap::SizeOfObjects() at its end (uprobes only)
};

class V8GcProbes {
 public:
  static Result<std::unique_ptr<V8GcProbes>> open_and_load();
  ~V8GcProbes();
  V8GcProbes(const V8GcProbes&) = delete;
  V8GcProbes& operator=(const V8GcProbes&) = delete;

  // Attaches the GC probes to pid (a node process): "uprobes" or "usdt" when attached, else why not.
  Result<std::string> attach(pid_t pid);
  void detach(pid_t pid);
  bool attached(pid_t pid) const { return procs_.count(pid) != 0; }
  size_t attached_count() const { return procs_.size(); }

  // The GCs that ended since the last call, per process (drains the ring buffer).
  std::map<pid_t, std::vector<GcSeen>> take_gcs();
  // GC events the kernel could not hand over (ring buffer full, GC start/end not paired).
  uint64_t lost() const;

  // V8's committed heap of pid's main isolate as V8 last computed it (at its last GC, or the last heap
  // statistics call); nullopt before the first, or when this build has no Heap::CommittedMemory.
  std::optional<uint64_t> heap_committed(pid_t pid) const;
  // The live bytes of pid's main ArrayBuffer allocator (memoryUsage().arrayBuffers), read now. The
  // allocator object is looked for in the process's [heap] (where node allocates it at start-up) by its
  // vtable pointer: at the first call, then again every kAllocatorRescanS while not found, at most
  // kAllocatorScans times (node makes it at start-up: a process past it will not have one later).
  // nullopt, with why in *why_not, when not known.
  std::optional<uint64_t> array_buffer_bytes(pid_t pid, double now_s, std::string* why_not = nullptr);
  static constexpr double kAllocatorRescanS = 10;
  static constexpr int kAllocatorScans = 3;

 private:
  V8GcProbes() = default;
  static int on_event(void* ctx, void* data, size_t size);

  v8_gc_bpf* skel_ = nullptr;
  ring_buffer* ring_ = nullptr;
  struct Attached {
    std::vector<UprobeLink> links;
    std::optional<uint32_t> counter_offset;    // of the allocator's byte counter
    std::optional<uint64_t> vptr_file_offset;  // of the allocator's vtable pointer in the V8 holder
    std::string holder_path;                   // the V8 holder as the process maps it
    std::vector<V8Allocator> allocators;
    std::optional<double> last_scan_s;
    int scans = 0;
    std::string why_no_allocator;
  };
  std::map<pid_t, Attached> procs_;
  std::map<pid_t, std::vector<GcSeen>> pending_;
  uint64_t unpaired_ = 0;  // from detached processes' counters
};

}  // namespace memlens::collect
