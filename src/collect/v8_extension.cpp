// The V8 capability: per tracked node process, uprobes (or USDT) at the points src/node/probe_plan finds,
// GC events from the ring buffer (with the stack that triggered each GC), live ArrayBuffer bytes read from
// Node's allocator objects in the process's memory at each sample, ArrayBuffer allocation stacks sampled in
// short windows. With --v8-alloc-probes, every allocation and free is probed and counted instead.
// This file: the hooks, and the figures read at each sample (collect/v8_extension.h names the other parts).
#include "collect/v8_extension.h"

#include <fmt/format.h>

#include <algorithm>

#include "collect/extensions.h"
#include "collect/v8_doctor.h"
#include "common/clock.h"
#include "common/safe_file.h"
#include "node/heap_limit.h"
#include "proc/procfs.h"

namespace memlens::collect {

namespace {

// After exec, a libnode.so may not be mapped yet when the exec event is handled: look again at the next
// few samples.
constexpr int kLibnodeRechecks = 3;

}  // namespace

V8Extension::~V8Extension() {
  for (auto& [pid, st] : procs_) {
    retire(st.links);
    retire(st.window_links);
    forget_counters(pid);
    forget_window_maps(pid);
  }
}

void V8Extension::forget_previous_figures(model::Process& p) {
  auto& v8 = p.v8;
  if (!v8.gcs.empty() || v8.array_buffer_live_bytes > 0)
    p.notes.push_back(
        fmt::format("V8 figures before an exec ({} GCs) belonged to the previous program and "
                    "were dropped; the timeline keeps its samples",
                    v8.gcs.size() + v8.gcs_thinned.count));
  model::V8State fresh;
  fresh.probed = v8.probed;
  fresh.probe_source = v8.probe_source;
  fresh.holder_path = v8.holder_path;
  fresh.array_buffers_probed = v8.array_buffers_probed;
  fresh.array_buffers_source = v8.array_buffers_source;
  fresh.array_buffers_counting = v8.array_buffers_counting;
  fresh.external_probed = v8.external_probed;
  v8 = std::move(fresh);
}

void V8Extension::on_track(model::Trace& trace, model::Process& p, bool after_exec) {
  trace_ = &trace;
  if (p.before_command_exec) return;  // memlens's own image holds no V8: planning starts at the exec
  // The exec event comes before any event of the new image in the ring buffer, however late it is
  // handled: what V8 state there is belongs to the old image, even when it ran the same binary.
  if (after_exec) forget_previous_figures(p);
  auto& st = procs_[p.pid()];
  std::string identity = image_identity(p.pid());
  // Exec events are handled after the fact, sometimes several at once (a shell script that execs node):
  // when the image probed is still the one running, or the process is gone already, keep what is there.
  if (after_exec && (identity.empty() || (st.found_v8 && identity == st.identity))) return;
  // The new image is planned afresh: what was probed in the old one says nothing of it.
  if (after_exec) p.v8 = model::V8State{};
  st.identity = identity;
  retire(st.links);  // after exec: the old image's probes are gone with it
  // Stacks recorded before exec belong to the old image: hand them over before it is re-planned.
  reset_array_buffers(p, st);
  forget_counters(p.pid());
  st.counters = false;
  st.found_v8 = false;  // the new image is planned afresh (and re-planned while its libnode.so loads)
  st.rechecks_left = after_exec ? kLibnodeRechecks : 0;
  attach(trace, p, st);
  read_heap_limit(p);
}

void V8Extension::on_image_loaded(model::Trace& trace, model::Process& p) {
  auto it = procs_.find(p.pid());
  if (it == procs_.end()) return;
  auto& st = it->second;
  if (st.unmapped_holder) {
    // The probes went on the libnode.so found where the loader looks for it, before it was mapped: if
    // the loader mapped another file, the probes sit on a file that never runs. Plan again.
    auto want = *st.unmapped_holder;
    st.unmapped_holder.reset();
    auto mapped = mapped_libnodes(p.pid());
    if (mapped.empty() || std::find(mapped.begin(), mapped.end(), want) != mapped.end()) return;
    retire(st.links);
    reset_array_buffers(p, st);
    forget_counters(p.pid());
    st.counters = false;
    st.found_v8 = false;
    st.identity = image_identity(p.pid());
    attach(trace, p, st);
    return;
  }
  if (st.found_v8 || st.rechecks_left <= 0 || !!mapped_libnodes(p.pid()).empty()) return;
  --st.rechecks_left;
  st.identity = image_identity(p.pid());
  attach(trace, p, st);
}

void V8Extension::on_untrack(model::Process& p) {
  auto it = procs_.find(p.pid());
  if (it == procs_.end()) return;
  if (it->second.counters) read_array_buffers(p, it->second);
  // The stacks extension symbolizes Process::stacks when this hook returns: the last window's stacks
  // must be in by then.
  reset_array_buffers(p, it->second);
  if (!it->second.ever_found_v8 && noted_.insert(p.key()).second)
    p.notes.push_back(
        "no V8 found in this process (not node, or its binary has no usable V8 symbols): "
        "no GC or ArrayBuffer figures");
  kernel_unmatched_exited_ += it->second.last.gc_end_unmatched;
  kernel_pending_full_exited_ += it->second.last.gc_pending_full;
  forget_counters(p.pid());
  retire(it->second.links);
  procs_.erase(it);
  update_losses();
}

bool V8Extension::on_event(model::Trace&, model::Process& p, const Event& e) {
  on_notice(p, std::get<ArrayBufferNotice>(e));
  return true;
}

void V8Extension::on_sample(model::Process& p, model::Sample& s) {
  auto it = procs_.find(p.pid());
  if (it != procs_.end()) {
    auto& st = it->second;
    if (!st.found_v8 && st.rechecks_left > 0) {
      --st.rechecks_left;
      if (trace_ && !mapped_libnodes(p.pid()).empty()) {
        st.identity = image_identity(p.pid());
        attach(*trace_, p, st);
      }
    }
    drive_window(p, st, boot_ns());
    read_array_buffers(p, st);
  }
  if (p.v8.heap_used_bytes) s.js_heap_used_bytes = p.v8.heap_used_bytes;
  if (p.v8.array_buffers_probed) s.array_buffers_bytes = p.v8.array_buffer_live_bytes;
  update_losses();
}

void V8Extension::on_finish(model::Trace& trace) {
  trace_ = &trace;
  for (auto* p : trace.processes.live()) {
    auto it = procs_.find(p->pid());
    if (it != procs_.end()) read_array_buffers(*p, it->second);
  }
  update_losses();
}

void V8Extension::read_heap_limit(model::Process& p) {
  auto args = proc::read_cmdline(p.pid());
  if (!args) return;
  std::string options;
  if (auto env = read_text_file(fmt::format("/proc/{}/environ", p.pid()), 1 << 20))
    options = proc::environ_value(*env, "NODE_OPTIONS");
  p.v8.heap_size_limit_bytes = node::heap_limit_from_flags(*args, options);
}

void V8Extension::retire(std::vector<UprobeLink>& links) {
  session_.retire(std::move(links));
  links.clear();
}

void V8Extension::read_array_buffers(model::Process& p, PerProcess& st) {
  if (st.counters) read_counters(p, st);
  auto& v8 = p.v8;
  std::optional<uint64_t> live;
  if (st.counter_offset) live = read_allocator_counters(p.pid(), st.allocators, *st.counter_offset);
  if (live) {
    v8.array_buffers_probed = true;
    v8.array_buffers_source = "allocator_counter";
    v8.array_buffer_live_bytes = *live;
    v8.array_buffer_allocators = static_cast<uint32_t>(st.allocators.size());
  }
  if (v8.array_buffers_probed)
    v8.array_buffer_peak_bytes = std::max(v8.array_buffer_peak_bytes, v8.array_buffer_live_bytes);
}

void V8Extension::forget_counters(pid_t pid) {
  uint32_t key = static_cast<uint32_t>(pid);
  bpf_map_delete_elem(counters_fd(), &key);
}

void V8Extension::read_counters(model::Process& p, PerProcess& st) {
  uint32_t key = static_cast<uint32_t>(p.pid());
  ml_v8_counters c{};
  if (bpf_map_lookup_elem(counters_fd(), &key, &c) != 0) return;
  st.last = c;
  auto& lost = p.lost_by_source["v8"];
  lost.unpaired = c.gc_end_unmatched;
  lost.map_full = c.gc_pending_full;
  auto& v8 = p.v8;
  if (st.counting) {
    v8.array_buffer_allocated_total = c.ab_allocated_bytes;
    v8.array_buffer_freed_total = c.ab_freed_bytes;
    v8.array_buffer_allocations = c.ab_allocations;
    v8.array_buffer_frees = c.ab_frees;
    // Until an allocator's own counter can be read, live bytes are allocated - freed. Attach mode: frees
    // of backing stores allocated before attach can exceed what was seen allocated.
    if (v8.array_buffers_source != "allocator_counter")
      v8.array_buffer_live_bytes =
          c.ab_allocated_bytes > c.ab_freed_bytes ? c.ab_allocated_bytes - c.ab_freed_bytes : 0;
    if (!v8.array_buffers_baseline_unknown)
      v8.array_buffer_peak_bytes =
          std::max(v8.array_buffer_peak_bytes, static_cast<uint64_t>(c.ab_peak_live_bytes));
  }
  v8.external_adjustments_bytes = c.external_delta_bytes;
  v8.external_adjustments = c.external_adjustments;
  if (c.heap_figures_unread > 0) {
    // Such GCs are in the history without figures; the note says how many and why.
    constexpr std::string_view kUnread = "V8 GC: heap figures unread for ";
    std::string note = fmt::format(
        "{}{} GC(s): the GCTracer at Heap + {:#x} could not be read or did not point back at that heap",
        kUnread, c.heap_figures_unread, c.heap_tracer_offset);
    auto it =
        std::find_if(p.notes.begin(), p.notes.end(), [&](const auto& n) { return n.starts_with(kUnread); });
    if (it == p.notes.end())
      p.notes.push_back(std::move(note));
    else
      *it = std::move(note);
  }
}

void V8Extension::update_losses() {
  if (!trace_) return;
  uint64_t unmatched = kernel_unmatched_exited_, full = kernel_pending_full_exited_;
  for (const auto& [pid, st] : procs_) {
    unmatched += st.last.gc_end_unmatched;
    full += st.last.gc_pending_full;
  }
  auto& lost = trace_->info.loss_by_source["v8"];
  lost.unpaired = unmatched;
  lost.map_full = full;
}

std::unique_ptr<TraceExtension> make_v8_extension(BpfSession& session, bool alloc_probes) {
  if (!session.v8()) return nullptr;  // its object was not loaded
  return std::make_unique<V8Extension>(session, alloc_probes);
}

Result<std::string> describe_v8_probes_for_pid(pid_t pid) {
  auto plan = node::plan_for_pid(pid);
  if (!plan) return plan.error();
  return plan->describe();
}

Result<std::string> describe_v8_probes_for_binary(const std::string& path) {
  auto plan = node::plan_for_binary(path);
  if (!plan) return plan.error();
  return plan->describe();
}

}  // namespace memlens::collect
