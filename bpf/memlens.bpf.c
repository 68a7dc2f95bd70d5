// memlens's core BPF object, loaded once per memlens run:
//  - process lifecycle (sched fork/exec/exit, BTF tracepoints, the only programs that run for every task
//    of the host, at its fork, exec and exit only): the tracked-pid map follows fork and forgets exited
//    processes, so every other program filters on it; at exit, the process's last RSS and fault counts;
//  - address-space calls (uprobes on the C library's mmap/mremap/brk, and munmap/madvise when asked,
//    attached per tracked process by userspace): one event per call (mmap and mremap on return, with the
//    result);
// The capabilities are objects of their own, loaded only when on, sharing this object's maps
// (tracked.bpf.h, common.bpf.h; userspace hands them over before their load): file descriptors
// (fds.bpf.c), V8's GC and ArrayBuffers (v8.bpf.c), page faults (faults.bpf.c: a program on per-process
// perf events, which runs for the traced processes' sampled faults only). RSS is read from /proc at each
// sample (the kernel keeps it per mm): no program runs on the host's page faults or RSS changes. None of it
// uses syscalls:* tracepoints: enabling one puts every syscall of every task on the slow path.
#include "common.bpf.h"
#include "tracked.bpf.h"

char LICENSE[] SEC("license") = "GPL";

// Arguments of an address-space call, kept from entry to return (per thread).
struct ml_pending {
  __u64 args[6];
  __u64 caller_ip;
  __s32 stack_id;
  __u32 type;
  __u32 stack_sample_bytes;  // the sampling stack_id was under
  __u32 _pad;
};

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 16384);
  __type(key, __u32);  // tid
  __type(value, struct ml_pending);
} ml_pending SEC(".maps");

// Address-space events wake the consumer only when it waits for one (ml_tracked.wake_on_mm_event).
static __always_inline void submit_mm_event(void* e, __u32 tgid) {
  struct ml_tracked* t = bpf_map_lookup_elem(&ml_tracked, &tgid);
  if (t && t->wake_on_mm_event) {
    t->wake_on_mm_event = 0;
    submit_event_now(e);
    return;
  }
  submit_event(e);
}

// ---------------------------------------------------------------------------------------------------------
// Holding new processes. A process that a tracked one forks, or that a tracked process becomes by exec,
// is stopped (SIGSTOP) before its first instruction, until userspace has attached its uprobes (they are
// per process: before that, its calls reach no program) and sends SIGCONT. The fork tracepoint runs in
// the parent, with the child created but not yet run: the signal is pending when the child first returns
// to user mode, which it does by stopping. The exec tracepoint runs in the exec'ing task once the new image
// is in place: it stops on its way back to user mode, before the new image's first instruction. Every hold
// is recorded in ml_held first, so that the watchdog (collect/hold_watchdog.h) can release it if memlens
// dies; a process that exits while held leaves the map at its exit.

// Set by userspace before load: hold new processes (memlens run/attach without --no-hold).
const volatile bool hold_new_processes = false;
// Set by userspace when it stops releasing (the end of a trace): no new hold from then on.
__u32 holds_closed = 0;

#define ML_SIGSTOP 19
// The kernel function that signals another task (Linux 6.13+). Weak: where it is missing, the program
// loads all the same; userspace sets can_signal_task from the kernel's BTF, and without it a fork is not
// held.
extern int bpf_send_signal_task(struct task_struct* task, int sig, enum pid_type type,
                                __u64 value) __ksym __weak;
// Whether the fork program may call it: set by userspace before load, from the kernel's BTF.
const volatile bool can_signal_task = false;

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 4096);  // resized by userspace (--max-processes)
  __type(key, __u32);         // tgid
  __type(value, struct ml_hold);
} ml_held SEC(".maps");

static __always_inline bool holding(void) {
  return hold_new_processes && !holds_closed;
}

// Records the hold of tgid; 0, or the negative errno of the map update.
static __always_inline long record_hold(__u32 tgid, __u64 start_time_ns) {
  struct ml_hold h = {.start_time_ns = start_time_ns, .held_at_ns = bpf_ktime_get_boot_ns()};
  return bpf_map_update_elem(&ml_held, &tgid, &h, BPF_ANY);
}

// Fills the event's hold fields from the result of the signal (0: held).
static __always_inline void hold_outcome(struct ml_proc_event* e, __u32 tgid, long err) {
  if (err == 0) {
    e->flags |= ML_PROC_HELD;
    return;
  }
  bpf_map_delete_elem(&ml_held, &tgid);
  e->flags |= ML_PROC_HOLD_FAILED;
  e->hold_error = (__s32)err;
  count_loss(ML_LOSS_HOLD_FAILED);
}

// ---------------------------------------------------------------------------------------------------------
// Process lifecycle

SEC("tp_btf/sched_process_fork")
int BPF_PROG(ml_fork, struct task_struct* parent, struct task_struct* child) {
  __u32 parent_tgid = BPF_CORE_READ(parent, tgid);
  __u32 child_pid = BPF_CORE_READ(child, pid);
  __u32 child_tgid = BPF_CORE_READ(child, tgid);
  if (child_pid != child_tgid) return 0;  // a new thread of an existing process
  if (!is_tracked(parent_tgid)) return 0;

  struct ml_tracked t = {.start_time_ns = BPF_CORE_READ(child, start_boottime),
                         .tracked_since_ns = bpf_ktime_get_boot_ns()};
  __u32 flags = 0;
  if (bpf_map_update_elem(&ml_tracked, &child_tgid, &t, BPF_NOEXIST) != 0) {
    count_loss(ML_LOSS_TRACKED_FULL);
    flags = ML_PROC_UNTRACKED;  // told to userspace all the same: it counts the child as untraced
  } else {
    struct ml_proc_stats s = {.start_time_ns = t.start_time_ns};
    bpf_map_update_elem(&ml_proc_stats, &child_tgid, &s, BPF_ANY);
    // The child's address space is its parent's: so are its mappings with unwind tables, from its first
    // instruction (userspace reads the child's own once it has handled this event).
    struct ml_unwind_proc* mappings = bpf_map_lookup_elem(&ml_unwind_procs, &parent_tgid);
    if (mappings) bpf_map_update_elem(&ml_unwind_procs, &child_tgid, mappings, BPF_NOEXIST);
  }

  // The event first: a child held without userspace knowing would wait for the end of the trace.
  struct ml_proc_event* e = reserve_event(sizeof(*e));
  if (!e) return 0;
  __builtin_memset(e, 0, sizeof(*e));
  fill_header(&e->h, ML_EV_FORK);
  e->h.pid = child_tgid;
  e->h.tid = child_pid;
  e->ppid = parent_tgid;
  e->start_time_ns = t.start_time_ns;
  e->flags = flags;
  BPF_CORE_READ_STR_INTO(&e->comm, child, comm);
  if (!flags && holding()) {
    long err = -95;  // EOPNOTSUPP: this kernel cannot signal another task from BPF
    if (can_signal_task) {
      err = record_hold(child_tgid, t.start_time_ns);
      if (err == 0) err = bpf_send_signal_task(child, ML_SIGSTOP, PIDTYPE_TGID, 0);
    }
    hold_outcome(e, child_tgid, err);
  }
  submit_event_now(e);
  return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(ml_exec, struct task_struct* p, pid_t old_pid, struct linux_binprm* bprm) {
  __u32 tgid = BPF_CORE_READ(p, tgid);
  struct ml_tracked* t = bpf_map_lookup_elem(&ml_tracked, &tgid);
  if (!t) return 0;
  t->wake_on_mm_event = 1;
  struct ml_proc_event* e = reserve_event(sizeof(*e));
  if (!e) return 0;
  __builtin_memset(e, 0, sizeof(*e));
  fill_header(&e->h, ML_EV_EXEC);
  e->start_time_ns = BPF_CORE_READ(p, start_boottime);
  BPF_CORE_READ_STR_INTO(&e->comm, p, comm);
  if (holding()) {
    // The exec'ing task is the whole process by now (the kernel has ended its other threads).
    long err = record_hold(tgid, e->start_time_ns);
    if (err == 0) err = bpf_send_signal(ML_SIGSTOP);
    hold_outcome(e, tgid, err);
  }
  submit_event_now(e);
  return 0;
}

// RSS at exit: the kernel's own mm counters (percpu_counter since 6.2, atomic_long_t before), read once
// as the process's last thread exits. While it runs, userspace reads them from /proc at each sample.
struct mm_rss_stat___old {
  atomic_long_t count[4];
} __attribute__((preserve_access_index));
struct mm_struct___old {
  struct mm_rss_stat___old rss_stat;
} __attribute__((preserve_access_index));

enum { ML_MM_FILEPAGES = 0, ML_MM_ANONPAGES = 1, ML_MM_SWAPENTS = 2, ML_MM_SHMEMPAGES = 3 };

static __always_inline __u64 clamp_pages(long v) {
  return v > 0 ? (__u64)v : 0;
}

static __always_inline __u64 mm_counter(struct mm_struct* mm, int member) {
  if (bpf_core_type_exists(struct mm_rss_stat___old)) {
    struct mm_struct___old* old = (void*)mm;
    return clamp_pages(BPF_CORE_READ(old, rss_stat.count[member & 3].counter));
  }
  // percpu_counter.count excludes the per-CPU deltas not folded in yet (at most batch pages per CPU):
  // the same approximation the kernel's own rss_stat tracepoint records.
  return clamp_pages(BPF_CORE_READ(mm, rss_stat[member & 3].count));
}

// The last RSS of an exiting process, when its address space is still attached to the exiting task.
static __always_inline void record_exit_rss(struct task_struct* p, struct ml_proc_stats* s) {
  struct mm_struct* mm = BPF_CORE_READ(p, mm);
  if (!mm) return;
  __u64 file = mm_counter(mm, ML_MM_FILEPAGES), anon = mm_counter(mm, ML_MM_ANONPAGES);
  __u64 shmem = mm_counter(mm, ML_MM_SHMEMPAGES), swap = mm_counter(mm, ML_MM_SWAPENTS);
  s->rss_file_bytes = file << ML_PAGE_SHIFT;
  s->rss_anon_bytes = anon << ML_PAGE_SHIFT;
  s->rss_shmem_bytes = shmem << ML_PAGE_SHIFT;
  s->rss_swap_bytes = swap << ML_PAGE_SHIFT;
  // The kernel's high-water mark (what VmHWM shows): its saved peak or the current figure.
  __u64 hiwater = BPF_CORE_READ(mm, hiwater_rss);
  __u64 total = file + anon + shmem;
  s->rss_peak_bytes = (hiwater > total ? hiwater : total) << ML_PAGE_SHIFT;
  s->rss_updates += 1;
}

// The tracked processes the OOM killer has chosen (value: CLOCK_BOOTTIME of its choice), until their exit.
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 1024);
  __type(key, __u32);  // tgid
  __type(value, __u64);
} ml_oom_victims SEC(".maps");

// The OOM killer's choice (mm/oom_kill.c mark_oom_victim, after it sent its SIGKILL): runs at OOM kills
// only. The victim's task is the tracepoint's argument since Linux 6.8 (its pid before); userspace loads
// this program only where it is the task.
SEC("tp_btf/mark_victim")
int BPF_PROG(ml_oom_victim, struct task_struct* victim) {
  __u32 tgid = BPF_CORE_READ(victim, tgid);
  if (!is_tracked(tgid)) return 0;
  __u64 now = bpf_ktime_get_boot_ns();
  bpf_map_update_elem(&ml_oom_victims, &tgid, &now, BPF_ANY);
  return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(ml_exit, struct task_struct* p) {
  __u32 tgid = BPF_CORE_READ(p, tgid);
  __u32 tid = BPF_CORE_READ(p, pid);
  bpf_map_delete_elem(&ml_pending, &tid);
  struct ml_tracked* t = bpf_map_lookup_elem(&ml_tracked, &tgid);
  if (!t) return 0;
  struct ml_proc_stats* s = bpf_map_lookup_elem(&ml_proc_stats, &tgid);
  // Every thread's own fault counters, for its whole life, as it exits (the kernel adds them to the
  // process's only later, when it releases the thread).
  if (s) {
    __sync_fetch_and_add(&s->exited_threads_minflt, BPF_CORE_READ(p, min_flt));
    __sync_fetch_and_add(&s->exited_threads_majflt, BPF_CORE_READ(p, maj_flt));
  }
  // Only the last thread's exit ends the process: signal->live has dropped to zero by then.
  if (BPF_CORE_READ(p, signal, live.counter) != 0) return 0;
  if (s) record_exit_rss(p, s);
  bool oom_victim = bpf_map_lookup_elem(&ml_oom_victims, &tgid) != 0;
  if (oom_victim) bpf_map_delete_elem(&ml_oom_victims, &tgid);

  struct ml_proc_event* e = reserve_event(sizeof(*e));
  if (e) {
    __builtin_memset(e, 0, sizeof(*e));
    fill_header(&e->h, ML_EV_EXIT);
    e->h.pid = tgid;
    e->exit_code = BPF_CORE_READ(p, exit_code);
    if (oom_victim) e->flags |= ML_PROC_OOM_VICTIM;
    // The process's start, not this thread's: the last thread to exit need not be the first one.
    e->start_time_ns = BPF_CORE_READ(p, group_leader, start_boottime);
    if (s) {
      e->minflt = s->exited_threads_minflt;
      e->majflt = s->exited_threads_majflt;
    }
    BPF_CORE_READ_STR_INTO(&e->comm, p, comm);
    submit_event_now(e);
  }
  bpf_map_delete_elem(&ml_tracked, &tgid);
  bpf_map_delete_elem(&ml_held, &tgid);  // killed while held: nothing left to release
  return 0;
}

// ---------------------------------------------------------------------------------------------------------
// Address-space calls: uprobes on the C library's wrappers, attached by userspace to each tracked process
// only (a per-process uprobe costs nothing to other processes). Entry saves the arguments; return emits.

// grows: the bytes the call would add to the address space (its stack is sampled by them).
static __always_inline int remember_call(void* ctx, __u32 type, __u64 a0, __u64 a1, __u64 a2, __u64 a3,
                                         __u64 a4, __u64 a5, __u64 grows) {
  __u64 id = bpf_get_current_pid_tgid();
  if (!is_tracked(id >> 32)) return 0;
  __u32 tid = (__u32)id;
  struct ml_pending p = {.args = {a0, a1, a2, a3, a4, a5}, .type = type};
  // At a function's first instruction the return address is at the top of the stack.
  __u64 sp = PT_REGS_SP((struct pt_regs*)ctx);
  bpf_probe_read_user(&p.caller_ip, sizeof(p.caller_ip), (void*)sp);
  p.stack_id = growth_stack_id(ctx, sp, p.caller_ip, grows, &p.stack_sample_bytes);
  if (bpf_map_update_elem(&ml_pending, &tid, &p, BPF_ANY) != 0) count_loss(ML_LOSS_PENDING_FULL);
  return 0;
}

// For calls whose result is almost always 0 (munmap, madvise, brk): one probe at entry instead of two.
// A failed call is then reported as done: the model keeps the hole until it is next seeded from /proc (at
// exec); the breakdown's resident bytes come from smaps and the RSS figures from the kernel, never from
// these events. Only growth needs its stack
// (the mmap_growth profile): walking the stack of a call that gives memory back would cost for nothing.
// grows: the bytes the call adds to the address space (0 for those that give back).
// return_slot: where the caller's return address is (%rsp at the entry, further on see ml_mmap_done).
static __always_inline int emit_mm_call(void* ctx, __u32 type, __u64 a0, __u64 a1, __u64 a2, __u64 grows,
                                        __u64 return_slot) {
  __u64 id = bpf_get_current_pid_tgid();
  if (!is_tracked(id >> 32)) return 0;
  struct ml_mm_event* e = reserve_event(sizeof(*e));
  if (!e) return 0;
  __builtin_memset(e, 0, sizeof(*e));
  fill_header(&e->h, type);
  e->addr = a0;
  e->len_bytes = a1;
  e->advice = (__u32)a2;
  e->fd = -1;
  bpf_probe_read_user(&e->caller_ip, sizeof(e->caller_ip), (void*)return_slot);
  e->stack_id = growth_stack_id(ctx, return_slot, e->caller_ip, grows, &e->stack_sample_bytes);
  submit_mm_event(e, id >> 32);
  return 0;
}

static __always_inline int emit_at_entry(void* ctx, __u32 type, __u64 a0, __u64 a1, __u64 a2, __u64 grows) {
  return emit_mm_call(ctx, type, a0, a1, a2, grows, PT_REGS_SP((struct pt_regs*)ctx));
}

// mmap(addr, len, prot, flags, fd, offset) into its event.
static __always_inline void fill_mmap_args(struct ml_mm_event* e, const __u64 args[6]) {
  e->addr = args[0];
  e->len_bytes = args[1];
  e->prot = (__u32)args[2];
  e->flags = (__u32)args[3];
  e->fd = (__s32)args[4];
  e->offset = args[5];
}

static __always_inline int emit_call(__u32 type, long ret) {
  __u32 tid = (__u32)bpf_get_current_pid_tgid();
  struct ml_pending* p = bpf_map_lookup_elem(&ml_pending, &tid);
  if (!p) return 0;  // entry was before attach, or not tracked
  if (p->type != type) {
    bpf_map_delete_elem(&ml_pending, &tid);
    return 0;
  }
  struct ml_mm_event* e = reserve_event(sizeof(*e));
  if (e) {
    __builtin_memset(e, 0, sizeof(*e));
    fill_header(&e->h, type);
    e->result = ret;
    e->stack_id = p->stack_id;
    e->stack_sample_bytes = p->stack_sample_bytes;
    e->caller_ip = p->caller_ip;
    e->fd = -1;
    switch (type) {
      case ML_EV_MMAP:
        fill_mmap_args(e, p->args);
        break;
      case ML_EV_MREMAP:
        e->addr = p->args[0];
        e->len_bytes = p->args[1];
        e->new_len_bytes = p->args[2];
        e->flags = (__u32)p->args[3];
        break;
      default:
        break;
    }
    submit_mm_event(e, e->h.pid);
  }
  bpf_map_delete_elem(&ml_pending, &tid);
  return 0;
}

// mmap has six arguments, one more than BPF_KPROBE unpacks: the sixth (offset) is in r9 on x86-64.
SEC("uprobe")
int ml_mmap_enter(struct pt_regs* ctx) {
  return remember_call(ctx, ML_EV_MMAP, PT_REGS_PARM1(ctx), PT_REGS_PARM2(ctx), PT_REGS_PARM3(ctx),
                       PT_REGS_PARM4(ctx), PT_REGS_PARM5(ctx), BPF_CORE_READ(ctx, r9), PT_REGS_PARM2(ctx));
}
SEC("uretprobe")
int BPF_KRETPROBE(ml_mmap_exit, long ret) {
  return emit_call(ML_EV_MMAP, ret);
}

// mmap in one hit, where the C library allows it (collect/wrapper_sites.h): a uprobe on the branch after
// the syscall's result check instead of an entry probe (glibc's mmap starts with a mov, which the kernel
// single-steps: a second trap) and a return probe. The syscall preserved the argument registers (flags,
// the fourth, in %r10), %rax holds the result, and the return address is at %rsp plus the stack bytes the
// wrapper has taken on the way (the attach cookie). The event is the one the pair of probes made.
SEC("uprobe")
int ml_mmap_done(struct pt_regs* ctx) {
  __u64 id = bpf_get_current_pid_tgid();
  if (!is_tracked(id >> 32)) return 0;
  __u64 return_slot = PT_REGS_SP(ctx) + bpf_get_attach_cookie(ctx);
  __u64 caller_ip = 0;
  bpf_probe_read_user(&caller_ip, sizeof(caller_ip), (void*)return_slot);
  long result = (long)PT_REGS_RC(ctx);
  bool mapped = (unsigned long)result < (unsigned long)-4095L;
  __u32 every = 0;
  __s32 stack_id = growth_stack_id(ctx, return_slot, caller_ip, mapped ? PT_REGS_PARM2(ctx) : 0, &every);
  struct ml_mm_event* e = reserve_event(sizeof(*e));
  if (!e) return 0;
  __builtin_memset(e, 0, sizeof(*e));
  fill_header(&e->h, ML_EV_MMAP);
  e->result = result;
  e->stack_id = stack_id;
  e->stack_sample_bytes = every;
  e->caller_ip = caller_ip;
  __u64 args[6] = {PT_REGS_PARM1(ctx), PT_REGS_PARM2(ctx), PT_REGS_PARM3(ctx),
                   ctx->r10,           PT_REGS_PARM5(ctx), ctx->r9};
  fill_mmap_args(e, args);
  submit_mm_event(e, id >> 32);
  return 0;
}

SEC("uprobe")
int BPF_KPROBE(ml_munmap_enter, void* addr, __u64 len) {
  return emit_at_entry(ctx, ML_EV_MUNMAP, (__u64)addr, len, 0, 0);
}

SEC("uprobe")
int BPF_KPROBE(ml_mremap_enter, void* old_addr, __u64 old_len, __u64 new_len, int flags, void* new_addr) {
  return remember_call(ctx, ML_EV_MREMAP, (__u64)old_addr, old_len, new_len, flags, (__u64)new_addr, 0,
                       new_len > old_len ? new_len - old_len : 0);
}
SEC("uretprobe")
int BPF_KRETPROBE(ml_mremap_exit, long ret) {
  return emit_call(ML_EV_MREMAP, ret);
}

SEC("uprobe")
int BPF_KPROBE(ml_brk_enter, void* addr) {
  if (!addr) return 0;  // brk(0) only asks for the current break
  struct task_struct* cur = bpf_get_current_task_btf();
  struct mm_struct* mm = cur->mm;
  __u64 now = mm ? mm->brk : 0;
  return emit_at_entry(ctx, ML_EV_BRK, (__u64)addr, 0, 0, (__u64)addr > now ? (__u64)addr - now : 0);
}

// Only the advice that gives pages back matters to memory accounting.
#define ML_MADV_DONTNEED 4
#define ML_MADV_FREE 8
#define ML_MADV_REMOVE 9
#define ML_MADV_PAGEOUT 21
static __always_inline bool gives_pages_back(int advice) {
  return advice == ML_MADV_DONTNEED || advice == ML_MADV_FREE || advice == ML_MADV_REMOVE ||
         advice == ML_MADV_PAGEOUT;
}

SEC("uprobe")
int BPF_KPROBE(ml_madvise_enter, void* addr, __u64 len, int advice) {
  if (!gives_pages_back(advice)) return 0;
  return emit_at_entry(ctx, ML_EV_MADVISE, (__u64)addr, len, advice, 0);
}

// madvise in one hit, as ml_mmap_done (the cookie: the wrapper's stack bytes). After the syscall the
// result is known: a failed call gave nothing back and is not reported.
SEC("uprobe")
int ml_madvise_done(struct pt_regs* ctx) {
  int advice = (int)PT_REGS_PARM3(ctx);
  if (!gives_pages_back(advice) || PT_REGS_RC(ctx) != 0) return 0;
  return emit_mm_call(ctx, ML_EV_MADVISE, PT_REGS_PARM1(ctx), PT_REGS_PARM2(ctx), advice, 0,
                      PT_REGS_SP(ctx) + bpf_get_attach_cookie(ctx));
}
