// What every memlens BPF object shares: the kernel types, the ABI, the maps that more than one object
// uses (userspace creates them once, in the core object, and hands their fds to the others before load:
// bpf_map__reuse_fd) and the user-stack walker. Included once per object.
#ifndef MEMLENS_COMMON_BPF_H
#define MEMLENS_COMMON_BPF_H

// vmlinux.h defines the kernel types the libbpf headers use: it must come first.
// clang-format off
#include "vmlinux.h"
// clang-format on

#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "memlens/abi.h"

#define ML_PAGE_SHIFT 12

// Set by userspace before load (per object).
const volatile bool capture_stacks = false;

// Shared maps (the core object's).
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 4096);
  __type(key, __u32);  // tgid
  __type(value, struct ml_proc_stats);
} ml_proc_stats SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, ML_LOSS_REASONS);
  __type(key, __u32);
  __type(value, __u64);
} ml_loss SEC(".maps");

// User stacks by id. Not a STACK_TRACE map: that one keeps one stack per hash bucket and refuses a new
// stack whose bucket is taken (with a few thousand distinct stacks, a hundred or so collisions in a
// short trace). Here the id is a 31-bit hash of the whole stack, a hash map keeps every stack until the
// table is full, and two different stacks share an id only on a true 31-bit collision, which is
// detected (the 64-bit hashes differ) and counted.
struct ml_user_stack {
  __u64 ips[ML_MAX_STACK_DEPTH];  // innermost first, zero after the last frame
  __u64 hash;                     // of the frames; userspace reads ips only
};

// Entries are allocated as stacks come: a stack takes 1 KiB, and most traces keep a few thousand.
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __uint(max_entries, 16384);  // set by userspace
  __type(key, __u32);
  __type(value, struct ml_user_stack);
} ml_stacks SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct ml_user_stack);
} ml_stack_scratch SEC(".maps");

// JS frames (struct ml_js_proc): the layout of the processes whose V8 metadata is understood, and the
// function of each JS frame of the stacks that have one. Entries are allocated as stacks with JS frames
// come, not up front: processes without JS pay no memory.
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 4096);  // set by userspace
  __type(key, __u32);         // tgid
  __type(value, struct ml_js_proc);
} ml_js_procs SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __uint(max_entries, 16384);  // set by userspace
  __type(key, __u32);          // stack id (ml_stacks)
  __type(value, struct ml_js_frames);
} ml_js_frames SEC(".maps");

// The ids of the stacks just added to ml_js_frames, in order: userspace names their functions while the
// process lives without walking the whole table at every look. When it is full a push fails and nothing
// is lost: userspace, finding it full, walks the table once.
struct {
  __uint(type, BPF_MAP_TYPE_QUEUE);
  __uint(max_entries, 4096);  // set by userspace
  __type(value, __u32);       // stack id
} ml_js_new SEC(".maps");

struct ml_js_scratch {
  struct ml_js_frames f;
  __u32 n;                       // JS frames found by the last walk on this CPU
  __u64 fp[ML_MAX_STACK_DEPTH];  // each frame's frame pointer, noted by the walk (0: none)
};

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct ml_js_scratch);
} ml_js_scratch SEC(".maps");

// Clears size bytes at p. clang's BPF backend writes a memset out as stores only up to a limit (there is
// no memset to call): larger ones go in pieces, the loop unrolled at compile time, with a compiler barrier
// after each so that the optimizer does not merge them back into one.
#define ML_MEMSET_PIECE 512u
#define ml_zero(p, size)                                                                               \
  do {                                                                                                 \
    _Pragma("unroll") for (__u32 _o = 0; _o < (size); _o += ML_MEMSET_PIECE) {                         \
      __builtin_memset((char*)(p) + _o, 0, (size)-_o < ML_MEMSET_PIECE ? (size)-_o : ML_MEMSET_PIECE); \
      asm volatile("" ::: "memory");                                                                   \
    }                                                                                                  \
  } while (0)

static __always_inline void count_loss(__u32 reason) {
  __u64* v = bpf_map_lookup_elem(&ml_loss, &reason);
  if (v) *v += 1;  // per-CPU slot: no other writer
  if (reason != ML_LOSS_RINGBUF_FULL && reason != ML_LOSS_PENDING_FULL) return;
  // An event of the current process lost: counted for that process too (report.json shows it per process).
  __u32 tgid = bpf_get_current_pid_tgid() >> 32;
  struct ml_proc_stats* s = bpf_map_lookup_elem(&ml_proc_stats, &tgid);
  if (!s) return;
  if (reason == ML_LOSS_RINGBUF_FULL)
    __sync_fetch_and_add(&s->lost_ring_full, 1);
  else
    __sync_fetch_and_add(&s->lost_map_full, 1);
}

// The header of every event: who, where, when (CLOCK_BOOTTIME).
static __always_inline void fill_header(struct ml_event_header* h, __u32 type) {
  __u64 id = bpf_get_current_pid_tgid();
  h->type = type;
  h->pid = id >> 32;
  h->tid = (__u32)id;
  h->cpu = bpf_get_smp_processor_id();
  h->ts_ns = bpf_ktime_get_boot_ns();
}

// A frame is at most this far above the one below it (the default main-thread stack limit). A saved
// frame pointer further away, below the last frame, or misaligned is not a caller's frame: the walk ends.
#define ML_MAX_FRAME_BYTES (8ULL << 20)

// Unwind tables (see abi.h): rows of every file, sized by userspace (its byte budget) and written by it
// through a mapping of the array; the executable mappings of each traced process.
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(map_flags, BPF_F_MMAPABLE);
  __uint(max_entries, 1);  // set by userspace
  __type(key, __u32);
  __type(value, struct ml_unwind_row);
} ml_unwind_rows SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __uint(max_entries, 1);  // set by userspace
  __type(key, __u32);      // tgid
  __type(value, struct ml_unwind_proc);
} ml_unwind_procs SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, ML_UNWIND_MAX_FILES);
  __type(key, struct ml_unwind_file_key);
  __type(value, struct ml_unwind_file);
} ml_unwind_files SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, ML_UNWIND_STATS);
  __type(key, __u32);
  __type(value, __u64);
} ml_unwind_stats SEC(".maps");

static __always_inline void count_unwind(__u32 stat) {
  __u64* v = bpf_map_lookup_elem(&ml_unwind_stats, &stat);
  if (v) *v += 1;  // per-CPU slot: no other writer
}

// The walk: the registers of the frame being unwound (ip, sp, bp), the frames so far.
// Not bpf_get_stack: the kernel's walker follows the frame-pointer chain until a read faults, and every
// chain ends in garbage (glibc's start code leaves rbp = 1 in main's frame), so each capture took a page
// fault in kernel mode; nor can it unwind code built without frame pointers (Debian's C library).
struct ml_walk {
  struct ml_user_stack* s;      // the frames go here (the caller's scratch entry: looked up once)
  struct ml_unwind_proc* proc;  // the process's executable mappings with tables, NULL when none
  __u64 ip, sp, bp, hash;
  __u32 n;
  __u32 ip_is_return;  // ip is a return address: its call is at ip - 1 (a noreturn call may end a function)
  // With a process that has a V8 frame layout: the walk notes each frame's frame pointer in jsf, and a
  // second pass reads the JS frames' functions. Not in the frame step itself: its branches multiplied
  // with the unwinder's, and each program that captures stacks took twice as long to load.
  struct ml_js_scratch* jsf;
  __u32 has_js;
};

static __always_inline __u64 hash_step(__u64 h, __u64 ip) {
  h = (h ^ ip) * 0xff51afd7ed558ccdULL;
  return h ^ (h >> 32);
}

// Before a walk: the process's V8 frame layout, if userspace set one, and a cleared place for the JS
// frames' functions.
static __always_inline void js_walk_begin(struct ml_walk* w) {
  __u32 zero = 0, tgid = bpf_get_current_pid_tgid() >> 32;
  struct ml_js_scratch* jsf = bpf_map_lookup_elem(&ml_js_scratch, &zero);
  if (!jsf) return;
  jsf->n = 0;
  if (!bpf_map_lookup_elem(&ml_js_procs, &tgid)) return;
  ml_zero(&jsf->f, sizeof(jsf->f));
  ml_zero(jsf->fp, sizeof(jsf->fp));
  jsf->f.pid = tgid;
  w->jsf = jsf;
  w->has_js = 1;
}

// In the frame step, before stepping: the frame pointer of the frame whose pc is ips[n - 1].
static __always_inline void js_note_frame(struct ml_walk* w) {
  struct ml_js_scratch* jsf = w->jsf;
  if (!jsf || w->n == 0) return;
  jsf->fp[(w->n - 1) & (ML_MAX_STACK_DEPTH - 1)] = w->bp;
}

// The frame whose frame pointer is fp is the one of the last pc recorded (ips[n - 1]). When that pc is in
// V8's code, the frame's function slot holds its JSFunction (a tagged heap pointer), unless the frame is a
// typed (stub) frame, whose context slot then holds a Smi frame-type marker. The JSFunction's
// SharedFunctionInfo identifies the function: kept with the frame, and in the stack's hash, since the same
// code (an interpreter builtin) runs many functions. Userspace checks the object is one before naming it.
// The tagged SharedFunctionInfo of the frame whose pc and frame pointer are given, 0 when it is not a JS
// frame of a process with a layout. A global function: the verifier checks it once, on its own; inlined
// into the frame step, its branches multiplied with the unwinder's and the stack-capturing programs took
// seconds to load.
__noinline __u64 ml_js_frame_function(__u64 pc, __u64 fp) {
  __u32 tgid = bpf_get_current_pid_tgid() >> 32;
  const struct ml_js_proc* js = bpf_map_lookup_elem(&ml_js_procs, &tgid);
  if (!js) return 0;
  bool in_v8 = false;
  for (__u32 r = 0; r < ML_JS_CODE_RANGES; r++) {
    if (r >= js->n_ranges) break;
    if (pc >= js->ranges[r].start && pc < js->ranges[r].end) {
      in_v8 = true;
      break;
    }
  }
  if (!in_v8) return 0;
  __u64 slots[2] = {0, 0}, context = 0, function = 0, sfi = 0;
  if (js->off_fp_context == js->off_fp_function + 8) {  // adjacent slots (every V8 so far): one read
    if (bpf_probe_read_user(slots, sizeof(slots), (void*)(fp + (__s64)js->off_fp_function)) != 0) return 0;
    function = slots[0];
    context = slots[1];
  } else if (bpf_probe_read_user(&context, sizeof(context), (void*)(fp + (__s64)js->off_fp_context)) != 0 ||
             bpf_probe_read_user(&function, sizeof(function), (void*)(fp + (__s64)js->off_fp_function)) !=
                 0) {
    return 0;
  }
  if ((context & 3) != 1 || (function & 3) != 1) return 0;
  if (bpf_probe_read_user(&sfi, sizeof(sfi), (void*)(function - 1 + js->off_function_shared)) != 0 ||
      (sfi & 3) != 1)
    return 0;
  return sfi;
}

// The second pass, one frame: a bpf_loop callback. Returns 1 to stop.
static long js_one_frame(__u64 index, struct ml_walk* w) {
  struct ml_js_scratch* jsf = w->jsf;
  struct ml_user_stack* s = w->s;
  if (!jsf || !s) return 1;
  __u32 i = index & (ML_MAX_STACK_DEPTH - 1);
  __u64 fp = jsf->fp[i];
  if (fp == 0) return 0;
  __u64 sfi = ml_js_frame_function(s->ips[i], fp);
  if (sfi == 0) return 0;
  jsf->f.sfi[i] = sfi - 1;
  jsf->n++;
  w->hash = hash_step(w->hash, sfi);
  return 0;
}

// The caller's registers of one frame.
struct ml_frame_regs {
  __u64 ip, sp, bp;
};

// The mapping of the process holding pc (binary search of the sorted mappings), NULL when none.
static __always_inline struct ml_unwind_mapping* find_mapping(struct ml_unwind_proc* proc, __u64 pc) {
  __u32 lo = 0, hi = proc->count;
  if (hi > ML_UNWIND_MAX_MAPPINGS) hi = ML_UNWIND_MAX_MAPPINGS;
  for (int i = 0; i < 7 && lo < hi; i++) {  // 2^6 > ML_UNWIND_MAX_MAPPINGS
    __u32 mid = (lo + hi) / 2;
    if (mid >= ML_UNWIND_MAX_MAPPINGS) return NULL;
    struct ml_unwind_mapping* m = &proc->m[mid];
    if (pc < m->start)
      hi = mid;
    else if (pc >= m->end)
      lo = mid + 1;
    else
      return m;
  }
  return NULL;
}

// A mapping of the current process that userspace has not listed yet, found in its address space: the
// file of the VMA holding pc, if its table is loaded (ml_unwind_files).
struct ml_vma_lookup {
  struct ml_unwind_mapping m;
  __u32 found;
};

static long ml_vma_to_mapping(struct task_struct* task, struct vm_area_struct* vma, struct ml_vma_lookup* l) {
  struct file* file = BPF_CORE_READ(vma, vm_file);
  if (!file) return 0;  // anonymous: V8's JIT code, which keeps its frame pointers
  struct ml_unwind_file_key key = {.dev = BPF_CORE_READ(file, f_inode, i_sb, s_dev),
                                   .ino = BPF_CORE_READ(file, f_inode, i_ino)};
  struct ml_unwind_file* f = bpf_map_lookup_elem(&ml_unwind_files, &key);
  if (!f) return 0;
  __u64 start = BPF_CORE_READ(vma, vm_start), offset = BPF_CORE_READ(vma, vm_pgoff) << 12;
  if (offset < f->seg_start || offset >= f->seg_end) return 0;
  l->m.start = start;
  l->m.end = BPF_CORE_READ(vma, vm_end);
  l->m.bias = start - offset + f->delta;
  l->m.first_row = f->first_row;
  l->m.row_count = f->row_count;
  l->found = 1;
  return 0;
}

// Fills out with the mapping of pc found in the current process's address space; 1 when found. A global
// function: its helper call and callback are checked once.
__noinline int ml_mapping_from_kernel(__u64 pc, struct ml_unwind_mapping* out) {
  if (!out) return 0;
  struct ml_vma_lookup l = {};
  if (bpf_find_vma(bpf_get_current_task_btf(), pc, ml_vma_to_mapping, &l, 0) != 0 || !l.found) return 0;
  *out = l.m;
  count_unwind(ML_UNWIND_MAPPED_BY_KERNEL);
  return 1;
}

// The index of the last row of [first, first + count) starting at or before pc, -1 when none. A global
// function: the verifier checks it once, on its own, where its loop inlined into the frame step made the
// step's states multiply past the verifier's limit.
__noinline long ml_find_row(__u32 first, __u32 count, __u32 pc) {
  __u32 lo = first, hi = first + count;      // the answer is lo - 1 when the loop ends
  for (int i = 0; i < 26 && lo < hi; i++) {  // a file holds fewer than 2^25 rows
    __u32 mid = lo + (hi - lo) / 2;
    struct ml_unwind_row* r = bpf_map_lookup_elem(&ml_unwind_rows, &mid);
    if (!r) return -1;
    if (r->pc <= pc)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (lo == first || lo > first + count) return -1;
  return lo - 1;
}

// One frame by the unwind table of pc's file (ip: the frame's pc; sp, bp: its registers). Returns 1 when
// done (out filled), 0 when there is no usable row (the frame pointer decides), -1 when the walk ends here
// (its cause counted). A global function, checked once by the verifier on its own: inlined into the frame
// step (a bpf_loop callback, which the verifier walks once per iteration until its states repeat), its
// branches made every program that captures stacks take several times longer to load. It finds the
// process's mappings itself (a pointer cannot be passed in).
__noinline int ml_unwind_by_table(__u64 ip, __u64 sp, __u64 bp, __u32 ip_is_return,
                                  struct ml_frame_regs* out) {
  if (!out) return 0;
  __u32 tgid = bpf_get_current_pid_tgid() >> 32;
  struct ml_unwind_proc* proc = bpf_map_lookup_elem(&ml_unwind_procs, &tgid);
  if (!proc) return 0;
  __u64 pc = ip_is_return ? ip - 1 : ip;
  struct ml_unwind_mapping* m = find_mapping(proc, pc);
  struct ml_unwind_mapping found;
  if (!m && (proc->flags & ML_UNWIND_PROC_ASK_KERNEL) && ml_mapping_from_kernel(pc, &found) == 1) m = &found;
  if (!m || m->row_count == 0) return 0;
  __u64 vaddr = pc - m->bias;
  if (vaddr > 0xffffffffULL) return 0;
  long at = ml_find_row(m->first_row, m->row_count, (__u32)vaddr);
  if (at < 0) return 0;
  __u32 row = (__u32)at;
  struct ml_unwind_row* r = bpf_map_lookup_elem(&ml_unwind_rows, &row);
  if (!r || r->cfa_kind == ML_CFA_NONE) return 0;
  if (r->cfa_kind == ML_CFA_END) {
    count_unwind(ML_UNWIND_END_OUTERMOST);
    return -1;
  }
  __u64 cfa;
  if (r->cfa_kind == ML_CFA_RSP)
    cfa = sp + r->cfa_offset;
  else if (r->cfa_kind == ML_CFA_RBP)
    cfa = bp + r->cfa_offset;
  else if (r->cfa_kind == ML_CFA_PLT)
    cfa = sp + r->cfa_offset + ((ip & 15) >= (__u64)r->rbp_offset ? 8 : 0);
  else {
    count_unwind(ML_UNWIND_FP_FALLBACK);
    return 0;
  }
  if (bpf_probe_read_user(&out->ip, sizeof(out->ip), (void*)(cfa - 8)) != 0) {
    count_unwind(ML_UNWIND_END_UNREADABLE);
    return -1;
  }
  out->bp = bp;
  if (r->rbp_kind == ML_RBP_AT_CFA) {
    if (bpf_probe_read_user(&out->bp, sizeof(out->bp), (void*)(cfa + r->rbp_offset)) != 0) {
      count_unwind(ML_UNWIND_END_UNREADABLE);
      return -1;
    }
  } else if (r->rbp_kind == ML_RBP_UNDEFINED) {
    out->bp = 0;
  }
  out->sp = cfa;
  count_unwind(ML_UNWIND_FRAMES_CFI);
  return 1;
}

// One frame by the frame pointer: the saved rbp at [rbp], the return address above it. Returns 1 when
// done, -1 when the chain does not climb the stack or cannot be read.
static __always_inline int unwind_by_frame_pointer(struct ml_walk* w, struct ml_frame_regs* out) {
  __u64 fp = w->bp;
  if (fp < w->sp || (fp & 7) != 0 || fp - w->sp > ML_MAX_FRAME_BYTES) {
    count_unwind(ML_UNWIND_END_BAD_FRAME);
    return -1;
  }
  __u64 frame[2];  // saved frame pointer, return address
  if (bpf_probe_read_user(frame, sizeof(frame), (void*)fp) != 0) {
    count_unwind(ML_UNWIND_END_UNREADABLE);
    return -1;
  }
  out->bp = frame[0];
  out->ip = frame[1];
  out->sp = fp + sizeof(frame);
  count_unwind(ML_UNWIND_FRAMES_FP);
  return 1;
}

// One frame of the walk: a bpf_loop callback, verified once per program, where a bounded loop inlined in
// every program that captures stacks made loading them 0.6 s slower. Steps from w's frame to its caller
// (by table, else by frame pointer) and records the caller. Returns 1 to stop.
static long walk_one_frame(__u64 index, struct ml_walk* w) {
  struct ml_user_stack* s = w->s;
  if (!s) return 1;
  if (w->n >= ML_MAX_STACK_DEPTH) {
    count_unwind(ML_UNWIND_END_DEPTH);
    return 1;
  }
  if (w->has_js) js_note_frame(w);  // before the step: w->bp is still this frame's frame pointer
  struct ml_frame_regs caller = {};
  int done = w->proc ? ml_unwind_by_table(w->ip, w->sp, w->bp, w->ip_is_return, &caller) : 0;
  if (done == 0) done = unwind_by_frame_pointer(w, &caller);
  if (done < 0) return 1;
  if (caller.ip == 0) {  // glibc's outermost frames end the frame-pointer chain with a null return address
    count_unwind(ML_UNWIND_END_OUTERMOST);
    return 1;
  }
  if (caller.sp <= w->sp || caller.sp - w->sp > ML_MAX_FRAME_BYTES) {
    count_unwind(ML_UNWIND_END_BAD_FRAME);
    return 1;
  }
  s->ips[w->n & (ML_MAX_STACK_DEPTH - 1)] = caller.ip;
  w->hash = hash_step(w->hash, caller.ip);
  w->n++;
  w->ip = caller.ip;
  w->sp = caller.sp;
  w->bp = caller.bp;
  w->ip_is_return = 1;
  return 0;
}

// Fills s (zeroed) with the stack and its hash.
// return_slot: where the caller's return address is when the probe sits before the function has pushed
// its frame (its first instruction, or a branch equivalent to it: %rsp; further into a wrapper that has
// taken stack bytes since: %rsp + those), rbp then still being the caller's; 0 elsewhere. The programs
// read that return address anyway (the events' caller_ip) and pass it in: it is read once. The caller's
// frame is then known without a table: its sp is just above the slot.
static __always_inline void walk_user_stack(struct pt_regs* regs, __u64 return_slot, __u64 return_address,
                                            struct ml_user_stack* s) {
  __u32 tgid = bpf_get_current_pid_tgid() >> 32;
  struct ml_walk w = {.s = s,
                      .proc = bpf_map_lookup_elem(&ml_unwind_procs, &tgid),
                      .ip = regs->ip,
                      .sp = regs->sp,
                      .bp = regs->bp,
                      .hash = 0x9e3779b97f4a7c15ULL,
                      .n = 1,
                      .ip_is_return = 0};
  count_unwind(ML_UNWIND_WALKS);
  js_walk_begin(&w);
  s->ips[0] = regs->ip;
  w.hash = hash_step(w.hash, s->ips[0]);
  if (return_slot) {
    if (return_address == 0) {
      s->hash = w.hash;
      return;
    }
    s->ips[1] = return_address;
    w.hash = hash_step(w.hash, return_address);
    w.n = 2;
    w.ip = return_address;
    w.sp = return_slot + sizeof(return_address);
    w.ip_is_return = 1;
  }
  bpf_loop(ML_MAX_STACK_DEPTH, walk_one_frame, &w, 0);
  if (w.has_js) bpf_loop(w.n, js_one_frame, &w, 0);
  s->hash = w.hash;
}

// With a new stack: the functions of its JS frames, if it has any.
static __always_inline void js_frames_store(__u32 id) {
  __u32 zero = 0;
  struct ml_js_scratch* jsf = bpf_map_lookup_elem(&ml_js_scratch, &zero);
  if (!jsf || jsf->n == 0) return;
  if (bpf_map_update_elem(&ml_js_frames, &id, &jsf->f, BPF_NOEXIST) != 0) {
    count_loss(ML_LOSS_JS_FRAMES);
    return;
  }
  bpf_map_push_elem(&ml_js_new, &id, 0);
}

// The id of the user stack of regs (the user registers) in ml_stacks (added if new), or -1 with the
// reason counted.
static __always_inline long capture_user_stack(struct pt_regs* regs, __u64 return_slot,
                                               __u64 return_address) {
  __u32 zero = 0;
  struct ml_user_stack* s = bpf_map_lookup_elem(&ml_stack_scratch, &zero);
  if (!s) return -1;
  ml_zero(s, sizeof(*s));
  walk_user_stack(regs, return_slot, return_address, s);
  __u32 id = (__u32)(s->hash ^ (s->hash >> 31)) & 0x7fffffff;
  struct ml_user_stack* have = bpf_map_lookup_elem(&ml_stacks, &id);
  if (!have) {
    if (bpf_map_update_elem(&ml_stacks, &id, s, BPF_NOEXIST) == 0) {
      js_frames_store(id);
      return id;
    }
    have = bpf_map_lookup_elem(&ml_stacks, &id);  // another CPU added it meanwhile, or the table is full
    if (!have) {
      count_loss(ML_LOSS_STACK);
      return -1;
    }
  }
  if (have->hash != s->hash) {
    count_loss(ML_LOSS_STACK);
    return -1;
  }
  return id;
}

#endif  // MEMLENS_COMMON_BPF_H
