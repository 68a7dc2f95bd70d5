// V8 inside node: GC, heap used, ArrayBuffer backing stores (uprobes on V8 symbols, or USDT).
// Userspace attaches each program per tracked process at the points src/node/probe_plan finds; what each
// point's registers hold is fixed there and in docs/v8-probes.md. One program per purpose (rather than one
// program dispatching on an attach cookie): each reads a different register and does different work, so
// every program stays short, and nothing depends on cookies (kernel >= 5.15).
//
// Cost: a uprobe hit is a breakpoint trap: about 10 us on the test VM where the kernel steps the
// instruction out of line, 0.8 us where it emulates it (a call, a push: docs/v8-probes.md). GC probes fire a
// few times per GC.
// ArrayBuffer allocations can be hundreds of thousands per second, so by default no probe stays on them:
// ml_v8_ab_window is attached only during short sampling windows (it learns where the allocator objects
// are, whose byte counter userspace then reads from the process's memory, and samples allocation stacks).
// The per-allocation programs (ml_v8_ab_alloc/free/realloc, ml_v8_ext_*) are attached only with
// --v8-alloc-probes.
#include "v8_gc.bpf.h"

static __always_inline void v8_ab_allocated(struct ml_v8_counters* c, __u64 bytes) {
  __u64 total = __sync_fetch_and_add(&c->ab_allocated_bytes, bytes) + bytes;
  __sync_fetch_and_add(&c->ab_allocations, 1);
  // Peak: allocations and frees race on other CPUs, so this is the peak as seen by the allocating CPU;
  // a concurrent update can at worst keep a slightly lower peak.
  __s64 live = (__s64)(total - c->ab_freed_bytes);
  if (live > 0 && (__u64)live > c->ab_peak_live_bytes) c->ab_peak_live_bytes = (__u64)live;
}

// Backing-store bytes per (process, user stack), for the array_buffers profile. Userspace takes (reads and
// deletes) a process's entries when a window closes and when it stops tracking the process.
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 16384);
  __type(key, struct ml_v8_stack_key);
  __type(value, struct ml_v8_stack_weights);
} ml_v8_ab_stacks SEC(".maps");

// The open sampling window of a process (entry present = window open).
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 4096);
  __type(key, __u32);  // tgid
  __type(value, struct ml_v8_ab_window);
} ml_v8_ab_windows SEC(".maps");

// Allocator objects seen during the open windows (value: CLOCK_BOOTTIME when first seen). Userspace deletes
// a process's entries when its window closes, so each window reports each allocator once.
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 1024);
  __type(key, struct ml_v8_allocator_key);
  __type(value, __u64);
} ml_v8_allocators SEC(".maps");

static __always_inline void v8_ab_stack_add(void* ctx, __u32 tgid, __u64 bytes) {
  __s32 id = user_stack_id(ctx, true);  // allocator entry
  if (id < 0) return;
  struct ml_v8_stack_key key = {.pid = tgid, .stack_id = id};
  struct ml_v8_stack_weights* w = bpf_map_lookup_elem(&ml_v8_ab_stacks, &key);
  if (!w) {
    struct ml_v8_stack_weights zero = {};
    bpf_map_update_elem(&ml_v8_ab_stacks, &key, &zero, BPF_NOEXIST);  // another CPU may have added it
    w = bpf_map_lookup_elem(&ml_v8_ab_stacks, &key);
    if (!w) {
      count_loss(ML_LOSS_STACK);
      return;
    }
  }
  __sync_fetch_and_add(&w->bytes, bytes);
  __sync_fetch_and_add(&w->count, 1);
}

static __always_inline void v8_ab_notice(__u32 kind, __u64 addr) {
  struct ml_v8_ab_notice* e = reserve_event(sizeof(*e));
  if (!e) return;
  fill_header(&e->h, ML_EV_V8_AB_NOTICE);
  e->addr = addr;
  e->kind = kind;
  e->_pad = 0;
  // Woken at once: userspace detaches the window's probes when it reads this, and every allocation until
  // then still traps.
  bpf_ringbuf_submit(e, BPF_RB_FORCE_WAKEUP);
}

// NodeArrayBufferAllocator::Allocate / AllocateUninitialized entry, during a sampling window only:
// rdi = the allocator, rsi = bytes.
SEC("uprobe")
int ml_v8_ab_window(struct pt_regs* ctx) {
  __u32 tgid = bpf_get_current_pid_tgid() >> 32;
  struct ml_v8_ab_window* w = bpf_map_lookup_elem(&ml_v8_ab_windows, &tgid);
  if (!w) return 0;
  struct ml_v8_allocator_key key = {.pid = tgid, .addr = PT_REGS_PARM1(ctx)};
  if (!bpf_map_lookup_elem(&ml_v8_allocators, &key)) {
    __u64 now = bpf_ktime_get_boot_ns();
    if (bpf_map_update_elem(&ml_v8_allocators, &key, &now, BPF_NOEXIST) == 0)
      v8_ab_notice(ML_V8_AB_NOTICE_ALLOCATOR, key.addr);
  }
  __sync_fetch_and_add(&w->allocations, 1);
  if (w->allocations > w->max_allocations || bpf_ktime_get_boot_ns() - w->start_ns > w->length_ns) {
    // Racy on purpose: two CPUs may both report the end; userspace closes a window once.
    if (!w->ended) {
      w->ended = 1;
      v8_ab_notice(ML_V8_AB_NOTICE_WINDOW_OVER, 0);
    }
    return 0;
  }
  if (w->flags & ML_V8_AB_STACKS) v8_ab_stack_add(ctx, tgid, PT_REGS_PARM2(ctx));
  return 0;
}

// --v8-alloc-probes: NodeArrayBufferAllocator::Allocate / AllocateUninitialized entry: rsi = bytes. With
// stacks, every allocation's stack is counted (exact rather than sampled).
SEC("uprobe")
int ml_v8_ab_alloc(struct pt_regs* ctx) {
  struct ml_v8_counters* c = v8_counters();
  if (!c) return 0;
  __u64 bytes = PT_REGS_PARM2(ctx);
  v8_ab_allocated(c, bytes);
  if (capture_stacks) v8_ab_stack_add(ctx, bpf_get_current_pid_tgid() >> 32, bytes);
  return 0;
}

// NodeArrayBufferAllocator::Free, after its first (lock-prefixed) instruction: rdx = bytes.
SEC("uprobe")
int ml_v8_ab_free(struct pt_regs* ctx) {
  struct ml_v8_counters* c = v8_counters();
  if (!c) return 0;
  __sync_fetch_and_add(&c->ab_freed_bytes, PT_REGS_PARM3(ctx));
  __sync_fetch_and_add(&c->ab_frees, 1);
  return 0;
}

// NodeArrayBufferAllocator::Reallocate (Node 18) entry: rdx = old bytes, rcx = new bytes. Node counts the
// difference; so does memlens, as an allocation or a free of it.
SEC("uprobe")
int ml_v8_ab_realloc(struct pt_regs* ctx) {
  struct ml_v8_counters* c = v8_counters();
  if (!c) return 0;
  __u64 old_len = PT_REGS_PARM3(ctx), new_len = PT_REGS_PARM4(ctx);
  if (new_len > old_len)
    v8_ab_allocated(c, new_len - old_len);
  else if (old_len > new_len)
    __sync_fetch_and_add(&c->ab_freed_bytes, old_len - new_len);
  return 0;
}

static __always_inline int v8_external(__s64 delta) {
  struct ml_v8_counters* c = v8_counters();
  if (!c) return 0;
  __sync_fetch_and_add(&c->external_delta_bytes, delta);
  __sync_fetch_and_add(&c->external_adjustments, 1);
  return 0;
}

// Isolate::AdjustAmountOfExternalAllocatedMemory(int64_t): rsi = signed change.
SEC("uprobe")
int ml_v8_ext_adjust(struct pt_regs* ctx) {
  return v8_external((__s64)PT_REGS_PARM2(ctx));
}

// ExternalMemoryAccounter::Increase/Decrease(Isolate*, size_t), Update(Isolate*, int64_t): rdx.
SEC("uprobe")
int ml_v8_ext_increase(struct pt_regs* ctx) {
  return v8_external((__s64)PT_REGS_PARM3(ctx));
}

SEC("uprobe")
int ml_v8_ext_decrease(struct pt_regs* ctx) {
  return v8_external(-(__s64)PT_REGS_PARM3(ctx));
}

SEC("uprobe")
int ml_v8_ext_update(struct pt_regs* ctx) {
  return v8_external((__s64)PT_REGS_PARM3(ctx));
}
