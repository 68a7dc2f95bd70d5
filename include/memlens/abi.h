// The one header shared by the BPF programs (bpf/) and userspace (src/collect/). Every struct that crosses
// the ring buffer or a map has fixed-width fields with units in their names, and its size is asserted on
// both sides so a mismatch fails the build instead of corrupting events.
#ifndef MEMLENS_ABI_H
#define MEMLENS_ABI_H

#ifdef __bpf__
/* vmlinux.h provides __u32 and friends */
#define ML_STATIC_ASSERT(c, m) _Static_assert(c, m)
#else
#include <linux/types.h>
#ifdef __cplusplus
#define ML_STATIC_ASSERT(c, m) static_assert(c, m)
#else
#define ML_STATIC_ASSERT(c, m) _Static_assert(c, m)
#endif
#endif

#define ML_ABI_VERSION 1
#define ML_COMM_LEN 16
#define ML_PATH_LEN 256
#define ML_MAX_STACK_DEPTH 64

// Ring-buffer event types. Address-space events come from uprobes on the C library's wrappers of the
// tracked processes; process events from the sched tracepoints.
enum ml_event_type {
  ML_EV_MMAP = 1,
  ML_EV_MUNMAP = 2,
  ML_EV_MREMAP = 3,
  ML_EV_BRK = 4,
  ML_EV_MADVISE = 5,
  ML_EV_MPROTECT = 6,
  ML_EV_FORK = 16,
  ML_EV_EXEC = 17,
  ML_EV_EXIT = 18,
  ML_EV_GC_START = 32,
  ML_EV_GC_END = 33,
  ML_EV_HEAP_SIZE = 34,
  ML_EV_BACKING_STORE_ALLOC = 35,
  ML_EV_BACKING_STORE_FREE = 36,
  ML_EV_EXTERNAL_MEMORY = 37,
  ML_EV_FD_OPEN = 48,
  ML_EV_FD_CLOSE = 49,
};

// Where events were lost, per CPU in the kernel (ml_loss map index).
enum ml_loss_reason {
  ML_LOSS_RINGBUF_FULL = 0,   // bpf_ringbuf_reserve failed: userspace did not drain in time
  ML_LOSS_PENDING_FULL = 1,   // no room to remember a call's arguments until it returns
  ML_LOSS_STACK = 2,          // bpf_get_stackid failed (table full or collision)
  ML_LOSS_TRACKED_FULL = 3,   // a new child could not be tracked: the tracked-pid map is full
  ML_LOSS_FAULT_REGIONS = 4,  // the per-region fault table is full: counted in the process total only
  ML_LOSS_REASONS = 8,
};

struct ml_event_header {
  __u32 type;    // enum ml_event_type
  __u32 pid;     // tgid as the host sees it
  __u32 tid;
  __u32 cpu;
  __u64 ts_ns;   // bpf_ktime_get_boot_ns(): CLOCK_BOOTTIME
};
ML_STATIC_ASSERT(sizeof(struct ml_event_header) == 24, "ml_event_header size");

// mmap/munmap/mremap/brk/madvise/mprotect, reported when the call returns (result known).
struct ml_mm_event {
  struct ml_event_header h;
  __u64 addr;       // mmap: hint; munmap/madvise/mprotect: start; mremap: old address; brk: requested break
  __u64 len_bytes;  // mmap/munmap/madvise/mprotect: length; mremap: old length
  __u64 new_len_bytes;  // mremap: new length
  __s64 result;     // mmap/mremap: mapped address or -errno; others: 0 or -1
  __u32 prot;       // mmap/mprotect: PROT_*
  __u32 flags;      // mmap/mremap: MAP_* / MREMAP_*
  __s32 fd;         // mmap: -1 for anonymous
  __u32 advice;     // madvise: MADV_*
  __u64 offset;     // mmap: file offset
  __s32 stack_id;   // user stack at the call (ml_stacks), -1 when not captured
  __u32 _pad;
  __u64 caller_ip;  // return address of the call: tells V8's page allocator from malloc from a thread stack
};
ML_STATIC_ASSERT(sizeof(struct ml_mm_event) == 96, "ml_mm_event size");

// fork/exec/exit of a tracked process.
struct ml_proc_event {
  struct ml_event_header h;
  __u32 ppid;          // fork: parent tgid
  __s32 exit_code;     // exit: wait status as in waitpid (code << 8 | signal)
  __u64 start_time_ns; // task start, CLOCK_BOOTTIME: (pid, start_time_ns) identifies a process
  __u64 minflt;        // exit: minor faults of all threads while tracked (the kernel's counters)
  __u64 majflt;        // exit: major faults likewise
  char comm[ML_COMM_LEN];
};
ML_STATIC_ASSERT(sizeof(struct ml_proc_event) == 72, "ml_proc_event size");

// V8 events (uprobes on the node binary or USDT). value meanings per type:
//   GC_START:  arg0 = collector/GC kind as V8 passes it, value = heap used before (0 if unknown)
//   GC_END:    arg0 = kind, value = heap used after (0 if unknown)
//   HEAP_SIZE: value = heap used (bytes) read at a GC boundary
//   BACKING_STORE_ALLOC: arg1 = backing store address, value = byte length
//   BACKING_STORE_FREE:  arg1 = backing store address
//   EXTERNAL_MEMORY:     value = signed change (bytes)
struct ml_v8_event {
  struct ml_event_header h;
  __u64 arg0;
  __u64 arg1;
  __s64 value;
  __s32 stack_id;
  __u32 probe;  // index of the probe that fired (userspace table)
};
ML_STATIC_ASSERT(sizeof(struct ml_v8_event) == 56, "ml_v8_event size");

// Per tracked process: kept in the kernel at every change, read by userspace each interval. The rss
// figures are the kernel's own mm counters, read on every kmem:rss_stat event of the process's mm.
struct ml_proc_stats {
  __u64 rss_file_bytes;
  __u64 rss_anon_bytes;
  __u64 rss_swap_bytes;
  __u64 rss_shmem_bytes;
  __u64 rss_peak_bytes;     // max of file+anon+shmem over every change seen
  __u64 rss_updates;        // kmem:rss_stat events seen
  __u64 faults_user;        // page faults taken in user mode
  __u64 faults_kernel;      // faults on user addresses taken in kernel mode (copy_to_user, ...)
  __u64 last_change_ns;
  __u64 start_time_ns;
  // The kernel's own fault counters (as /proc/PID/stat sums them) accumulated while tracked: each thread's
  // counters minus their value when memlens first saw the thread, added when the thread exits.
  __u64 exited_threads_minflt;
  __u64 exited_threads_majflt;
};
ML_STATIC_ASSERT(sizeof(struct ml_proc_stats) == 96, "ml_proc_stats size");

// Key of the per-region page-fault table: faults are counted per process and 2 MiB region, in the kernel.
#define ML_FAULT_REGION_SHIFT 21
struct ml_fault_key {
  __u32 pid;
  __u32 _pad;
  __u64 region;  // address >> ML_FAULT_REGION_SHIFT
};
ML_STATIC_ASSERT(sizeof(struct ml_fault_key) == 16, "ml_fault_key size");

// Value of the tracked-process map.
struct ml_tracked {
  __u64 start_time_ns;
  __u64 tracked_since_ns;  // CLOCK_BOOTTIME when tracking began: threads born later start from zero faults
};

// A thread's fault counters when memlens first saw it (ml_thread_base map).
struct ml_thread_base {
  __u64 minflt;
  __u64 majflt;
};

#endif  // MEMLENS_ABI_H
