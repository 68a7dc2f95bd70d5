// V8's GC probes: the start and end of each GC (uprobes on Heap::PerformGarbageCollection, or node's USDT
// gc__start/gc__done) and V8's heap-used figures around it, one ML_EV_V8_GC event per GC. Included by the
// tracer's V8 object (bpf/v8.bpf.c, through v8.bpf.h) and by the GC-only object (bpf/v8_gc.bpf.c) that
// `memlens top` loads alone. The including object provides reserve_event, submit_event, fill_header and
// user_stack_id.
#ifndef MEMLENS_V8_GC_BPF_H
#define MEMLENS_V8_GC_BPF_H
#include <bpf/usdt.bpf.h>

// Filled by userspace when it attaches the V8 probes to a process, removed when it stops tracking it: the
// entry doubles as the tracked-process filter of the allocator probes.
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 4096);
  __type(key, __u32);  // tgid
  __type(value, struct ml_v8_counters);
} ml_v8_counters SEC(".maps");

// A GC in progress on a thread, from its start to its end. LRU: a thread that dies in the middle of a GC
// (the process is exiting) leaves an entry nobody deletes.
struct ml_v8_gc_pending {
  __u64 start_ns;
  __u64 heap;  // v8::internal::Heap* the GC runs on, when the figures are read at its end (else 0)
  __u64 heap_before;
  __u64 heap_after;
  __u32 kind;
  __u32 flags;
  __u32 depth;     // PerformGarbageCollection re-entered on the same thread (a clone calling the original)
  __s32 stack_id;  // user stack at the start (what was running when the GC was triggered), -1 if none
  __u32 stack_weight;  // GCs that stack stands for (ml_v8_event.stack_weight)
  __u32 _pad;
};

struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 4096);
  __type(key, __u32);  // tid
  __type(value, struct ml_v8_gc_pending);
} ml_v8_gc_pending SEC(".maps");

static __always_inline struct ml_v8_counters* v8_counters(void) {
  __u32 tgid = bpf_get_current_pid_tgid() >> 32;
  return bpf_map_lookup_elem(&ml_v8_counters, &tgid);
}

// Per thread (each isolate collects on its own thread, so a worker's GCs are weighed apart from the main
// thread's) and per kind (a full GC frees far more than a scavenge: one stands only for its own kind):
// when its latest GC stack of the kind was walked, and its GCs of the kind since without a stack of their
// own. LRU: an exited thread's entry is evicted.
struct ml_v8_gc_clock {
  __u64 stacked_ns;
  __u64 unstacked;
};
struct ml_v8_gc_sampling {
  struct ml_v8_gc_clock young, full;
};

struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 4096);
  __type(key, __u32);  // tid
  __type(value, struct ml_v8_gc_sampling);
} ml_v8_gc_sampling SEC(".maps");

// Whether this GC's trigger stack is walked (its weight: the GCs of its kind it stands for,
// ML_V8_GC_STACK_GAP_NS and ML_V8_GC_FULL_STACK_GAP_NS), 0 when it is not. *s: the thread's clock for the
// GC's kind, to give the weight back to if the walk fails.
static __always_inline __u32 v8_gc_stack_weight(__u32 tid, __u32 kind, __u32 flags, __u64 now,
                                                struct ml_v8_gc_clock** s) {
  *s = 0;
  if (!capture_stacks) return 0;
  bool full = (flags & ML_V8_GC_USDT) ? (kind & 4) != 0 : kind == 1;
  struct ml_v8_gc_sampling* st = bpf_map_lookup_elem(&ml_v8_gc_sampling, &tid);
  if (!st) {
    struct ml_v8_gc_sampling fresh = {};
    bpf_map_update_elem(&ml_v8_gc_sampling, &tid, &fresh, BPF_NOEXIST);
    st = bpf_map_lookup_elem(&ml_v8_gc_sampling, &tid);
    if (!st) return 1;  // no state to sample with: this GC's own stack
  }
  struct ml_v8_gc_clock* c = full ? &st->full : &st->young;
  *s = c;
  if (c->stacked_ns && now - c->stacked_ns < (full ? ML_V8_GC_FULL_STACK_GAP_NS : ML_V8_GC_STACK_GAP_NS)) {
    c->unstacked += 1;
    return 0;
  }
  c->stacked_ns = now;
  __u64 weight = c->unstacked + 1;
  c->unstacked = 0;
  return weight > 0xffffffffull ? 0xffffffffu : (__u32)weight;
}

// at_entry: the probe is at the function's entry (uprobe), not inside it (USDT).
static __always_inline int v8_gc_begin(void* ctx, __u32 kind, __u32 flags, bool at_entry, __u64 heap) {
  struct ml_v8_counters* c = v8_counters();
  if (!c) return 0;
  __u32 tid = (__u32)bpf_get_current_pid_tgid();
  struct ml_v8_gc_pending* p = bpf_map_lookup_elem(&ml_v8_gc_pending, &tid);
  if (p) {
    p->depth += 1;
    return 0;
  }
  __u64 now = bpf_ktime_get_boot_ns();
  struct ml_v8_gc_clock* sampling;
  __u32 weight = v8_gc_stack_weight(tid, kind, flags, now, &sampling);
  __s32 stack_id = weight ? user_stack_id(ctx, at_entry) : -1;
  struct ml_v8_gc_pending n = {.start_ns = now,
                               .heap = c->heap_tracer_offset ? heap : 0,
                               .kind = kind,
                               .flags = flags,
                               .stack_id = stack_id,
                               .stack_weight = stack_id >= 0 ? weight : 0};
  bool remembered = bpf_map_update_elem(&ml_v8_gc_pending, &tid, &n, BPF_ANY) == 0;
  if (!remembered) __sync_fetch_and_add(&c->gc_pending_full, 1);
  // A walk that failed (counted as a lost stack) or a GC that cannot be remembered: the GCs the stack was
  // to stand for go to the thread's next GC of the kind, which walks again.
  if (sampling && weight && (stack_id < 0 || !remembered)) {
    sampling->unstacked += weight;
    sampling->stacked_ns = 0;
  }
  return 0;
}

// Both heap figures from the GC's tracer (ml_v8_counters.heap_tracer_offset), read as the GC ends.
static __always_inline void v8_heap_figures_from_tracer(struct ml_v8_counters* c,
                                                        struct ml_v8_gc_pending* p) {
  __u64 tracer = 0, heap_of_tracer = 0, before = 0, after = 0;
  if (bpf_probe_read_user(&tracer, sizeof(tracer), (void*)(p->heap + c->heap_tracer_offset)) != 0 ||
      bpf_probe_read_user(&heap_of_tracer, sizeof(heap_of_tracer), (void*)tracer) != 0 ||
      heap_of_tracer != p->heap ||
      bpf_probe_read_user(&before, sizeof(before), (void*)(tracer + (__s64)c->heap_slot_disp[0])) != 0 ||
      bpf_probe_read_user(&after, sizeof(after), (void*)(tracer + (__s64)c->heap_slot_disp[1])) != 0) {
    __sync_fetch_and_add(&c->heap_figures_unread, 1);
    return;
  }
  p->heap_before = before;
  p->heap_after = after;
  p->flags |= ML_V8_GC_HEAP_BEFORE | ML_V8_GC_HEAP_AFTER;
}

static __always_inline int v8_gc_finish(void) {
  struct ml_v8_counters* c = v8_counters();
  if (!c) return 0;
  __u32 tid = (__u32)bpf_get_current_pid_tgid();
  struct ml_v8_gc_pending* p = bpf_map_lookup_elem(&ml_v8_gc_pending, &tid);
  if (!p) {
    __sync_fetch_and_add(&c->gc_end_unmatched, 1);
    return 0;
  }
  if (p->depth > 0) {
    p->depth -= 1;
    return 0;
  }
  if (p->heap) v8_heap_figures_from_tracer(c, p);
  struct ml_v8_event* e = reserve_event(sizeof(*e));
  if (e) {
    fill_header(&e->h, ML_EV_V8_GC);
    e->start_ns = p->start_ns;
    e->heap_used_before_bytes = p->heap_before;
    e->heap_used_after_bytes = p->heap_after;
    e->kind = p->kind;
    e->flags = p->flags;
    e->stack_id = p->stack_id;
    e->stack_weight = p->stack_weight;
    submit_event(e);
  }
  bpf_map_delete_elem(&ml_v8_gc_pending, &tid);
  return 0;
}

static __always_inline int v8_heap_figure(__u64 bytes, bool after) {
  __u32 tid = (__u32)bpf_get_current_pid_tgid();
  struct ml_v8_gc_pending* p = bpf_map_lookup_elem(&ml_v8_gc_pending, &tid);
  if (!p) return 0;  // not inside a GC we saw start (or not a tracked process)
  if (after) {
    p->heap_after = bytes;
    p->flags |= ML_V8_GC_HEAP_AFTER;
  } else {
    p->heap_before = bytes;
    p->flags |= ML_V8_GC_HEAP_BEFORE;
  }
  return 0;
}

// Heap::PerformGarbageCollection entry: rdi = the Heap, esi = GarbageCollector.
SEC("uprobe")
int ml_v8_gc_start(struct pt_regs* ctx) {
  return v8_gc_begin(ctx, (__u32)PT_REGS_PARM2(ctx), 0, true, PT_REGS_PARM1(ctx));
}

SEC("uretprobe")
int ml_v8_gc_end(struct pt_regs* ctx) {
  return v8_gc_finish();
}

// The instruction after GCTracer::Start/StopInSafepoint's call to Heap::SizeOfObjects: rax = its result.
SEC("uprobe")
int ml_v8_heap_before(struct pt_regs* ctx) {
  return v8_heap_figure(PT_REGS_RC(ctx), false);
}

SEC("uprobe")
int ml_v8_heap_after(struct pt_regs* ctx) {
  return v8_heap_figure(PT_REGS_RC(ctx), true);
}

// The value of x86 register `reg` (0 rax .. 15 r15) in the probed thread. Every register is loaded: the
// verifier refuses a context access at a computed offset, which a switch compiles to.
static __always_inline __u64 v8_register(struct pt_regs* r, __u32 reg) {
  __u64 v[16] = {r->ax, r->cx, r->dx,  r->bx,  r->sp,  r->bp,  r->si,  r->di,
                 r->r8, r->r9, r->r10, r->r11, r->r12, r->r13, r->r14, r->r15};
  return v[reg & 15];
}

// The same figures at the call after GCTracer stored them (an instruction the kernel emulates: one trap
// rather than two): the word at the process's heap_slot_disp[i](heap_slot_base[i]).
static __always_inline int v8_heap_figure_in_slot(struct pt_regs* ctx, __u32 i) {
  struct ml_v8_counters* c = v8_counters();
  if (!c || i > 1) return 0;
  __u64 bytes = 0;
  __u64 addr = v8_register(ctx, c->heap_slot_base[i]) + (__s64)c->heap_slot_disp[i];
  if (bpf_probe_read_user(&bytes, sizeof(bytes), (void*)addr) != 0) return 0;
  return v8_heap_figure(bytes, i == 1);
}

SEC("uprobe")
int ml_v8_heap_before_slot(struct pt_regs* ctx) {
  return v8_heap_figure_in_slot(ctx, 0);
}

SEC("uprobe")
int ml_v8_heap_after_slot(struct pt_regs* ctx) {
  return v8_heap_figure_in_slot(ctx, 1);
}

// USDT node:gc__start(int type, int flags, void* isolate) / gc__done(...) (Node <= 18 built --with-dtrace):
// type is v8::GCType bits, mapped to a kind by userspace. No heap figures on this path.
SEC("usdt")
int BPF_USDT(ml_v8_usdt_gc_start, int type, int flags) {
  return v8_gc_begin(ctx, (__u32)type, ML_V8_GC_USDT, false, 0);
}

SEC("usdt")
int BPF_USDT(ml_v8_usdt_gc_done, int type, int flags) {
  return v8_gc_finish();
}

#endif  // MEMLENS_V8_GC_BPF_H
