// The V8 capability's probes: the plan of a node binary (node/probe_plan) turned into uprobes or USDT
// probes on one process, each probe complete or absent, what was skipped and why noted in the trace.
#include <fmt/format.h>
#include <sys/stat.h>

#include <algorithm>

#include "collect/v8_extension.h"
#include "collect/v8_heap_slots.h"
#include "common/clock.h"

namespace memlens::collect {

using node::ProbePurpose;

void V8Extension::note_attached(model::Trace& trace, const std::string& name) {
  auto& a = trace.info.probes_attached;
  if (std::find(a.begin(), a.end(), name) == a.end()) a.push_back(name);
}

void V8Extension::note_skipped(model::Trace& trace, const std::string& name, const std::string& reason) {
  for (const auto& s : trace.info.probes_skipped)
    if (s.name == name && s.reason == reason) return;
  trace.info.probes_skipped.push_back({name, reason});
}

bpf_program* V8Extension::program_for(node::ProbePurpose purpose) {
  auto* progs = &session_.v8()->progs;
  switch (purpose) {
    case ProbePurpose::gc_start:
      return progs->ml_v8_gc_start;
    case ProbePurpose::gc_end:
      return progs->ml_v8_gc_end;
    case ProbePurpose::heap_used_before:
      return progs->ml_v8_heap_before;
    case ProbePurpose::heap_used_after:
      return progs->ml_v8_heap_after;
    case ProbePurpose::array_buffer_alloc:
    case ProbePurpose::array_buffer_alloc_uninit:
      return progs->ml_v8_ab_alloc;
    case ProbePurpose::array_buffer_free:
      return progs->ml_v8_ab_free;
    case ProbePurpose::array_buffer_realloc:
      return progs->ml_v8_ab_realloc;
    case ProbePurpose::external_memory_adjust:
      return progs->ml_v8_ext_adjust;
    case ProbePurpose::external_memory_increase:
      return progs->ml_v8_ext_increase;
    case ProbePurpose::external_memory_decrease:
      return progs->ml_v8_ext_decrease;
    case ProbePurpose::external_memory_update:
      return progs->ml_v8_ext_update;
    case ProbePurpose::heap_committed:
      return nullptr;  // top's own GC probes read it (collect/v8_gc_probes.h), not the tracer
  }
  return nullptr;
}

bool V8Extension::attach_site(model::Trace& trace, pid_t pid, const node::ProbeSite& site, PerProcess& st) {
  std::string name = fmt::format("v8:{}", node::to_string(site.purpose));
  if (!site.found()) {
    // Probes absent on some majors by design are not skips worth reporting.
    if (!site.optional) note_skipped(trace, name, site.skip_reason);
    return false;
  }
  std::vector<UprobeLink> made;
  for (const auto& a : site.points) {
    bpf_program* prog = program_for_point(session_.v8()->progs, site.purpose, a, program_for(site.purpose));
    auto link = attach_uprobe(prog, pid, a.host_path, "", a.file_offset, a.retprobe);
    if (!link) {
      note_skipped(trace, name, fmt::format("pid {}: {}", pid, link.error().describe()));
      return false;
    }
    made.push_back(std::move(*link));
  }
  for (auto& l : made) st.links.push_back(std::move(l));
  note_attached(trace, name);
  return true;
}

bool V8Extension::attach_usdt(model::Trace& trace, model::Process& p, const node::ProbePlan& plan,
                              PerProcess& st) {
  auto* progs = &session_.v8()->progs;
  // The return side first, as with the uprobes: a start without its end would wait forever.
  std::pair<const char*, bpf_program*> order[] = {{"gc__done", progs->ml_v8_usdt_gc_done},
                                                  {"gc__start", progs->ml_v8_usdt_gc_start}};
  std::vector<UprobeLink> made;
  for (auto [probe, prog] : order) {
    std::string name = fmt::format("v8:usdt:node:{}", probe);
    bpf_link* l = bpf_program__attach_usdt(prog, p.pid(), plan.host_path.c_str(), "node", probe, nullptr);
    if (!l) {
      note_skipped(trace, name,
                   fmt::format("pid {}: {}", p.pid(),
                               make_error("bpf_program__attach_usdt failed", errno).describe()));
      return false;
    }
    made.emplace_back(l);
    note_attached(trace, name);
  }
  for (auto& l : made) st.links.push_back(std::move(l));
  return true;
}

void V8Extension::attach(model::Trace& trace, model::Process& p, PerProcess& st) {
  auto plan = node::plan_for_pid(p.pid());
  if (!plan) return;  // no executable to read (exited, kernel thread): nothing to say
  bool any_found =
      std::any_of(plan->probes.begin(), plan->probes.end(), [](const auto& s) { return s.found(); });
  bool usdt = plan->find_usdt("node", "gc__start") && plan->find_usdt("node", "gc__done");
  if (!any_found && !usdt && !plan->is_shared_library) return;  // not node
  st.found_v8 = st.ever_found_v8 = true;
  st.rechecks_left = 0;
  st.unmapped_holder.reset();
  if (plan->found_before_mapping) {
    struct stat sb {};
    if (stat(plan->host_path.c_str(), &sb) == 0)
      st.unmapped_holder = std::pair<uint64_t, uint64_t>(sb.st_dev, sb.st_ino);
  }
  p.v8.holder_path = plan->path_in_process.empty() ? plan->host_path : plan->path_in_process;

  // The counters entry first: it is what lets the probes count for this process.
  uint32_t key = static_cast<uint32_t>(p.pid());
  ml_v8_counters zero = initial_v8_counters(*plan);
  if (bpf_map_update_elem(counters_fd(), &key, &zero, BPF_ANY) != 0) {
    note_skipped(
        trace, "v8",
        fmt::format("pid {}: {}", p.pid(), make_error("cannot add to ml_v8_counters", errno).describe()));
    return;
  }
  st.counters = true;
  st.last = {};

  auto site = [&](ProbePurpose purpose) { return plan->find(purpose); };
  bool gc = false;
  if (site(ProbePurpose::gc_end) && site(ProbePurpose::gc_start) && site(ProbePurpose::gc_end)->found() &&
      site(ProbePurpose::gc_start)->found()) {
    gc = attach_site(trace, p.pid(), *site(ProbePurpose::gc_end), st) &&
         attach_site(trace, p.pid(), *site(ProbePurpose::gc_start), st);
    if (gc) {
      p.v8.probe_source = "uprobes";
      // Where the GC end probe reads the heap figures, they need no probe of their own (`doctor` says which).
      if (!heap_figures_at_gc_end(*plan))
        for (auto purpose : {ProbePurpose::heap_used_before, ProbePurpose::heap_used_after})
          if (site(purpose)) attach_site(trace, p.pid(), *site(purpose), st);
      if (usdt)
        p.notes.push_back(
            "V8 GC: USDT node:gc__start/gc__done present but not used: the uprobes on "
            "PerformGarbageCollection see the same GCs and V8's heap figures");
    }
  } else if (!usdt) {
    // One side of the pair alone is useless (a start never ends, an end never matches): report why.
    for (auto purpose : {ProbePurpose::gc_start, ProbePurpose::gc_end, ProbePurpose::heap_used_before,
                         ProbePurpose::heap_used_after})
      if (const auto* s = site(purpose); s && !s->found())
        note_skipped(trace, fmt::format("v8:{}", node::to_string(purpose)), s->skip_reason);
  }
  if (!gc && usdt) {
    gc = attach_usdt(trace, p, *plan, st);
    if (gc) p.v8.probe_source = "usdt";
  }
  p.v8.probed = p.v8.probed || gc;

  attach_array_buffers(trace, p, *plan, st);
  if (p.attached_late && gc)
    p.notes.push_back("attached to a running process: GCs before attach are not in the GC history");
}

void V8Extension::attach_array_buffers(model::Trace& trace, model::Process& p, const node::ProbePlan& plan,
                                       PerProcess& st) {
  auto site = [&](ProbePurpose purpose) { return plan.find(purpose); };
  st.counter_offset = plan.ab_counter_offset;
  st.window_points.clear();
  st.counting = false;
  bool allocs_found = true;
  for (auto purpose : {ProbePurpose::array_buffer_alloc, ProbePurpose::array_buffer_alloc_uninit}) {
    const auto* s = site(purpose);
    if (!s || !s->found()) {
      allocs_found = false;
      if (s) note_skipped(trace, fmt::format("v8:{}", node::to_string(purpose)), s->skip_reason);
      continue;
    }
    st.window_points.insert(st.window_points.end(), s->points.begin(), s->points.end());
  }
  if (!allocs_found) st.window_points.clear();

  if (alloc_probes_) {
    bool ab = true;
    for (auto purpose : {ProbePurpose::array_buffer_alloc, ProbePurpose::array_buffer_alloc_uninit,
                         ProbePurpose::array_buffer_free, ProbePurpose::array_buffer_realloc}) {
      const auto* s = site(purpose);
      if (!s) continue;
      bool ok = attach_site(trace, p.pid(), *s, st);
      if (!ok && !s->optional) ab = false;
    }
    // Totals need every allocation and every free: without one of them they would drift.
    if (ab) {
      st.counting = true;
      p.v8.array_buffers_counting = true;
      if (!p.v8.array_buffers_probed) {
        p.v8.array_buffers_probed = true;
        p.v8.array_buffers_source = "allocation_probes";
      }
      if (p.attached_late && !p.v8.array_buffers_baseline_unknown) {
        p.v8.array_buffers_baseline_unknown = true;
        p.notes.push_back(
            "attached to a running process: ArrayBuffer allocations and frees before attach are not in "
            "the allocated/freed totals (live bytes are the allocator's own figure)");
      }
    } else {
      p.notes.push_back(
          "ArrayBuffer allocations not counted: an allocator probe is missing (see probes.skipped)");
    }
    // External-memory adjustments fire once per backing store too: only with the allocation probes.
    for (auto purpose : {ProbePurpose::external_memory_adjust, ProbePurpose::external_memory_increase,
                         ProbePurpose::external_memory_decrease, ProbePurpose::external_memory_update})
      if (const auto* s = site(purpose); s && attach_site(trace, p.pid(), *s, st))
        p.v8.external_probed = true;
  }

  if (!st.counter_offset) {
    note_skipped(trace, "v8:array_buffer_counter", plan.ab_counter_skip_reason);
    if (!st.counting)
      p.notes.push_back("ArrayBuffer live bytes not collected: " + plan.ab_counter_skip_reason +
                        " (--v8-alloc-probes counts every allocation instead)");
  }
  // The first window finds the allocator objects (and samples start-up stacks); it stays open until an
  // allocation shows where they are.
  if (st.window_points.empty()) {
    if (!st.counting)
      p.notes.push_back("ArrayBuffer figures not collected: NodeArrayBufferAllocator::Allocate not found");
    return;
  }
  if (windows_useful(st)) open_window(trace, p, st, boot_ns());
}

}  // namespace memlens::collect
