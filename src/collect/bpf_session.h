// The loaded BPF objects, following libbpf-tools: open, configure (rodata, map sizes), load, attach, each
// step checked. One object per capability, each loaded only when on: the core (lifecycle, address space:
// bpf/memlens.bpf.c), file descriptors (bpf/fds.bpf.c), V8 (bpf/v8.bpf.c) and page faults
// (bpf/faults.bpf.c); the others use the core's shared maps (bpf_map__reuse_fd before their load). The
// session owns every link and perf event: destroying it detaches everything. Nothing is pinned, so a memlens
// killed with SIGKILL leaves nothing behind (the kernel drops links with their fds).
#pragma once

#include <sys/types.h>

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

#include "collect/hold.h"
#include "collect/hold_watchdog.h"
#include "collect/link_reaper.h"
#include "collect/uprobe_link.h"
#include "common/result.h"
#include "memlens/abi.h"

struct memlens_bpf;
struct faults_bpf;
struct fds_bpf;
struct v8_bpf;
struct bpf_object;
struct bpf_object_open_opts;
struct ring_buffer;
struct bpf_link;
struct bpf_program;

namespace memlens::collect {

struct SessionOptions {
  bool capture_stacks = false;
  uint32_t max_processes = 4096;
  // Power of two. The consumer maps the data pages twice (for wrap-around), so the ring costs memlens
  // twice this in RSS once it has cycled; 4 MiB holds over 40,000 address-space events, and the producer
  // wakes the consumer at 256 KiB pending.
  uint32_t ringbuf_bytes = 4u << 20;
  uint32_t stack_entries = 32768;
  // Kernel memory for the unwind tables of every traced file (allocated at load when stacks are on): node's
  // own table takes about 6 MiB, the C library's 0.5 MiB. A file that does not fit is named in the report
  // and unwound by frame pointers. 0: frame pointers only.
  uint64_t unwind_table_bytes = 32ull
                                << 20;  // kernel memory: entries x 512 bytes; a full table is counted as loss
  // One page fault in this many (per process, counted by a perf software event) runs the fault program,
  // which tells user from kernel mode and, with stacks, records the user stack: the faults' profile is
  // sampled at this period. 0: no fault sampling (the exact counts come from the kernel either way).
  uint32_t fault_sample_period = 1024;
  // With stacks: the mean bytes of address-space growth (mmap, brk, mremap) per user stack; 0: every growing
  // call's stack (model/growth_sampling.h).
  uint32_t growth_stack_bytes = 0;
  // The capabilities' objects (bpf/fds.bpf.c, bpf/v8.bpf.c), loaded only when on.
  bool fds = true;
  bool v8 = true;
  // Hold every new process of the traced tree until its probes are attached (bpf/memlens.bpf.c), with a
  // watchdog that releases them if memlens dies (collect/hold_watchdog.h).
  bool hold = false;
};

struct ProbeStatus {
  std::string name;
  bool attached = false;
  std::string reason;  // why not, when not attached
};

using LossCounts = std::array<uint64_t, ML_LOSS_REASONS>;

class BpfSession {
 public:
  static Result<std::unique_ptr<BpfSession>> open_and_load(const SessionOptions& opts);
  ~BpfSession();
  BpfSession(const BpfSession&) = delete;
  BpfSession& operator=(const BpfSession&) = delete;

  // Attaches the host-wide lifecycle programs (fork, exec, exit); a failure is fatal. The statuses also
  // say whether fault sampling is available (its object loaded).
  Result<std::vector<ProbeStatus>> attach_kernel_probes();

  // Fault sampling of one process: a perf software event (page faults, sample period
  // fault_sample_period()) with the fault program attached, inherited by the threads and children the
  // process starts from now on. all_threads: one event per thread that exists now (a process attached
  // late); else the process's main thread only (a process not started yet, or forked while traced, which
  // inherits its parent's event and needs none: see needs_fault_events). An error when the kernel refused.
  // The events stay open until the session ends: closing one would end the events its process's children
  // inherited, which may outlive it.
  Status sample_faults(pid_t pid, bool all_threads);
  bool samples_faults() const { return faults_skel_ != nullptr; }

  // Tracked-pid map: the kernel follows fork from these.
  Status track(pid_t pid, uint64_t start_time_ns);
  void untrack(pid_t pid);

  std::optional<ml_proc_stats> read_stats(pid_t pid) const;
  void forget_stats(pid_t pid);
  LossCounts read_losses() const;

  // Holds (see SessionOptions::hold). Whether new processes are held, and forks too (the kernel can signal
  // another task from BPF: Linux 6.13+; else only exec'd images are held).
  bool holds_exec() const { return holds_; }
  // What the kernel's BTF says it can do, read in one pass (the BTF is megabytes to parse).
  struct KernelFacts {
    // It has the BPF function that signals another task (bpf_send_signal_task, Linux 6.13), which
    // holding a forked child needs.
    bool can_signal_task = false;
    // Its oom:mark_victim tracepoint passes the victim's task (Linux 6.8+; its pid before): only then is
    // the OOM killer's choice of a tracked process marked on its exit event.
    bool marks_oom_victim_task = false;
  };
  static KernelFacts read_kernel_facts();
  bool holds_fork() const { return holds_ && holds_fork_; }
  // Whether that mark is being made: the program is attached. Then an exit event without it is no OOM kill.
  bool marks_oom_victims() const { return marks_oom_victims_; }
  // Releases pid (held since the kernel stopped the process that started at start_time_ns) and forgets
  // the hold.
  ReleaseOutcome release(pid_t pid, uint64_t start_time_ns);
  // End of trace: no new hold from now on, and every process still held is released. Returns how many.
  size_t release_all();
  // Sampled page-fault stacks of one process (stack id -> sampled faults), removed from the kernel map.
  std::vector<std::pair<int32_t, uint64_t>> take_fault_stacks(pid_t pid);
  // The sample period of the faults (0: not sampled).
  uint32_t fault_sample_period() const { return faults_skel_ ? fault_sample_period_ : 0; }
  // The unwind tables (include/memlens/abi.h): whether there is a rows array (not when stacks are off), its
  // capacity in rows, writing rows into it, and the per-process mappings map.
  bool has_unwind_rows() const { return unwind_row_capacity_ > 0; }
  uint32_t unwind_row_capacity() const { return unwind_row_capacity_; }
  // Copies n rows to [first, first + n) of the array through a mapping of those pages only, unmapped
  // after: the array is kernel memory allocated whole at load, and a mapping of all of it would show
  // every page in memlens's RSS (the kernel maps them all at once), used or not.
  Result<void> write_unwind_rows(uint32_t first, const ml_unwind_row* rows, size_t n);
  int unwind_procs_fd() const;
  int unwind_files_fd() const;  // ml_unwind_files: each loaded file by the kernel's identity
  // What the stack walks did (enum ml_unwind_stat), summed over the CPUs.
  std::array<uint64_t, ML_UNWIND_STATS> read_unwind_stats() const;
  // User stack of a stack id (innermost first), empty if unknown.
  std::vector<uint64_t> stack(int32_t stack_id) const;
  // JS frames (struct ml_js_proc): sets or removes the V8 frame layout of a process, whose stacks then
  // carry the SharedFunctionInfo address of their JS frames (js_frames: same index as stack()'s frames,
  // 0 where none; empty when the stack has no JS frame).
  Status set_js_layout(pid_t pid, const ml_js_proc& layout);
  void clear_js_layout(pid_t pid);
  std::vector<uint64_t> js_frames(int32_t stack_id) const;
  // The stacks with JS frames recorded since the last call (those in seen are skipped; the new ones are
  // added to it), with the process that recorded each: their functions are named while it lives.
  std::vector<std::pair<int32_t, ml_js_frames>> new_js_stacks(std::unordered_set<int32_t>& seen) const;

  // Hands uprobes over to be detached off the caller's thread (see collect/link_reaper.h).
  void retire(UprobeLink link) { reaper_.retire(std::move(link)); }
  void retire(std::vector<UprobeLink> links) { reaper_.retire(std::move(links)); }
  // Waits until every retired uprobe is detached.
  void drain_retired() { reaper_.drain(); }

  memlens_bpf* skeleton() { return skel_; }
  // The capabilities' objects: null when off.
  fds_bpf* fds() { return fds_skel_; }
  v8_bpf* v8() { return v8_skel_; }
  // Every loaded object, the core first.
  std::vector<bpf_object*> objects() const;
  int ringbuf_fd() const;

 private:
  BpfSession() = default;
  Status load_faults(const SessionOptions& opts);
  // Hands the core's maps over to obj (every map of the same name) before obj is loaded.
  Status share_core_maps(bpf_object* obj, const char* what);
  template <typename Skel>
  Status load_capability(Skel*& out, Skel* (*open)(const bpf_object_open_opts*), int (*load)(Skel*),
                         void (*destroy)(Skel*), const char* what, bool capture_stacks);

  memlens_bpf* skel_ = nullptr;
  faults_bpf* faults_skel_ = nullptr;
  fds_bpf* fds_skel_ = nullptr;
  v8_bpf* v8_skel_ = nullptr;
  std::string faults_unavailable_;       // why fault sampling is off, when it is
  std::vector<bpf_link*> fault_events_;  // the perf events' links (each owns its event's fd)
  std::vector<bpf_link*> links_;
  uint32_t fault_sample_period_ = 0;
  uint32_t unwind_row_capacity_ = 0;  // 0: no rows array
  bool holds_ = false, holds_fork_ = false;
  bool marks_oom_victims_ = false;
  HoldWatchdog watchdog_;
  LinkReaper reaper_;  // drained first thing in the destructor, while the programs are still loaded
};

}  // namespace memlens::collect
