// Page faults of the traced processes, sampled: a BPF program on a perf software event
// (PERF_COUNT_SW_PAGE_FAULTS) that userspace opens per traced process (pid = the process, every CPU,
// inherited by the threads and children it starts from then on) with a sample period. The kernel counts
// every fault of those tasks in the event and runs this program at one fault in `period`, in the faulting
// task: it never runs for another process of the host. The exact fault counts are the kernel's own
// (/proc/PID/stat minflt and majflt, and the exit program's counters): this program only says where the
// faults come from (user or kernel mode, and with stacks on, the user stack that took it).
// The maps it shares with the core object (ml_proc_stats, ml_loss, ml_stacks) are the core object's,
// handed over by userspace before load.
#include "common.bpf.h"

char LICENSE[] SEC("license") = "GPL";

// Addresses at or above this are kernel addresses on x86-64 (4- and 5-level paging alike).
#define ML_USER_ADDR_LIMIT 0x0100000000000000ULL

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 16384);
  __type(key, struct ml_fault_stack_key);
  __type(value, __u64);
} ml_fault_stacks SEC(".maps");

// Counts a sampled fault against the user stack that took it.
static __always_inline void count_fault_stack(struct pt_regs* user_regs, __u32 tgid) {
  long id = capture_user_stack(user_regs, 0, 0);
  if (id < 0) return;
  struct ml_fault_stack_key key = {.pid = tgid, .stack_id = (__s32)id};
  __u64* n = bpf_map_lookup_elem(&ml_fault_stacks, &key);
  if (n) {
    __sync_fetch_and_add(n, 1);
    return;
  }
  __u64 one = 1;
  if (bpf_map_update_elem(&ml_fault_stacks, &key, &one, BPF_NOEXIST) != 0) {
    n = bpf_map_lookup_elem(&ml_fault_stacks, &key);
    if (n)
      __sync_fetch_and_add(n, 1);
    else
      count_loss(ML_LOSS_STACK);
  }
}

SEC("perf_event")
int ml_fault_sample(struct bpf_perf_event_data* ctx) {
  if (ctx->addr >= ML_USER_ADDR_LIMIT) return 0;  // a fault on kernel memory, not the process's
  __u32 tgid = bpf_get_current_pid_tgid() >> 32;
  struct ml_proc_stats* s = bpf_map_lookup_elem(&ml_proc_stats, &tgid);
  if (!s) return 0;  // a child the kernel does not follow (the tracked-process map was full)
  // Where the fault happened: user code, or the kernel on the process's behalf (a kernel address).
  bool user_mode = ctx->regs.ip < ML_USER_ADDR_LIMIT;
  // One sample stands for `period` faults: ml_proc_stats counts samples, userspace scales them.
  if (user_mode)
    __sync_fetch_and_add(&s->faults_user, 1);
  else
    __sync_fetch_and_add(&s->faults_kernel, 1);
  if (!capture_stacks) return 0;
  // A fault in kernel mode (copy_to_user, ...): the user code's registers are where the system call
  // entered.
  // The walker reads ip, sp and bp: copied to one place, whichever the source (the verifier wants one
  // pointer type at each load).
  struct pt_regs regs = {};
  if (user_mode) {
    regs.ip = ctx->regs.ip;
    regs.sp = ctx->regs.sp;
    regs.bp = ctx->regs.bp;
  } else {
    struct pt_regs* u = (struct pt_regs*)bpf_task_pt_regs(bpf_get_current_task_btf());
    regs.ip = u->ip;
    regs.sp = u->sp;
    regs.bp = u->bp;
  }
  count_fault_stack(&regs, tgid);
  return 0;
}
