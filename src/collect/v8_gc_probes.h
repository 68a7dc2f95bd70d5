// V8's GC probes alone (bpf/v8_gc.bpf.c), per process, for a viewer (`memlens top`): the start and end of
// each GC and V8's heap used after it, nothing else. No host-wide program: each probe is a uprobe (or USDT
// probe) on one process, attached when the viewer shows it and detached when it stops (or the viewer
// exits: the object owns every link).
#pragma once

#include <sys/types.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "collect/uprobe_link.h"
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

 private:
  V8GcProbes() = default;
  static int on_event(void* ctx, void* data, size_t size);

  v8_gc_bpf* skel_ = nullptr;
  ring_buffer* ring_ = nullptr;
  std::map<pid_t, std::vector<UprobeLink>> procs_;
  std::map<pid_t, std::vector<GcSeen>> pending_;
  uint64_t unpaired_ = 0;  // from detached processes' counters
};

}  // namespace memlens::collect
