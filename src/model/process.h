// The per-process memory model: identity, what the kernel says about its memory at every interval, and
// its address space. Processes are keyed by (pid, start time), never by pid alone: a pid can be reused.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "model/address_space.h"
#include "model/attribution.h"
#include "model/fd_table.h"
#include "model/js_objects.h"
#include "model/loss.h"
#include "model/stack_kinds.h"
#include "model/v8_state.h"

namespace memlens::model {

struct ProcessKey {
  pid_t pid = 0;
  uint64_t start_time_ticks = 0;  // task start since boot in clock ticks, as /proc/PID/stat gives it
  auto operator<=>(const ProcessKey&) const = default;
};

// Converts the kernel's start_boottime (ns) to /proc's clock ticks, so both sources give the same key.
uint64_t start_time_ns_to_ticks(uint64_t ns);

struct RssFigures {
  uint64_t anon_bytes = 0;
  uint64_t file_bytes = 0;
  uint64_t shmem_bytes = 0;
  uint64_t swap_bytes = 0;
  uint64_t total() const { return anon_bytes + file_bytes + shmem_bytes; }
};

// One timeline sample per interval. Later layers fill the optional figures they know.
struct Sample {
  double t_s = 0;  // since the trace started
  RssFigures rss;
  uint64_t faults = 0;  // cumulative, traced
  uint64_t events = 0;  // cumulative address-space events
  std::optional<uint64_t> js_heap_used_bytes;
  std::optional<uint64_t> array_buffers_bytes;
  std::optional<uint64_t> fds_open;
  std::map<std::string, uint64_t> categories;  // attribution: category -> resident bytes
};

// What one user stack (a stack id of the kernel's stack table) accounts for, in one stack kind.
struct StackWeights {
  int64_t bytes = 0;       // bytes allocated (mapped, faulted in, backing-store bytes) by this stack
  int64_t count = 0;       // events
  int64_t live_bytes = 0;  // of bytes, still live at the end (where frees are known)
};

// Keyed by stack kind (model/stack_kinds.h).
using StackTable = std::map<std::string, std::map<int32_t, StackWeights>>;

// Samples kept per process (about 13 MB at most: four and a half hours at the default interval). Past it
// every other sample is thinned out and from then on one in a stride that doubles at each thinning is
// kept, the newest always: a trace of days keeps an even timeline for the verdicts and the charts.
inline constexpr size_t kMaxTimelineSamples = 16384;

struct EventCounts {
  uint64_t mmap = 0, munmap = 0, mremap = 0, brk = 0, madvise = 0;
  // Of mmap, those that mapped a file: what can bring new code (libraries), which the unwinder and the
  // symbolizer must read at once; anonymous ones can wait for the next sample. Not reported.
  uint64_t file_mmap = 0;
  uint64_t total() const { return mmap + munmap + mremap + brk + madvise; }
};

class Process;
// Appends a sample to the process's timeline, thinning it when it is full (kMaxTimelineSamples).
void add_sample(Process& p, Sample s);

class Process {
 public:
  Process(ProcessKey key, pid_t ppid) : key_(key), ppid_(ppid) {}

  const ProcessKey& key() const { return key_; }
  pid_t pid() const { return key_.pid; }
  pid_t ppid() const { return ppid_; }

  // Identity details, filled from /proc while the process lives.
  std::string comm;
  std::string exe;
  std::vector<std::string> cmdline;
  uint64_t start_time_ns = 0;  // CLOCK_BOOTTIME
  double first_seen_s = 0;     // trace time when memlens started tracking it
  bool attached_late = false;  // existed before memlens (attach mode): its history before is unknown
  // memlens's own child (`memlens run`), held until its probes are attached and then exec'ing the
  // command: until that exec its image is memlens, whose symbols and stacks are of no interest.
  bool before_command_exec = false;
  bool image_loading = false;  // exec'd, and no address-space call of the new image seen yet

  // Latest kernel figures.
  RssFigures rss;
  uint64_t rss_peak_bytes = 0;
  uint64_t vm_size_bytes = 0;  // the virtual size (VmSize) at the last sample of the live host; not reported
  // /proc/PID/maps as the live host read it at this sample, for the extensions' on_sample (they need not
  // read it again); empty otherwise, and between samples.
  std::shared_ptr<const std::vector<proc::MapEntry>> maps_at_sample;
  // Faults taken in user mode and in kernel mode (on user memory), estimated from samples: one fault in
  // fault_sample_period runs memlens's fault program (0: not sampled, both 0).
  uint64_t faults_user = 0, faults_kernel = 0;
  uint32_t fault_sample_period = 0;
  // The mmap_growth stacks' sampling: one stack per this many bytes of growth on average, the least and
  // the most of the trace (the kernel side coarsens it while a process maps memory fast); 0: every
  // growing call's stack, or none seen (model/growth_sampling.h).
  uint32_t growth_stack_sample_min = 0, growth_stack_sample_max = 0;
  // The kernel's own fault counters: at the start of tracking (from /proc), and those taken while
  // tracked (at each sample from /proc, at exit from the BPF side, which folds in every thread).
  uint64_t minflt_at_start = 0, majflt_at_start = 0;
  // The fault counters of its live threads when tracking began: the exit program adds each exiting
  // thread's whole count, so these come off the exit figures.
  uint64_t thread_minflt_at_start = 0, thread_majflt_at_start = 0;
  uint64_t minflt = 0, majflt = 0;
  bool has_kernel_fault_counts = false;

  std::optional<int> exit_status;  // wait status decoded: exit code, or 128+signal
  std::optional<double> exited_at_s;
  // From its exit event, when the kernel marks OOM victims: whether the OOM killer chose it.
  std::optional<bool> oom_victim_marked;
  bool alive() const { return !exit_status.has_value() && !exited_at_s.has_value(); }

  AddressSpace address_space;
  FdTable fds;
  V8State v8;
  JsObjectsState js_objects;  // V8's own view through its inspector (--js-objects)
  StackTable stacks;  // kind -> stack id -> weights; symbolized when the process ends or the trace does
  AttributionState attribution;  // resident bytes per category, limits (attribution extension)
  EventCounts events;
  std::vector<Sample> timeline;   // add with add_sample
  uint64_t timeline_thinned = 0;  // samples left out of it (kMaxTimelineSamples)
  uint64_t timeline_stride = 1;
  uint64_t timeline_seen = 0;
  bool timeline_last_on_stride = true;
  std::vector<std::string> notes;  // things the user should know about this process's figures

  // Loss accounting (model/loss.h): this process's events lost (the causes that are per process: ring_full,
  // map_full, unpaired), per source that counts them ("kernel", "v8"), and the time it ran without its
  // probes.
  std::map<std::string, EventLoss> lost_by_source;
  EventLoss lost() const {
    EventLoss total;
    for (const auto& [source, l] : lost_by_source) total += l;
    return total;
  }
  UntracedTime untraced;
  // Holds (bpf/memlens.bpf.c): how often the kernel stopped it until its probes were attached, and for how
  // long in all; held_since_ns: the kernel's time of the hold in progress (0: none).
  uint32_t holds = 0;
  double held_s = 0;
  uint64_t held_since_ns = 0;

 private:
  ProcessKey key_;
  pid_t ppid_;
};

// All processes seen during a trace, in order of discovery.
class Registry {
 public:
  Process& add(ProcessKey key, pid_t ppid);
  Process* find(const ProcessKey& key);
  // The live process currently holding pid (the newest with that pid that has not exited).
  Process* find_live(pid_t pid);
  const std::vector<std::unique_ptr<Process>>& all() const { return order_; }
  std::vector<Process*> live();
  // Drops a process that has exited (a long-running agent keeps no model of the dead); false when it is
  // unknown or still alive.
  bool forget(const ProcessKey& key);

 private:
  std::map<ProcessKey, Process*> by_key_;
  std::vector<std::unique_ptr<Process>> order_;
};

}  // namespace memlens::model
