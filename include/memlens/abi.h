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
#define ML_MAX_STACK_DEPTH 128

// Ring-buffer event types. Address-space events come from uprobes on the C library's wrappers of the
// tracked processes; process events from the sched tracepoints.
enum ml_event_type {
  ML_EV_MMAP = 1,
  ML_EV_MUNMAP = 2,
  ML_EV_MREMAP = 3,
  ML_EV_BRK = 4,
  ML_EV_MADVISE = 5,
  // 6 was mprotect: not probed (V8 calls it for every page it commits, and what it changes is not memory).
  ML_EV_FORK = 16,
  ML_EV_EXEC = 17,
  ML_EV_EXIT = 18,
  ML_EV_V8_GC = 32,  // one completed GC (struct ml_v8_event); backing stores are counted in ml_v8_counters
  ML_EV_V8_AB_NOTICE = 33,  // an ArrayBuffer sampling window saw a new allocator or ran out (ml_v8_ab_notice)
  ML_EV_FD_OPEN = 48,
  ML_EV_FD_CLOSE = 49,
};

// Where events were lost, per CPU in the kernel (ml_loss map index).
enum ml_loss_reason {
  ML_LOSS_RINGBUF_FULL = 0,  // bpf_ringbuf_reserve failed: userspace did not drain in time
  ML_LOSS_PENDING_FULL = 1,  // no room to remember a call's arguments until it returns
  ML_LOSS_STACK = 2,         // a user stack not recorded (unreadable, table full, or a 31-bit id collision)
  ML_LOSS_TRACKED_FULL = 3,  // a new child could not be tracked: the tracked-pid map is full
  // 4: unused (was a per-region fault table)
  ML_LOSS_HOLD_FAILED = 5,  // a new process could not be held (the hold map was full, or no signal)
  ML_LOSS_JS_FRAMES = 6,    // a stack kept without the function ids of its JS frames (ml_js_frames full)
  ML_LOSS_REASONS = 8,
};

// How the kernel treated a new process (ml_proc_event.flags, fork and exec events).
#define ML_PROC_HELD 0x1         // stopped (SIGSTOP) before its first instruction; userspace releases it
#define ML_PROC_HOLD_FAILED 0x2  // it should have been held and was not (hold_error says why): it runs on
#define ML_PROC_UNTRACKED 0x4    // fork: the tracked-process map is full, the child is not followed
#define ML_PROC_OOM_VICTIM 0x8   // exit: the kernel's OOM killer chose it (tracepoint oom:mark_victim)

// A process the kernel holds (ml_held map, keyed by tgid) until userspace has attached its probes and
// sends SIGCONT. The entry is what lets the watchdog (collect/hold_watchdog.h) release it if memlens dies.
struct ml_hold {
  __u64 start_time_ns;  // task start_boottime: with the pid, which process (a pid can be reused)
  __u64 held_at_ns;     // CLOCK_BOOTTIME when the kernel stopped it
};
ML_STATIC_ASSERT(sizeof(struct ml_hold) == 16, "ml_hold size");

struct ml_event_header {
  __u32 type;  // enum ml_event_type
  __u32 pid;   // tgid as the host sees it
  __u32 tid;
  __u32 cpu;
  __u64 ts_ns;  // bpf_ktime_get_boot_ns(): CLOCK_BOOTTIME
};
ML_STATIC_ASSERT(sizeof(struct ml_event_header) == 24, "ml_event_header size");

// mmap/munmap/mremap/brk/madvise, reported when the call returns (result known).
struct ml_mm_event {
  struct ml_event_header h;
  __u64 addr;           // mmap: hint; munmap/madvise: start; mremap: old address; brk: requested break
  __u64 len_bytes;      // mmap/munmap/madvise: length; mremap: old length
  __u64 new_len_bytes;  // mremap: new length
  __s64 result;         // mmap/mremap: mapped address or -errno; others: 0 or -1
  __u32 prot;           // mmap: PROT_*
  __u32 flags;          // mmap/mremap: MAP_* / MREMAP_*
  __s32 fd;             // mmap: -1 for anonymous
  __u32 advice;         // madvise: MADV_*
  __u64 offset;         // mmap: file offset
  __s32 stack_id;       // user stack at the call (ml_stacks), -1 when not captured
  // With stacks: 0 when every call that grows the address space has its stack; else the mean bytes of
  // growth per stack (a call growing n bytes has its stack with probability min(1, n / this)).
  __u32 stack_sample_bytes;
  __u64 caller_ip;  // return address of the call: tells V8's page allocator from malloc from a thread stack
};
ML_STATIC_ASSERT(sizeof(struct ml_mm_event) == 96, "ml_mm_event size");

// fork/exec/exit of a tracked process.
struct ml_proc_event {
  struct ml_event_header h;
  __u32 ppid;           // fork: parent tgid
  __s32 exit_code;      // exit: wait status as in waitpid (code << 8 | signal)
  __u64 start_time_ns;  // task start, CLOCK_BOOTTIME: (pid, start_time_ns) identifies a process
  __u64 minflt;         // exit: minor faults of the threads that exited while tracked, each its whole count
  __u64 majflt;         // exit: major faults likewise (userspace takes off what live threads had at tracking)
  char comm[ML_COMM_LEN];
  __u32 flags;       // ML_PROC_*
  __s32 hold_error;  // with ML_PROC_HOLD_FAILED: the negative errno of the step that failed
};
ML_STATIC_ASSERT(sizeof(struct ml_proc_event) == 80, "ml_proc_event size");

// One completed V8 garbage collection, emitted when it ends. The kernel pairs its start and end on the
// thread that ran it (uprobes on Heap::PerformGarbageCollection, or USDT node:gc__start/gc__done) and fills
// in the heap figures V8 computed at its boundaries when those probes fired in between.
#define ML_V8_GC_HEAP_BEFORE 0x1  // heap_used_before_bytes is set
#define ML_V8_GC_HEAP_AFTER 0x2   // heap_used_after_bytes is set
#define ML_V8_GC_USDT 0x4         // from USDT: kind is v8::GCType bits (1 scavenge, 2 minor MC, 4 MC)

// The trigger stack of a young-generation GC is walked for at most one GC of a thread (an isolate) in this
// long: a server scavenges a hundred times a second, and the walk costs more than the rest of the GC's
// probes together. The stacked GC stands for itself and the thread's unstacked ones since the last
// (stack_weight): at most 5 walks a second a thread, the gc_triggers profile's resolution in time.
#define ML_V8_GC_STACK_GAP_NS 200000000ull
// The same for full GCs (mark-compact), on their own clock and weights: a few a minute in a service, each
// with its own stack; an allocation storm can force several a second, each walk of their deep stacks
// costing close to 0.1 ms.
#define ML_V8_GC_FULL_STACK_GAP_NS 1000000000ull
struct ml_v8_event {
  struct ml_event_header h;      // ts_ns: end of the GC
  __u64 start_ns;                // CLOCK_BOOTTIME at its start: pause = h.ts_ns - start_ns
  __u64 heap_used_before_bytes;  // Heap::SizeOfObjects() at GCTracer::StartInSafepoint
  __u64 heap_used_after_bytes;   // Heap::SizeOfObjects() at GCTracer::StopInSafepoint
  __u32 kind;                    // uprobes: V8's GarbageCollector (0 scavenge, 1 mark-compact, 2 minor MC)
  __u32 flags;                   // ML_V8_GC_*
  __s32 stack_id;                // user stack of the thread at the GC's start (ml_stacks), -1 when none
  __u32 stack_weight;  // GCs of its kind that stack stands for (ML_V8_GC_*STACK_GAP_NS), 0 when none
};
ML_STATIC_ASSERT(sizeof(struct ml_v8_event) == 64, "ml_v8_event size");

// ArrayBuffer sampling windows. The default path puts no probe on every backing store: memlens reads the
// allocator's own byte counter (NodeArrayBufferAllocator::total_mem_usage_, what memoryUsage().arrayBuffers
// returns) from the process's memory each sample. To know where that counter is, and to sample allocation
// stacks, userspace opens short windows: it attaches probes on the allocator's Allocate functions for a
// moment, then detaches them. ml_v8_ab_window (map ml_v8_ab_windows, keyed by tgid) is the window's state.
#define ML_V8_AB_STACKS 0x1  // record the user stack and bytes of each allocation in the window
struct ml_v8_ab_window {
  __u64 start_ns;         // CLOCK_BOOTTIME when userspace opened it
  __u64 length_ns;        // the window is over at the first allocation after start + length,
  __u32 max_allocations;  // or after this many allocations (each one a trap: this bounds its cost)
  __u32 allocations;      // allocations seen in the window (updated by the kernel)
  __u32 flags;            // ML_V8_AB_*
  __u32 ended;            // set by the kernel when it reports the window over
};
ML_STATIC_ASSERT(sizeof(struct ml_v8_ab_window) == 32, "ml_v8_ab_window size");

// A NodeArrayBufferAllocator instance seen in a window (ml_v8_allocators key): the main thread and every
// worker thread have their own.
struct ml_v8_allocator_key {
  __u32 pid;
  __u32 _pad;
  __u64 addr;  // the allocator object (`this`) in the process
};
ML_STATIC_ASSERT(sizeof(struct ml_v8_allocator_key) == 16, "ml_v8_allocator_key size");

#define ML_V8_AB_NOTICE_ALLOCATOR 1    // addr is an allocator not seen before in this window
#define ML_V8_AB_NOTICE_WINDOW_OVER 2  // the window's time has run out: userspace detaches its probes
struct ml_v8_ab_notice {
  struct ml_event_header h;
  __u64 addr;
  __u32 kind;  // ML_V8_AB_NOTICE_*
  __u32 _pad;
};
ML_STATIC_ASSERT(sizeof(struct ml_v8_ab_notice) == 40, "ml_v8_ab_notice size");

// Backing-store allocations per (process, user stack), summed in the kernel (ml_v8_ab_stacks).
struct ml_v8_stack_key {
  __u32 pid;
  __s32 stack_id;
};
ML_STATIC_ASSERT(sizeof(struct ml_v8_stack_key) == 8, "ml_v8_stack_key size");
struct ml_v8_stack_weights {
  __u64 bytes;
  __u64 count;
};
ML_STATIC_ASSERT(sizeof(struct ml_v8_stack_weights) == 16, "ml_v8_stack_weights size");

// Per tracked node process (ml_v8_counters map, keyed by tgid, created by userspace when it attaches the
// V8 probes): external-memory adjustments, GC pairing losses and, with --v8-alloc-probes only, every
// ArrayBuffer backing-store allocation and free are counted in the kernel and read at every sample, never
// streamed one event per allocation.
struct ml_v8_counters {
  __u64 ab_allocated_bytes;  // NodeArrayBufferAllocator::Allocate + AllocateUninitialized (+ realloc growth)
  __u64 ab_allocations;
  __u64 ab_freed_bytes;  // NodeArrayBufferAllocator::Free (+ realloc shrink)
  __u64 ab_frees;
  __u64 ab_peak_live_bytes;    // max of allocated - freed seen after an allocation
  __s64 external_delta_bytes;  // sum of external-memory adjustments (V8 bypasses them for its own frees)
  __u64 external_adjustments;
  __u64 gc_end_unmatched;  // a GC end with no start remembered for its thread (counted as lost)
  __u64 gc_pending_full;   // a GC start that could not be remembered (counted as lost)
  // Set by userspace when it attaches ml_v8_heap_{before,after}_slot: the heap figure is the word at
  // heap_slot_disp[i](register heap_slot_base[i]) (x86 numbering: 3 rbx, 5 rbp, 12-15 r12-r15...), i = 0
  // before the GC, 1 after (node/probe_plan: AttachPoint::value_base). heap_slot_disp serves the GC end's
  // read too (below).
  __u32 heap_slot_base[2];
  __s32 heap_slot_disp[2];
  // Set by userspace when the GC end probe reads both figures instead, with no probe of their own
  // (node/probe_plan: HeapFiguresInTracer): the GCTracer is the word at heap_tracer_offset of the Heap
  // (%rdi at PerformGarbageCollection's entry) and the figures are at heap_slot_disp[i] of the tracer.
  // 0: the heap_used probes read them.
  __u32 heap_tracer_offset;
  __u32 _pad0;
  __u64 heap_figures_unread;  // GCs whose end found no tracer pointing back at their heap: no figures
};
ML_STATIC_ASSERT(sizeof(struct ml_v8_counters) == 104, "ml_v8_counters size");

// fd events (ML_EV_FD_OPEN, ML_EV_FD_CLOSE): uprobes on the C library's fd wrappers. The kind says which
// wrapper fired; userspace interprets the raw arguments (flags, cmd) per kind. The attach cookie of each
// uprobe is the kind.
enum ml_fd_kind {
  ML_FDK_OPEN = 1,            // open/open64(path, flags, mode): args[0] = path pointer, args[1] = flags
  ML_FDK_OPENAT = 2,          // openat/openat64(dirfd, path, flags, mode): args[2] = flags
  ML_FDK_CREAT = 3,           // creat(path, mode)
  ML_FDK_SOCKET = 4,          // socket(domain, type, protocol)
  ML_FDK_SOCKETPAIR = 5,      // socketpair(domain, type, protocol, sv[2]): fds[] read from sv
  ML_FDK_ACCEPT = 6,          // accept(fd, addr, len)
  ML_FDK_ACCEPT4 = 7,         // accept4(fd, addr, len, flags): args[2] = flags (not addr len)
  ML_FDK_PIPE = 8,            // pipe(fds[2])
  ML_FDK_PIPE2 = 9,           // pipe2(fds[2], flags)
  ML_FDK_DUP = 10,            // dup(old)
  ML_FDK_DUP2 = 11,           // dup2(old, new): new, if open, is closed first
  ML_FDK_DUP3 = 12,           // dup3(old, new, flags)
  ML_FDK_FCNTL = 13,          // fcntl(fd, cmd, arg): only F_DUPFD, F_DUPFD_CLOEXEC, F_SETFD are reported
  ML_FDK_EVENTFD = 14,        // eventfd(initval, flags)
  ML_FDK_EPOLL_CREATE = 15,   // epoll_create(size)
  ML_FDK_EPOLL_CREATE1 = 16,  // epoll_create1(flags)
  ML_FDK_TIMERFD = 17,        // timerfd_create(clock, flags)
  ML_FDK_SIGNALFD = 18,       // signalfd(fd, mask, flags): fd -1 creates one; otherwise modifies fd
  ML_FDK_MEMFD = 19,          // memfd_create(name, flags): args[0] = name pointer
  ML_FDK_INOTIFY_INIT = 20,   // inotify_init()
  ML_FDK_INOTIFY_INIT1 = 21,  // inotify_init1(flags)
  ML_FDK_PIDFD_OPEN = 22,     // pidfd_open(pid, flags): always close-on-exec
  ML_FDK_CLOSE = 32,          // close(fd), reported at entry: the fd is gone whatever close returns
  ML_FDK_CLOSE_RANGE = 33,    // close_range(first, last, flags), at entry
  // 34 was syscall(SYS_close): no longer probed (a breakpoint on every syscall() call of the process);
  // closes made past the C library's close() are found by reuse of the number and by /proc.
};

// One fd-creating call that succeeded (ML_EV_FD_OPEN, at return), or one close (ML_EV_FD_CLOSE, at entry).
struct ml_fd_event {
  struct ml_event_header h;
  __s64 result;     // the call's return value (the new fd for most kinds); 0 for close events
  __u64 args[3];    // the call's first three arguments, raw
  __s32 fds[2];     // pipe/pipe2/socketpair: the two fds written by the call; else -1
  __s32 stack_id;   // opening user stack (ml_stacks), -1 when not captured
  __u32 kind;       // enum ml_fd_kind
  __u64 caller_ip;  // return address of the call: the frame a frame-pointer walk from the entry misses
};
ML_STATIC_ASSERT(sizeof(struct ml_fd_event) == 80, "ml_fd_event size");

// An ML_EV_FD_OPEN of a kind with a path or a name (open, openat, creat, memfd_create): the event then
// carries the string, as the process passed it (relative paths are relative to its cwd or dirfd).
struct ml_fd_path_event {
  struct ml_fd_event e;
  char path[ML_PATH_LEN];
};
ML_STATIC_ASSERT(sizeof(struct ml_fd_path_event) == 336, "ml_fd_path_event size");

// The open fds of a tracked process as its last thread exits (ml_fd_exit_fds, keyed by tgid, written at
// sched_process_exit, which fires before the kernel releases the fd table): closes made past close()
// since the last /proc listing are known at exit too. A copy of the kernel's open_fds bitmap.
#define ML_FD_EXIT_MAX_FDS 16384
struct ml_fd_exit_fds {
  __u32 max_fds;  // size of the process's fd table; fds at or above words * 64 were not copied
  __u32 words;    // 64-bit words of open_bits copied (fds 0 .. words * 64 - 1)
  __u64 open_bits[ML_FD_EXIT_MAX_FDS / 64];
};
ML_STATIC_ASSERT(sizeof(struct ml_fd_exit_fds) == 8 + ML_FD_EXIT_MAX_FDS / 8, "ml_fd_exit_fds size");

// Per tracked process, read by userspace each interval. While the process runs, its RSS and exact fault
// counts come from /proc; the rss figures here are the kernel's own mm counters, read by the exit program
// as the last thread exits.
struct ml_proc_stats {
  __u64 rss_file_bytes;
  __u64 rss_anon_bytes;
  __u64 rss_swap_bytes;
  __u64 rss_shmem_bytes;
  __u64 rss_peak_bytes;  // the mm's high-water mark (hiwater_rss or the current total, the larger) at exit
  __u64 rss_updates;     // times the figures above were read (1 once the process has exited)
  __u64 faults_user;     // sampled page faults taken in user mode (samples: one per sample period)
  __u64 faults_kernel;   // sampled faults on user addresses taken in kernel mode (copy_to_user, ...)
  __u64 start_time_ns;
  // The kernel's own fault counters of the threads that exited while tracked: each thread's whole count,
  // added as it exits.
  __u64 exited_threads_minflt;
  __u64 exited_threads_majflt;
  // This process's events lost in the kernel, by cause (the global ml_loss counts include them).
  __u64 lost_ring_full;  // its event found the ring buffer full
  __u64 lost_map_full;   // its call's arguments found no room in the pending-call map
};
ML_STATIC_ASSERT(sizeof(struct ml_proc_stats) == 104, "ml_proc_stats size");

// Key of the sampled page-fault stacks: one fault in the sample period per task is attributed to the
// user stack that took it, counted in the kernel.
struct ml_fault_stack_key {
  __u32 pid;
  __s32 stack_id;
};

// Value of the tracked-process map.
struct ml_tracked {
  __u64 start_time_ns;
  __u64 tracked_since_ns;  // CLOCK_BOOTTIME when tracking began
  // Set at exec: the process's next address-space event wakes the consumer. By the time the C library's
  // own mmap/brk run, the dynamic loader has mapped every library (a libnode.so holding V8 among them),
  // and userspace attaches to them before node's start-up gets far.
  __u32 wake_on_mm_event;
  __u32 _pad;
};
ML_STATIC_ASSERT(sizeof(struct ml_tracked) == 24, "ml_tracked size");

// Per-process V8 frame layout for naming JS frames (the ml_js_procs map, keyed by tgid): set by userspace
// only for processes whose V8 metadata (v8dbg_* symbols) it understands, so the others pay nothing. While
// walking the stack, a frame whose pc lies in one of the code ranges (V8's embedded builtins, its JIT code)
// has its function slot read: a tagged JSFunction there gives its SharedFunctionInfo address, kept with the
// frame (ml_js_frames) and named in userspace.
#define ML_JS_CODE_RANGES 8
struct ml_js_code_range {
  __u64 start, end;  // [start, end)
};
struct ml_js_proc {
  __s32 off_fp_function;      // frame slot of the JSFunction, from the frame pointer (negative)
  __s32 off_fp_context;       // frame slot of the context, or a Smi frame-type marker in stub frames
  __u32 off_function_shared;  // JSFunction::shared, from the object's start
  __u32 n_ranges;             // used entries of ranges
  struct ml_js_code_range ranges[ML_JS_CODE_RANGES];
};
ML_STATIC_ASSERT(sizeof(struct ml_js_proc) == 16 + 16 * ML_JS_CODE_RANGES, "ml_js_proc layout");

// Value of ml_js_frames (key: the stack id): the process that first recorded the stack, and the
// SharedFunctionInfo address of each frame of that stack (same index as its ips), 0 for frames that are
// not JS.
struct ml_js_frames {
  __u32 pid;
  __u32 reserved;
  __u64 sfi[ML_MAX_STACK_DEPTH];
};

// Unwind tables (bpf/common.bpf.h's walker). Userspace compiles each executable file's CFI (.eh_frame) into
// rows sorted by pc, all files in one array (ml_unwind_rows); each traced process has its executable
// file mappings (ml_unwind_procs), each naming its file's rows. A pc in no such mapping (JIT code), or in
// a file without a table, is unwound by its frame pointer.
#define ML_UNWIND_MAX_MAPPINGS 48  // executable file mappings per process with a table
enum ml_cfa_kind {
  ML_CFA_NONE = 0,         // no CFI covers this pc (a gap between functions): frame pointer
  ML_CFA_RSP = 1,          // CFA = rsp + cfa_offset
  ML_CFA_RBP = 2,          // CFA = rbp + cfa_offset
  ML_CFA_PLT = 3,          // PLT stub: CFA = rsp + cfa_offset + ((pc & 15) >= rbp_offset ? 8 : 0)
  ML_CFA_END = 4,          // the return address is undefined: the outermost frame (_start, clone3)
  ML_CFA_UNSUPPORTED = 5,  // a DWARF expression of another shape: frame pointer
};
enum ml_rbp_kind {
  ML_RBP_SAME = 0,       // the caller's rbp is the current rbp
  ML_RBP_AT_CFA = 1,     // saved at CFA + rbp_offset
  ML_RBP_UNDEFINED = 2,  // not recoverable (an expression): unknown to the caller
};
struct ml_unwind_row {
  __u32 pc;          // vaddr in the file (ELF addresses) where this row starts
  __u8 cfa_kind;     // enum ml_cfa_kind
  __u8 rbp_kind;     // enum ml_rbp_kind
  __s16 rbp_offset;  // ML_RBP_AT_CFA: offset from the CFA; ML_CFA_PLT: the pc & 15 threshold
  __s32 cfa_offset;  // the return address is at CFA - 8 in every supported row
  __u32 _reserved;   // an array map stores values at 8-byte strides: the row takes 16 bytes anyway
};
ML_STATIC_ASSERT(sizeof(struct ml_unwind_row) == 16, "ml_unwind_row size");
struct ml_unwind_mapping {
  __u64 start, end;            // [start, end) of the executable mapping
  __u64 bias;                  // file vaddr = address - bias
  __u32 first_row, row_count;  // the file's rows in ml_unwind_rows
};
ML_STATIC_ASSERT(sizeof(struct ml_unwind_mapping) == 32, "ml_unwind_mapping size");
// ml_unwind_proc.flags: the process has just exec'd and the dynamic loader is mapping its libraries, whose
// mappings userspace writes only once it has read them: a pc outside every listed mapping is looked up in
// the process's address space (its file in ml_unwind_files). Cleared once userspace has the mappings: the
// lookup would cost for every JIT frame.
#define ML_UNWIND_PROC_ASK_KERNEL 1u
struct ml_unwind_proc {
  __u32 count;  // mappings in use, sorted by start
  __u32 flags;  // ML_UNWIND_PROC_*
  struct ml_unwind_mapping m[ML_UNWIND_MAX_MAPPINGS];
};
// A file whose table is loaded, by the kernel's own identity of it: the device of its superblock in the
// kernel's encoding (major << 20 | minor) and its inode. What the walker needs to turn a mapping of it that
// userspace has not listed yet into an ml_unwind_mapping (see ML_UNWIND_PROC_ASK_KERNEL).
#define ML_UNWIND_MAX_FILES 1024
struct ml_unwind_file_key {
  __u64 dev, ino;
};
struct ml_unwind_file {
  __u64 seg_start, seg_end;    // file offsets of its executable segment: [page-aligned start, end)
  __u64 delta;                 // that segment's file offset - vaddr: bias = map start - map offset + delta
  __u32 first_row, row_count;  // its rows in ml_unwind_rows
};
ML_STATIC_ASSERT(sizeof(struct ml_unwind_file) == 32, "ml_unwind_file size");
// What the walks did, per CPU (ml_unwind_stats index): diagnostics shown in report.json's "unwind".
enum ml_unwind_stat {
  ML_UNWIND_WALKS = 0,
  ML_UNWIND_FRAMES_CFI = 1,        // frames stepped by an unwind table
  ML_UNWIND_FRAMES_FP = 2,         // frames stepped by frame pointer (JIT code, no table)
  ML_UNWIND_FP_FALLBACK = 3,       // of those, pcs whose table row was unsupported
  ML_UNWIND_END_OUTERMOST = 4,     // walk ended at a frame whose return address is undefined (complete)
  ML_UNWIND_END_DEPTH = 5,         // walk cut at ML_MAX_STACK_DEPTH frames
  ML_UNWIND_END_UNREADABLE = 6,    // a saved register or return address could not be read
  ML_UNWIND_END_BAD_FRAME = 7,     // the next frame does not climb the stack (frame-pointer chain ended)
  ML_UNWIND_MAPPED_BY_KERNEL = 8,  // a frame's mapping found in the address space (not listed yet)
  ML_UNWIND_STATS = 9,
};

#endif  // MEMLENS_ABI_H
