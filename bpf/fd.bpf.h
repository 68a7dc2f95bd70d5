// File-descriptor tracing: uprobes on the C library's fd-creating and fd-closing wrappers, attached by
// userspace to each tracked process only. One entry and one return program serve every wrapper that
// returns an fd: the attach cookie says which wrapper fired (enum ml_fd_kind). close and close_range are
// reported at entry, without a return probe: the fd is released whatever close returns, and a close is
// hot in a server, so it costs one uprobe hit instead of two.
//
// The generic syscall() wrapper is not probed, although libuv closes every fd with syscall(SYS_close):
// a uprobe there traps on every syscall() call of the process, whatever its number (node makes many),
// and doubled the run time of allocation-heavy scripts. Userspace finds those closes instead: a traced
// open that returns a number the table still holds, and the /proc/PID/fd listing at every sample.
//
// Opening stacks go to the shared stack table (ml_stacks), so the stacks extension symbolizes them with
// the process's other stacks while its maps can still be read; they follow the --no-stacks option.

// Arguments of an fd call from entry to return, per thread. LRU: a thread that dies inside a call (or an
// entry whose return never fires) cannot fill the table. Each thread has at most one call in flight, so
// the table fills only with such stale entries, and those are what an LRU evicts first: no call that is
// still going loses its arguments unless 16,384 threads are inside fd calls at once. A return that finds
// no entry (its entry came before memlens attached) is not an event and is dropped.
struct ml_fd_pending {
  __u64 args[4];
  __u64 caller_ip;
  __s32 stack_id;
  __u32 kind;
};

struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 16384);
  __type(key, __u32);  // tid
  __type(value, struct ml_fd_pending);
} ml_fd_pending SEC(".maps");

#define ML_F_DUPFD 0
#define ML_F_SETFD 2
#define ML_F_DUPFD_CLOEXEC 1030

SEC("uprobe")
int ml_fd_enter(struct pt_regs* ctx) {
  __u64 id = bpf_get_current_pid_tgid();
  if (!is_tracked(id >> 32)) return 0;
  __u32 kind = (__u32)bpf_get_attach_cookie(ctx);
  struct ml_fd_pending p = {
      .args = {PT_REGS_PARM1(ctx), PT_REGS_PARM2(ctx), PT_REGS_PARM3(ctx), PT_REGS_PARM4(ctx)},
      .kind = kind,
      .stack_id = -1};
  if (kind == ML_FDK_FCNTL) {
    int cmd = (int)p.args[1];
    if (cmd != ML_F_DUPFD && cmd != ML_F_DUPFD_CLOEXEC && cmd != ML_F_SETFD) return 0;  // most fcntl calls
  } else if (kind == ML_FDK_SIGNALFD) {
    if ((int)p.args[0] != -1) return 0;  // changes the mask of an existing signalfd
  } else if (kind == ML_FDK_ACCEPT4) {
    p.args[2] = p.args[3];  // flags in args[2], as the event documents
  }
  // At a function's first instruction (or the branch userspace may put this probe on instead, before any
  // stack change) the return address is at the top of the stack.
  bpf_probe_read_user(&p.caller_ip, sizeof(p.caller_ip), (void*)PT_REGS_SP(ctx));
  // F_SETFD creates nothing: no stack for it.
  if (!(kind == ML_FDK_FCNTL && (int)p.args[1] == ML_F_SETFD)) p.stack_id = entry_stack_id(ctx, p.caller_ip);
  __u32 tid = (__u32)id;
  if (bpf_map_update_elem(&ml_fd_pending, &tid, &p, BPF_ANY) != 0) count_loss(ML_LOSS_PENDING_FULL);
  return 0;
}

static __always_inline void fill_fd_event(struct ml_fd_event* e, __u32 type, struct ml_fd_pending* p,
                                          long ret) {
  fill_header(&e->h, type);
  e->result = ret;
  e->args[0] = p->args[0];
  e->args[1] = p->args[1];
  e->args[2] = p->args[2];
  e->fds[0] = -1;
  e->fds[1] = -1;
  e->stack_id = p->stack_id;
  e->kind = p->kind;
  e->caller_ip = p->caller_ip;
}

// A return probe, or a plain uprobe on the branch right after the wrapper's syscall instruction (accept,
// accept4: one cheap hit instead of a return probe), where %rax holds the kernel's result: -errno on
// failure, as negative as a wrapper's -1.
SEC("uretprobe")
int BPF_KRETPROBE(ml_fd_exit, long ret) {
  __u32 tid = (__u32)bpf_get_current_pid_tgid();
  struct ml_fd_pending* found = bpf_map_lookup_elem(&ml_fd_pending, &tid);
  if (!found) return 0;  // not tracked, entry before attach, or a filtered fcntl
  struct ml_fd_pending p = *found;
  bpf_map_delete_elem(&ml_fd_pending, &tid);
  if (p.kind != (__u32)bpf_get_attach_cookie(ctx)) return 0;  // an inner call's return took the arguments
  if (ret < 0) return 0;                                      // failed: no fd was created

  const void* str = NULL;
  switch (p.kind) {
    case ML_FDK_OPEN:
    case ML_FDK_CREAT:
    case ML_FDK_MEMFD:
      str = (const void*)p.args[0];
      break;
    case ML_FDK_OPENAT:
      str = (const void*)p.args[1];
      break;
  }
  if (str) {
    struct ml_fd_path_event* e = reserve_event(sizeof(*e));
    if (!e) return 0;
    fill_fd_event(&e->e, ML_EV_FD_OPEN, &p, ret);
    if (bpf_probe_read_user_str(e->path, sizeof(e->path), str) < 0) e->path[0] = 0;
    submit_event(e);
    return 0;
  }
  struct ml_fd_event* e = reserve_event(sizeof(*e));
  if (!e) return 0;
  fill_fd_event(e, ML_EV_FD_OPEN, &p, ret);
  const void* pair = NULL;
  if (p.kind == ML_FDK_PIPE || p.kind == ML_FDK_PIPE2)
    pair = (const void*)p.args[0];
  else if (p.kind == ML_FDK_SOCKETPAIR)
    pair = (const void*)p.args[3];
  if (pair && bpf_probe_read_user(e->fds, sizeof(e->fds), pair) != 0) {
    e->fds[0] = -1;
    e->fds[1] = -1;
  }
  submit_event(e);
  return 0;
}

// accept and accept4 in one hit: a uprobe on the branch after the result check of each of the wrapper's
// syscalls (wrapper_sites.h), instead of an entry and a return probe. The syscall preserved the argument
// registers (the fourth, flags, is in %r10), %rax holds its result, and the return address is at %rsp
// plus the stack bytes the wrapper had taken on the way to this syscall (the cookie's upper half).
// Only an accepted connection walks the stack: a server's last accept of a batch fails with EAGAIN.
SEC("uprobe")
int ml_fd_accepted(struct pt_regs* ctx) {
  __u64 id = bpf_get_current_pid_tgid();
  if (!is_tracked(id >> 32)) return 0;
  long ret = (long)PT_REGS_RC(ctx);
  if (ret < 0) return 0;
  __u64 cookie = bpf_get_attach_cookie(ctx);
  __u32 kind = (__u32)cookie;
  __u64 return_slot = PT_REGS_SP(ctx) + (cookie >> 32);
  // Both loads made, then one chosen: a choice between two context fields compiled as one load through
  // a computed pointer, which the verifier refuses.
  __u64 third = PT_REGS_PARM3(ctx), r10 = ctx->r10;
  asm volatile("" : "+r"(third), "+r"(r10));
  struct ml_fd_pending p = {
      .args = {PT_REGS_PARM1(ctx), PT_REGS_PARM2(ctx), kind == ML_FDK_ACCEPT4 ? r10 : third, 0},
      .kind = kind,
      .stack_id = -1};
  bpf_probe_read_user(&p.caller_ip, sizeof(p.caller_ip), (void*)return_slot);
  p.stack_id = slot_stack_id(ctx, return_slot, p.caller_ip);
  struct ml_fd_event* e = reserve_event(sizeof(*e));
  if (!e) return 0;
  fill_fd_event(e, ML_EV_FD_OPEN, &p, ret);
  submit_event(e);
  return 0;
}

SEC("uprobe")
int ml_fd_close(struct pt_regs* ctx) {
  __u64 id = bpf_get_current_pid_tgid();
  if (!is_tracked(id >> 32)) return 0;
  struct ml_fd_event* e = reserve_event(sizeof(*e));
  if (!e) return 0;
  struct ml_fd_pending p = {.args = {PT_REGS_PARM1(ctx), PT_REGS_PARM2(ctx), PT_REGS_PARM3(ctx), 0},
                            .kind = (__u32)bpf_get_attach_cookie(ctx),
                            .stack_id = -1};
  fill_fd_event(e, ML_EV_FD_CLOSE, &p, 0);
  submit_event(e);
  return 0;
}

// Processes whose fd table is snapshot at exit: userspace adds each tracked process (ml_tracked cannot
// serve: the lifecycle program on the same tracepoint removes the process from it first).
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 16384);
  __type(key, __u32);  // tgid
  __type(value, __u8);
} ml_fd_watch SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct ml_fd_exit_fds);
} ml_fd_exit_scratch SEC(".maps");

// Read and deleted by userspace when it handles the exit; entries exist only between the two.
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 256);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, __u32);  // tgid
  __type(value, struct ml_fd_exit_fds);
} ml_fd_exit_fds SEC(".maps");

// sched_process_exit fires before exit_files(): the last thread's fd table still holds every fd the
// process had open. One copy of its open_fds bitmap per process exit.
SEC("tp_btf/sched_process_exit")
int BPF_PROG(ml_fd_at_exit, struct task_struct* p) {
  __u32 tgid = BPF_CORE_READ(p, tgid);
  if (!bpf_map_lookup_elem(&ml_fd_watch, &tgid)) return 0;
  if (BPF_CORE_READ(p, signal, live.counter) != 0) return 0;  // not the last thread
  __u32 zero = 0;
  struct ml_fd_exit_fds* s = bpf_map_lookup_elem(&ml_fd_exit_scratch, &zero);
  if (!s) return 0;
  struct fdtable* fdt = BPF_CORE_READ(p, files, fdt);
  if (!fdt) return 0;
  __u32 max = BPF_CORE_READ(fdt, max_fds);
  const void* bits = BPF_CORE_READ(fdt, open_fds);
  __u32 words = max / 64;
  if (words > ML_FD_EXIT_MAX_FDS / 64) words = ML_FD_EXIT_MAX_FDS / 64;
  __u32 size = words * 8;
  if (size > sizeof(s->open_bits)) size = sizeof(s->open_bits);
  if (!bits || bpf_probe_read_kernel(s->open_bits, size, bits) != 0) return 0;
  s->max_fds = max;
  s->words = size / 8;
  bpf_map_update_elem(&ml_fd_exit_fds, &tgid, s, BPF_ANY);
  return 0;
}
