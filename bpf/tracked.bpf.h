// What every tracing object shares with the core (memlens.bpf.c): the tracked-process map that filters
// every per-process program, the ring buffer events go to, and the helpers that reserve, submit and stack
// an event. Each object that includes it defines the maps; userspace hands the core's over to the others
// before they load (bpf_map__reuse_fd), so there is one of each.
#ifndef MEMLENS_TRACKED_BPF_H
#define MEMLENS_TRACKED_BPF_H

// Ring-buffer bytes pending before the consumer is woken; below it, userspace's periodic consume picks
// events up, which saves a wake-up per event on bursts.
const volatile __u64 wakeup_bytes = 256 * 1024;

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 4096);  // resized by userspace (--max-processes)
  __type(key, __u32);         // tgid
  __type(value, struct ml_tracked);
} ml_tracked SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_RINGBUF);
  __uint(max_entries, 4 * 1024 * 1024);  // set by userspace
} ml_events SEC(".maps");

static __always_inline bool is_tracked(__u32 tgid) {
  return bpf_map_lookup_elem(&ml_tracked, &tgid) != NULL;
}

static __always_inline void* reserve_event(__u64 size) {
  void* e = bpf_ringbuf_reserve(&ml_events, size, 0);
  if (!e) count_loss(ML_LOSS_RINGBUF_FULL);
  return e;
}

static __always_inline void submit_event(void* e) {
  __u64 pending = bpf_ringbuf_query(&ml_events, BPF_RB_AVAIL_DATA);
  bpf_ringbuf_submit(e, pending >= wakeup_bytes ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP);
}

// Process lifecycle events are few and userspace acts on each at once (after exec: attach the V8 probes
// to the new image while node is still starting): they wake the consumer rather than wait for its next
// periodic drain (up to 100 ms).
static __always_inline void submit_event_now(void* e) {
  bpf_ringbuf_submit(e, BPF_RB_FORCE_WAKEUP);
}

// The user stack of a uprobe whose caller's return address, read by the program, is at return_slot (ctx:
// the user registers; the caller's frame pointer still in %rbp): -1 when stacks are off.
static __always_inline __s32 slot_stack_id(void* ctx, __u64 return_slot, __u64 return_address) {
  if (!capture_stacks) return -1;
  return (__s32)capture_user_stack((struct pt_regs*)ctx, return_slot, return_address);
}

// The stacks of address-space growth (mmap, brk, mremap) are sampled by bytes: a call growing n bytes
// keeps its stack with probability min(1, n / every), each call on its own, and userspace weighs a kept
// stack by the inverse (model/growth_sampling.h), so the profile's totals stay unbiased. `every` is at
// least growth_stack_bytes (set by userspace before load; 0: every call's stack), and rises with the
// growth rate of the CPU's last window so that stack walks stay near growth_stacks_per_s per CPU however
// fast a process maps memory: each walk costs the traced thread about 30 us (unwind tables, JS frames).
const volatile __u32 growth_stack_bytes = 0;
const volatile __u32 growth_stacks_per_s = 50;
#define ML_GROWTH_WINDOW_NS 100000000ull  // 100 ms
#define ML_GROWTH_EVERY_MAX (1u << 30)

struct ml_growth_window {
  __u64 start_ns;
  __u64 bytes;  // grown in this window (on this CPU)
  __u32 every;  // in force during this window
  __u32 _pad;
};
struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct ml_growth_window);
} ml_growth_window SEC(".maps");

// The `every` for a call growing `bytes` now, counting them into this CPU's window (0: every call's stack).
static __always_inline __u32 growth_sampling_every(__u64 bytes) {
  if (!capture_stacks || !growth_stack_bytes) return 0;
  __u32 zero = 0;
  struct ml_growth_window* w = bpf_map_lookup_elem(&ml_growth_window, &zero);
  if (!w) return growth_stack_bytes;
  __u64 now = bpf_ktime_get_ns();
  __u64 elapsed = now - w->start_ns;
  if (elapsed >= ML_GROWTH_WINDOW_NS) {
    // bytes/elapsed is the rate; at every = rate / stacks_per_s the window would have taken that many.
    __u64 grown = w->bytes < (1ull << 36) ? w->bytes : (1ull << 36);
    __u64 every = grown * (1000000000ull / (growth_stacks_per_s ? growth_stacks_per_s : 1)) / elapsed;
    if (every < growth_stack_bytes) every = growth_stack_bytes;
    if (every > ML_GROWTH_EVERY_MAX) every = ML_GROWTH_EVERY_MAX;
    w->every = (__u32)every;
    w->start_ns = now;
    w->bytes = 0;
  }
  w->bytes += bytes;
  return w->every ? w->every : growth_stack_bytes;
}

// The stack of an address-space call that grows the address space by `bytes`, when sampled (-1 else);
// *every: the sampling it was under (ml_mm_event.stack_sample_bytes).
static __always_inline __s32 growth_stack_id(void* ctx, __u64 return_slot, __u64 return_address, __u64 bytes,
                                             __u32* every) {
  *every = 0;
  if (!capture_stacks || bytes == 0) return -1;
  __u64 e = growth_sampling_every(bytes);
  *every = (__u32)e;
  // bytes < e <= 2^30: the threshold fits in 64 bits.
  if (e && bytes < e && bpf_get_prandom_u32() >= (bytes << 32) / e) return -1;
  return slot_stack_id(ctx, return_slot, return_address);
}

// The same at a function's entry (or a branch equivalent to it): the return address is on top of the stack.
static __always_inline __s32 entry_stack_id(void* ctx, __u64 return_address) {
  return slot_stack_id(ctx, PT_REGS_SP((struct pt_regs*)ctx), return_address);
}

// The same where the program has no use for the return address itself; at_entry false: a probe inside
// a function (USDT), whose own frame is the innermost in the chain.
static __always_inline __s32 user_stack_id(void* ctx, bool at_entry) {
  if (!capture_stacks) return -1;
  if (!at_entry) return slot_stack_id(ctx, 0, 0);
  __u64 return_address = 0;
  bpf_probe_read_user(&return_address, sizeof(return_address), (void*)PT_REGS_SP((struct pt_regs*)ctx));
  return entry_stack_id(ctx, return_address);
}

#endif  // MEMLENS_TRACKED_BPF_H
