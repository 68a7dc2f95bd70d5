// V8's GC probes alone, for `memlens top`: a viewer that must not make the host pay a tracer's cost loads
// this object only. It has no host-wide program: each program runs only where userspace attached it, as a
// uprobe (or USDT probe) on one process that `top` shows, and counts only for a process with an entry in
// ml_v8_counters. No stacks (capture_stacks stays false). Its maps are its own: the core object (the
// tracer) is not loaded with it.
#include "common.bpf.h"

char LICENSE[] SEC("license") = "GPL";

struct {
  __uint(type, BPF_MAP_TYPE_RINGBUF);
  __uint(max_entries, 256 * 1024);  // a few GCs per second per process: 64-byte events, drained each refresh
} ml_events SEC(".maps");

static __always_inline void* reserve_event(__u64 size) {
  void* e = bpf_ringbuf_reserve(&ml_events, size, 0);
  if (!e) count_loss(ML_LOSS_RINGBUF_FULL);
  return e;
}

// The reader drains at each refresh: no wake-up.
static __always_inline void submit_event(void* e) {
  bpf_ringbuf_submit(e, BPF_RB_NO_WAKEUP);
}

static __always_inline __s32 user_stack_id(void* ctx, bool at_entry) {
  return -1;
}

#include "v8_gc.bpf.h"

// V8's committed heap (Heap::CommittedMemory(), what memoryUsage().heapTotal returns) as last computed
// by the process's main thread: V8 calls it in each GC's prologue and epilogue (and for heap statistics),
// never per allocation. Keyed by tgid; only processes with an ml_v8_counters entry.
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 4096);
  __type(key, __u32);  // tgid
  __type(value, __u64);
} ml_v8_heap_committed SEC(".maps");

SEC("uretprobe")
int ml_v8_heap_total(struct pt_regs* ctx) {
  __u64 id = bpf_get_current_pid_tgid();
  __u32 tgid = id >> 32;
  if ((__u32)id != tgid || !v8_counters()) return 0;  // the main thread's isolate only
  __u64 bytes = PT_REGS_RC(ctx);
  bpf_map_update_elem(&ml_v8_heap_committed, &tgid, &bytes, BPF_ANY);
  return 0;
}
