// The V8 capability's ArrayBuffer sampling windows: attached for a moment on the allocator's Allocate
// functions (when: collect/v8_ab_window.h), to find the allocator objects whose counter each sample reads
// and to sample allocation stacks; the kernel's per-window maps read and cleared.
#include <fmt/format.h>

#include "collect/v8_extension.h"
#include "common/clock.h"
#include "proc/procfs.h"

namespace memlens::collect {

void V8Extension::forget_window_maps(pid_t pid) {
  uint32_t key = static_cast<uint32_t>(pid);
  bpf_map_delete_elem(windows_fd(), &key);
  for (const auto& k : keys_of<ml_v8_allocator_key>(allocators_fd(), pid))
    bpf_map_delete_elem(allocators_fd(), &k);
}

void V8Extension::take_stacks(model::Process& p) {
  for (const auto& k : keys_of<ml_v8_stack_key>(ab_stacks_fd(), p.pid())) {
    ml_v8_stack_weights w{};
    if (bpf_map_lookup_elem(ab_stacks_fd(), &k, &w) == 0 && w.count > 0) {
      auto& out = p.stacks[model::stack_kind::kArrayBuffers][k.stack_id];
      out.bytes += static_cast<int64_t>(w.bytes);
      out.count += static_cast<int64_t>(w.count);
    }
    bpf_map_delete_elem(ab_stacks_fd(), &k);
  }
}

void V8Extension::collect_allocators(pid_t pid, PerProcess& st) {
  for (const auto& k : keys_of<ml_v8_allocator_key>(allocators_fd(), pid)) {
    add_allocator(pid, st.allocators, k.addr);
    bpf_map_delete_elem(allocators_fd(), &k);
  }
}

void V8Extension::open_window(model::Trace& trace, model::Process& p, PerProcess& st, uint64_t now) {
  if (st.window.is_open() || st.window_points.empty()) return;
  // Stacks come from the windows unless every allocation is probed (then the probe records them all).
  bool stacks = stacks_ && !st.counting;
  uint32_t key = static_cast<uint32_t>(p.pid());
  ml_v8_ab_window w{now, AbWindow::length_ns(stacks),   AbWindow::kWindowAllocations,
                    0,   stacks ? ML_V8_AB_STACKS : 0u, 0};
  if (bpf_map_update_elem(windows_fd(), &key, &w, BPF_ANY) != 0) {
    note_skipped(
        trace, "v8:array_buffer_window",
        fmt::format("pid {}: {}", p.pid(), make_error("cannot add to ml_v8_ab_windows", errno).describe()));
    st.window.failed(now);
    return;
  }
  for (const auto& a : st.window_points) {
    auto link =
        attach_uprobe(session_.v8()->progs.ml_v8_ab_window, p.pid(), a.host_path, "", a.file_offset, false);
    if (!link) {
      // A process on its way out has no file to attach to any more: that is no probe failure.
      if (proc::process_running(p.pid()))
        note_skipped(trace, "v8:array_buffer_window",
                     fmt::format("pid {}: {}", p.pid(), link.error().describe()));
      retire(st.window_links);
      bpf_map_delete_elem(windows_fd(), &key);
      st.window.failed(now);
      return;
    }
    st.window_links.push_back(std::move(*link));
  }
  note_attached(trace, "v8:array_buffer_window");
  st.window.opened(now, stacks);
}

void V8Extension::close_window(model::Process& p, PerProcess& st, uint64_t now) {
  if (!st.window.is_open()) return;
  // Detached off the drain loop; until then the program finds no window in the map and returns.
  retire(st.window_links);
  uint32_t key = static_cast<uint32_t>(p.pid());
  bpf_map_delete_elem(windows_fd(), &key);
  st.window.closed(now);
  collect_allocators(p.pid(), st);
  take_stacks(p);
}

bool V8Extension::windows_useful(const PerProcess& st) const {
  return !st.window_points.empty() && (st.counter_offset || (stacks_ && !st.counting));
}

void V8Extension::drive_window(model::Process& p, PerProcess& st, uint64_t now) {
  if (st.window.is_open()) {
    if (st.window.time_over(now, !st.allocators.empty())) close_window(p, st, now);
  } else if (trace_ && windows_useful(st) && st.window.due(now)) {
    open_window(*trace_, p, st, now);
  }
}

void V8Extension::on_notice(model::Process& p, const ArrayBufferNotice& n) {
  auto it = procs_.find(p.pid());
  if (it == procs_.end()) return;
  auto& st = it->second;
  if (n.kind == ML_V8_AB_NOTICE_ALLOCATOR) {
    add_allocator(p.pid(), st.allocators, n.addr);
    // A window that only looks for allocators has done its job.
    if (st.window.is_open() && !st.window.samples_stacks()) close_window(p, st, boot_ns());
  } else if (n.kind == ML_V8_AB_NOTICE_WINDOW_OVER) {
    close_window(p, st, boot_ns());
  }
}

void V8Extension::reset_array_buffers(model::Process& p, PerProcess& st) {
  retire(st.window_links);
  st.window.reset();
  take_stacks(p);
  forget_window_maps(p.pid());
  st.allocators.clear();
}

}  // namespace memlens::collect
