#include "collect/trace_builder.h"

#include <fmt/format.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <tuple>

#include "collect/fd_events.h"
#include "memlens/abi.h"
#include "model/growth_sampling.h"

namespace memlens::collect {

namespace {

uint64_t page_align_up(uint64_t len) {
  return (len + 4095) & ~uint64_t{4095};
}

bool is_error_address(int64_t result) {
  return result < 0 && result > -4096;
}

// A growing call that has its stack: what it stands for in the mmap_growth profile (a sampled call, its
// bytes and one call times the inverse of its chance). Returns that weight.
double add_growth(model::Process& p, const MmEvent& e, uint64_t bytes) {
  double weight = model::growth_stack_weight(bytes, e.stack_sample_bytes);
  auto& w = p.stacks[model::stack_kind::kMmapGrowth][e.stack_id];
  w.bytes += std::llround(static_cast<double>(bytes) * weight);
  w.count += std::llround(weight);
  return weight;
}

}  // namespace

void apply_exit_faults(model::Process& p, const ProcEvent& e) {
  p.minflt = std::max<uint64_t>(p.minflt, e.minflt - std::min<uint64_t>(e.minflt, p.thread_minflt_at_start));
  p.majflt = std::max<uint64_t>(p.majflt, e.majflt - std::min<uint64_t>(e.majflt, p.thread_majflt_at_start));
  p.has_kernel_fault_counts = true;
}

int decode_wait_status(int status) {
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return WEXITSTATUS(status);
}

model::Process* TraceBuilder::track(pid_t pid, pid_t ppid, uint64_t start_time_ns, bool attached_late) {
  model::ProcessKey key{pid, model::start_time_ns_to_ticks(start_time_ns)};
  if (auto* existing = trace_.processes.find(key)) return existing;
  auto& p = trace_.processes.add(key, ppid);
  p.start_time_ns = start_time_ns;
  p.first_seen_s = host_.now_s();
  p.attached_late = attached_late;
  host_.read_new_process(p);
  return &p;
}

namespace {

// The fields an identity record carries, in one order for both directions.
template <typename P>
auto identity_fields(P& p) {
  return std::tie(p.comm, p.exe, p.cmdline);
}
template <typename P>
auto start_fields(P& p) {
  return std::tie(p.first_seen_s, p.minflt_at_start, p.majflt_at_start, p.thread_minflt_at_start,
                  p.thread_majflt_at_start);
}
// Those of an end-state record, beside the untraced time.
template <typename P>
auto end_fields(P& p) {
  return std::tie(p.notes, p.holds, p.held_s, p.lost_by_source);
}

}  // namespace

ProcessIdentity identity_of(const model::Process& p, bool new_process) {
  ProcessIdentity id;
  id.pid = p.pid();
  id.start_time_ns = p.start_time_ns;
  id.new_process = new_process;
  identity_fields(id) = identity_fields(p);
  start_fields(id) = start_fields(p);
  return id;
}

void apply_identity(model::Process& p, const ProcessIdentity& id) {
  identity_fields(p) = identity_fields(id);
  if (id.new_process) start_fields(p) = start_fields(id);
}

namespace {

// The process figures a sample record carries, in one order for both directions.
template <typename P>
auto kernel_figures(P& p) {
  return std::tie(p.rss_peak_bytes, p.minflt, p.majflt, p.faults_user, p.faults_kernel, p.fault_sample_period,
                  p.has_kernel_fault_counts);
}

}  // namespace

ProcessSample sample_of(const model::Process& p, const model::Sample& s) {
  ProcessSample out;
  out.pid = p.pid();
  out.start_time_ns = p.start_time_ns;
  out.sample = s;
  kernel_figures(out) = kernel_figures(p);
  if (auto it = p.lost_by_source.find("kernel"); it != p.lost_by_source.end()) {
    out.lost_ring_full = it->second.ring_full;
    out.lost_map_full = it->second.map_full;
  }
  return out;
}

void apply_sample(model::Process& p, const ProcessSample& s) {
  p.rss = s.sample.rss;
  kernel_figures(p) = kernel_figures(s);
  auto& lost = p.lost_by_source["kernel"];
  lost.ring_full = s.lost_ring_full;
  lost.map_full = s.lost_map_full;
  if (s.figures_only) return;
  model::add_sample(p, s.sample);
  if (s.at_exit && !s.exit_event && p.alive()) {
    p.exit_status = decode_wait_status(s.wait_status);
    p.exited_at_s = s.sample.t_s;
    p.notes.push_back(kExitWithoutEvent);
    p.untraced.end_all(s.sample.t_s);
  }
}

ProcessEndState end_state_of(const model::Process& p, double end_s) {
  ProcessEndState s;
  s.pid = p.pid();
  s.start_time_ns = p.start_time_ns;
  end_fields(s) = end_fields(p);
  s.untraced_s = p.untraced.seconds(end_s);
  if (p.untraced.any()) s.untraced_reason = p.untraced.reason();
  return s;
}

void apply_end_state(model::Process& p, const ProcessEndState& s) {
  end_fields(p) = end_fields(s);
  // Closed stretches: their total and their reasons are all a report reads of them.
  p.untraced = {};
  if (!s.untraced_reason.empty()) p.untraced.add(s.untraced_s, s.untraced_reason);
}

V8EndState v8_end_state_of(const model::Process& p) {
  V8EndState s{p.pid(), p.start_time_ns, p.v8};
  s.v8.gcs.clear();
  s.v8.gcs_thinned = {};
  s.v8.gc_stride = 1;
  s.v8.gc_partial_seen = 0;
  s.v8.trigger_stacks = s.v8.trigger_stack_gcs = 0;
  return s;
}

// The GCs themselves come from the event stream, replayed; the end state holds the rest.
void apply_v8_end_state(model::Process& p, const V8EndState& s) {
  model::V8State replayed = std::move(p.v8);
  p.v8 = s.v8;
  p.v8.gcs = std::move(replayed.gcs);
  p.v8.gcs_thinned = std::move(replayed.gcs_thinned);
  p.v8.gc_stride = replayed.gc_stride;
  p.v8.gc_partial_seen = replayed.gc_partial_seen;
  p.v8.trigger_stacks = replayed.trigger_stacks;
  p.v8.trigger_stack_gcs = replayed.trigger_stack_gcs;
}

CapabilitiesEndState capabilities_end_state_of(const model::Process& p) {
  return {p.pid(), p.start_time_ns, p.fds, p.attribution, p.js_objects, p.stacks};
}

void apply_capabilities_end_state(model::Process& p, CapabilitiesEndState s) {
  p.fds = std::move(s.fds);
  p.attribution = std::move(s.attribution);
  p.js_objects = std::move(s.js_objects);
  p.stacks = std::move(s.stacks);
}

model::Process* TraceBuilder::track(const TrackStart& t) {
  auto* p = track(t.pid, t.ppid, t.start_time_ns, t.attached_late);
  if (t.before_command_exec) p->before_command_exec = true;
  return p;
}

void TraceBuilder::apply(const Event& event) {
  if (const auto* e = std::get_if<ProcEvent>(&event)) {
    apply_proc(*e);
    return;
  }
  model::Process* p = trace_.processes.find_live(event_pid(event));
  if (!p) {
    ++unknown_process_events_;
    return;
  }
  if (const auto* e = std::get_if<MmEvent>(&event)) {
    if (p->image_loading) {
      p->image_loading = false;
      host_.image_loaded(*p);
    }
    apply_mm_event(*p, *e);
  } else if (const auto* e = std::get_if<GcEvent>(&event)) {
    apply_gc_event(trace_, *p, *e);
  } else if (const auto* e = std::get_if<FdEvent>(&event)) {
    if (!apply_fd_event(p->fds, *e, trace_.seconds_since_start(e->ts_ns))) ++malformed_[event_source(event)];
  } else if (!host_.capability_event(*p, event)) {
    ++malformed_[event_source(event)];
  }
}

void TraceBuilder::apply_proc(const ProcEvent& e) {
  double t_s = trace_.seconds_since_start(e.ts_ns);
  pid_t pid = e.pid;
  if (e.kind == ProcEvent::Kind::kFork) {
    auto* p = track(pid, e.ppid, e.start_time_ns, false);
    p->comm = e.comm;
    // Born traced: every fault it takes counts (it may have run a little before this event is read), and
    // it inherited its parent's fault-sampling event at the fork.
    p->minflt_at_start = p->majflt_at_start = 0;
    p->thread_minflt_at_start = p->thread_majflt_at_start = 0;
    if (e.flags & ML_PROC_UNTRACKED) {
      // The kernel could not follow it: no probe, no exit event; the tracer sees it go.
      p->untraced.begin(kAddressSpace, trace_.seconds_since_start(e.start_time_ns),
                        "not followed: the tracked-process map is full (--max-processes)");
      return;
    }
    host_.attach_probes(*p);
    host_.seed_address_space(*p);
    host_.finish_hold(*p, e, trace_.seconds_since_start(e.start_time_ns));
    return;
  }
  // A live pid names one process at a time. (Its start time as the kernel reports it can differ from
  // what /proc gave before an exec, so it is not used to find the process.)
  model::Process* p = trace_.processes.find_live(pid);
  if (!p && e.kind == ProcEvent::Kind::kExit) {
    model::ProcessKey key{pid, model::start_time_ns_to_ticks(e.start_time_ns)};
    if (auto* known = trace_.processes.find(key)) {
      // The exit of a process already seen gone, or a second exit event (two threads ending at once can
      // both see the process's last thread gone): the later one has folded in more threads' faults.
      known->exit_status = decode_wait_status(e.exit_code);
      apply_exit_faults(*known, e);
      return;
    }
    // A process the kernel followed and memlens never knew: its fork event was lost. It is counted as
    // a process that ran untraced for its whole life.
    auto& q = trace_.processes.add(key, 0);
    q.start_time_ns = e.start_time_ns;
    q.comm = e.comm;
    q.first_seen_s = t_s;
    q.untraced.add(t_s - trace_.seconds_since_start(e.start_time_ns),
                   "its fork event was lost (ring buffer full): never traced");
    q.exit_status = decode_wait_status(e.exit_code);
    q.exited_at_s = t_s;
    return;
  }
  if (!p && e.kind == ProcEvent::Kind::kExec) {
    // Followed by the kernel, unknown to memlens (its fork event was lost): traced from here on.
    p = track(pid, host_.parent_of(pid), e.start_time_ns, false);
    p->untraced.add(t_s - trace_.seconds_since_start(e.start_time_ns),
                    "its fork event was lost (ring buffer full): untraced until its exec");
    host_.attach_probes(*p);
  }
  if (!p) {
    ++unknown_process_events_;
    return;
  }
  if (e.kind == ProcEvent::Kind::kExec) {
    if (p->before_command_exec) {
      // What memlens's child did before it became the command is memlens's own work.
      p->stacks.clear();
      p->before_command_exec = false;
    }
    host_.refresh_identity(*p);
    p->comm = e.comm;
    host_.seed_address_space(*p);
    p->image_loading = true;
    host_.exec_probes(*p, t_s);
    host_.finish_hold(*p, e, t_s);
    return;
  }
  apply_exit_faults(*p, e);
  p->oom_victim_marked = (e.flags & ML_PROC_OOM_VICTIM) != 0;
  host_.exited(*p, e.exit_code, t_s);
}

void apply_unmapped(model::Process& p, const AddressSpaceUnmapped& u) {
  p.address_space.take_out(u.ranges);
}

void apply_mm_event(model::Process& p, const MmEvent& e) {
  auto& as = p.address_space;
  // The sampling every growing call was under, kept stack or not.
  if (e.stack_sample_bytes > 0) {
    uint32_t& lo = p.growth_stack_sample_min;
    lo = lo == 0 ? e.stack_sample_bytes : std::min(lo, e.stack_sample_bytes);
    p.growth_stack_sample_max = std::max(p.growth_stack_sample_max, e.stack_sample_bytes);
  }
  switch (e.kind) {
    case MmEvent::Kind::kMmap: {
      ++p.events.mmap;
      if (is_error_address(e.result)) break;
      model::Mapping m;
      m.start = static_cast<uint64_t>(e.result);
      m.end = m.start + page_align_up(e.len_bytes);
      m.prot = e.prot;
      m.flags = e.flags;
      m.anonymous = (e.flags & MAP_ANONYMOUS) != 0 || e.fd < 0;
      m.file_offset = e.offset;
      m.origin = model::Origin::kMmap;
      m.stack_id = e.stack_id;
      m.caller_ip = e.caller_ip;
      m.created_ns = e.ts_ns;
      if (e.stack_id >= 0) m.stack_weight = add_growth(p, e, m.size());
      // The event has the fd, not the path: keep the path of whatever file this range maps now.
      if (!m.anonymous) {
        m.path = fmt::format("[fd {}]", e.fd);
        ++p.events.file_mmap;
      }
      as.map(std::move(m));
      break;
    }
    case MmEvent::Kind::kMunmap:
      ++p.events.munmap;
      if (e.result == 0) as.unmap(e.addr, page_align_up(e.len_bytes));
      break;
    case MmEvent::Kind::kMremap:
      ++p.events.mremap;
      if (is_error_address(e.result)) break;
      if (e.stack_id >= 0 && e.new_len_bytes > e.len_bytes)
        add_growth(p, e, page_align_up(e.new_len_bytes) - page_align_up(e.len_bytes));
      as.remap(e.addr, page_align_up(e.len_bytes), static_cast<uint64_t>(e.result),
               page_align_up(e.new_len_bytes));
      break;
    case MmEvent::Kind::kBrk:
      ++p.events.brk;
      if (e.result == 0) {
        uint64_t grown = as.set_brk(e.addr, e.ts_ns);
        if (grown > 0 && e.stack_id >= 0) add_growth(p, e, grown);
      }
      break;
    case MmEvent::Kind::kMadvise:
      ++p.events.madvise;
      break;
  }
}

void apply_gc_event(const model::Trace& trace, model::Process& p, const GcEvent& e) {
  model::GcEvent g;
  g.t_s = trace.seconds_since_start(e.start_ns);
  g.pause_ms = e.ts_ns >= e.start_ns ? static_cast<double>(e.ts_ns - e.start_ns) / 1e6 : 0;
  g.kind = e.usdt ? model::gc_kind_from_gc_type(e.kind) : model::gc_kind_from_collector(e.kind);
  g.heap_used_before_bytes = e.heap_used_before_bytes;
  if (e.heap_used_after_bytes) {
    g.heap_used_after_bytes = e.heap_used_after_bytes;
    p.v8.heap_used_bytes = *e.heap_used_after_bytes;
  }
  model::record_gc(p.v8, g);
  // What was running when the GC was triggered; its weight in bytes is what the GC freed, when known. A
  // GC's stack is sampled (ML_V8_GC_STACK_GAP_NS, ML_V8_GC_FULL_STACK_GAP_NS) and stands for stack_weight
  // GCs of its kind.
  if (e.stack_id >= 0) {
    auto& w = p.stacks[model::stack_kind::kGcTriggers][e.stack_id];
    const int64_t weight = e.stack_weight;
    w.count += weight;
    p.v8.trigger_stacks += 1;
    p.v8.trigger_stack_gcs += e.stack_weight;
    if (g.heap_used_before_bytes && g.heap_used_after_bytes &&
        *g.heap_used_before_bytes > *g.heap_used_after_bytes) {
      // Saturated: a damaged capture may hold any weight and any figures.
      const uint64_t diff = *g.heap_used_before_bytes - *g.heap_used_after_bytes;
      int64_t freed = 0;
      if (diff > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
          __builtin_mul_overflow(weight, static_cast<int64_t>(diff), &freed) ||
          __builtin_add_overflow(w.bytes, freed, &w.bytes))
        w.bytes = std::numeric_limits<int64_t>::max();
    }
  }
}

}  // namespace memlens::collect
