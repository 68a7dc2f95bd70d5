// The V8 capability: per tracked node process, uprobes (or USDT) at the points src/node/probe_plan finds,
// GC events from the ring buffer (with the stack that triggered each GC), live ArrayBuffer bytes read from
// Node's allocator objects in the process's memory at each sample, ArrayBuffer allocation stacks sampled in
// short windows. With --v8-alloc-probes, every allocation and free is probed and counted instead.
// This file plans and attaches the probes and drives the per-process state; what a GC event means for the
// model is in collect/trace_builder, the windows' timing in collect/v8_ab_window, the reads of the
// process's maps and memory in collect/v8_process_reads.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <time.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <set>

#include "collect/extensions.h"
#include "collect/trace_builder.h"
#include "collect/v8_ab_window.h"
#include "collect/v8_doctor.h"
#include "collect/v8_process_reads.h"
#include "common/clock.h"
#include "common/safe_file.h"
#include "memlens.skel.h"
#include "node/heap_limit.h"
#include "node/probe_plan.h"
#include "proc/procfs.h"

namespace memlens::collect {

namespace {

using node::ProbePurpose;

// After exec, a libnode.so may not be mapped yet when the exec event is handled: look again at the next
// few samples.
constexpr int kLibnodeRechecks = 3;

class V8Extension : public TraceExtension {
 public:
  V8Extension(BpfSession& session, bool alloc_probes)
      : session_(session),
        alloc_probes_(alloc_probes),
        // The BPF programs capture stacks only when the session was loaded with them (rodata).
        stacks_(session.skeleton()->rodata->capture_stacks) {}
  ~V8Extension() override {
    for (auto& [pid, st] : procs_) {
      retire(st.links);
      retire(st.window_links);
      forget_counters(pid);
      forget_window_maps(pid);
    }
  }

  std::string name() const override { return "v8"; }

  // After exec the process runs another program: the old image's heap, GCs and allocator are gone with it,
  // and figures left in place would be read as the new program's. Which probes are attached is kept: a
  // late-handled exec event finds the new image probed already (below). The timeline keeps what was
  // sampled while the old image ran.
  static void forget_previous_figures(model::Process& p) {
    auto& v8 = p.v8;
    if (!v8.gcs.empty() || v8.array_buffer_live_bytes > 0)
      p.notes.push_back(
          fmt::format("V8 figures before an exec ({} GCs) belonged to the previous program and "
                      "were dropped; the timeline keeps its samples",
                      v8.gcs.size()));
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

  void on_track(model::Trace& trace, model::Process& p, bool after_exec) override {
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

  // A libnode.so is mapped by the dynamic loader after the exec event: attach as soon as it is there,
  // before node's start-up collects its first garbage, rather than at the next sample.
  void on_image_loaded(model::Trace& trace, model::Process& p) override {
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

  void on_untrack(model::Process& p) override {
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

  bool handles(const Event& e) const override {
    return std::holds_alternative<GcEvent>(e) || std::holds_alternative<ArrayBufferNotice>(e);
  }

  bool on_event(model::Trace& trace, model::Process& p, const Event& e) override {
    if (const auto* n = std::get_if<ArrayBufferNotice>(&e))
      on_notice(p, *n);
    else
      apply_gc_event(trace, p, std::get<GcEvent>(e));
    return true;
  }

  void on_sample(model::Process& p, model::Sample& s) override {
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

  void on_finish(model::Trace& trace) override {
    trace_ = &trace;
    for (auto* p : trace.processes.live()) {
      auto it = procs_.find(p->pid());
      if (it != procs_.end()) read_array_buffers(*p, it->second);
    }
    update_losses();
  }

 private:
  struct PerProcess {
    std::vector<UprobeLink> links;
    bool counters = false;       // an ml_v8_counters entry exists for the pid
    bool found_v8 = false;       // in the current image
    bool ever_found_v8 = false;  // in any image the process ran
    std::string identity;        // image_identity() when planned
    int rechecks_left = 0;
    ml_v8_counters last{};

    // ArrayBuffers.
    bool counting = false;                         // --v8-alloc-probes attached for this image
    std::optional<uint32_t> counter_offset;        // of total_mem_usage_ in the allocator object
    std::vector<node::AttachPoint> window_points;  // Allocate, AllocateUninitialized entries
    std::vector<V8Allocator> allocators;
    std::vector<UprobeLink> window_links;
    // (device, inode) of a libnode.so planned before the loader mapped it, until its mapping confirms it.
    std::optional<std::pair<uint64_t, uint64_t>> unmapped_holder;
    AbWindow window;
  };

  // V8's heap limit, where the process's flags set it (node/heap_limit.h), for the js_heap verdict's
  // projection.
  static void read_heap_limit(model::Process& p) {
    auto args = proc::read_cmdline(p.pid());
    if (!args) return;
    std::string options;
    if (auto env = read_text_file(fmt::format("/proc/{}/environ", p.pid()), 1 << 20))
      options = proc::environ_value(*env, "NODE_OPTIONS");
    p.v8.heap_size_limit_bytes = node::heap_limit_from_flags(*args, options);
  }

  // Hands links to the session's reaper: a detach waits for grace periods, the drain loop must not.
  void retire(std::vector<UprobeLink>& links) {
    session_.retire(std::move(links));
    links.clear();
  }

  int counters_fd() { return bpf_map__fd(session_.skeleton()->maps.ml_v8_counters); }
  int windows_fd() { return bpf_map__fd(session_.skeleton()->maps.ml_v8_ab_windows); }
  int allocators_fd() { return bpf_map__fd(session_.skeleton()->maps.ml_v8_allocators); }
  int ab_stacks_fd() { return bpf_map__fd(session_.skeleton()->maps.ml_v8_ab_stacks); }

  // Keys of a per-process map (the pid is the key's first member) that belong to pid.
  template <typename Key>
  std::vector<Key> keys_of(int fd, pid_t pid) {
    std::vector<Key> out;
    Key key{}, next{};
    const Key* prev = nullptr;
    while (bpf_map_get_next_key(fd, prev, &next) == 0) {
      if (next.pid == static_cast<uint32_t>(pid)) out.push_back(next);
      key = next;
      prev = &key;
    }
    return out;
  }

  void forget_window_maps(pid_t pid) {
    uint32_t key = static_cast<uint32_t>(pid);
    bpf_map_delete_elem(windows_fd(), &key);
    for (const auto& k : keys_of<ml_v8_allocator_key>(allocators_fd(), pid))
      bpf_map_delete_elem(allocators_fd(), &k);
  }

  // Moves the kernel's per-stack allocation sums of p into its array_buffers stacks.
  void take_stacks(model::Process& p) {
    for (const auto& k : keys_of<ml_v8_stack_key>(ab_stacks_fd(), p.pid())) {
      ml_v8_stack_weights w{};
      if (bpf_map_lookup_elem(ab_stacks_fd(), &k, &w) == 0 && w.count > 0) {
        auto& out = p.stacks["array_buffers"][k.stack_id];
        out.bytes += static_cast<int64_t>(w.bytes);
        out.count += static_cast<int64_t>(w.count);
      }
      bpf_map_delete_elem(ab_stacks_fd(), &k);
    }
  }

  void collect_allocators(pid_t pid, PerProcess& st) {
    for (const auto& k : keys_of<ml_v8_allocator_key>(allocators_fd(), pid)) {
      add_allocator(pid, st.allocators, k.addr);
      bpf_map_delete_elem(allocators_fd(), &k);
    }
  }

  void open_window(model::Trace& trace, model::Process& p, PerProcess& st, uint64_t now) {
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
      auto link = attach_uprobe(session_.skeleton()->progs.ml_v8_ab_window, p.pid(), a.host_path, "",
                                a.file_offset, false);
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

  void close_window(model::Process& p, PerProcess& st, uint64_t now) {
    if (!st.window.is_open()) return;
    // Detached off the drain loop; until then the program finds no window in the map and returns.
    retire(st.window_links);
    uint32_t key = static_cast<uint32_t>(p.pid());
    bpf_map_delete_elem(windows_fd(), &key);
    st.window.closed(now);
    collect_allocators(p.pid(), st);
    take_stacks(p);
  }

  // Windows find the allocators whose counter is read, or sample stacks (unless every allocation is probed).
  bool windows_useful(const PerProcess& st) const {
    return !st.window_points.empty() && (st.counter_offset || (stacks_ && !st.counting));
  }

  // At each sample: closes a window whose time is over (the kernel reports it only at the next allocation),
  // or opens the next one when it is due.
  void drive_window(model::Process& p, PerProcess& st, uint64_t now) {
    if (st.window.is_open()) {
      if (st.window.time_over(now, !st.allocators.empty())) close_window(p, st, now);
    } else if (trace_ && windows_useful(st) && st.window.due(now)) {
      open_window(*trace_, p, st, now);
    }
  }

  void on_notice(model::Process& p, const ArrayBufferNotice& n) {
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

  // Detaches the window, hands the recorded stacks to the model, forgets the allocators (exit, exec).
  void reset_array_buffers(model::Process& p, PerProcess& st) {
    retire(st.window_links);
    st.window.reset();
    take_stacks(p);
    forget_window_maps(p.pid());
    st.allocators.clear();
  }

  void read_array_buffers(model::Process& p, PerProcess& st) {
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

  void forget_counters(pid_t pid) {
    uint32_t key = static_cast<uint32_t>(pid);
    bpf_map_delete_elem(counters_fd(), &key);
  }

  void read_counters(model::Process& p, PerProcess& st) {
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
  }

  void update_losses() {
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

  void note_attached(model::Trace& trace, const std::string& name) {
    auto& a = trace.info.probes_attached;
    if (std::find(a.begin(), a.end(), name) == a.end()) a.push_back(name);
  }

  void note_skipped(model::Trace& trace, const std::string& name, const std::string& reason) {
    for (const auto& s : trace.info.probes_skipped)
      if (s.name == name && s.reason == reason) return;
    trace.info.probes_skipped.push_back({name, reason});
  }

  bpf_program* program_for(ProbePurpose purpose) {
    auto* progs = &session_.skeleton()->progs;
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
    }
    return nullptr;
  }

  // Attaches every point of one planned probe; true when all attached. On failure the links already made
  // for it are dropped, so a probe is either complete or absent.
  bool attach_site(model::Trace& trace, pid_t pid, const node::ProbeSite& site, PerProcess& st) {
    std::string name = fmt::format("v8:{}", node::to_string(site.purpose));
    if (!site.found()) {
      // Probes absent on some majors by design are not skips worth reporting.
      if (!site.optional) note_skipped(trace, name, site.skip_reason);
      return false;
    }
    std::vector<UprobeLink> made;
    for (const auto& a : site.points) {
      auto link = attach_uprobe(program_for(site.purpose), pid, a.host_path, "", a.file_offset, a.retprobe);
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

  bool attach_usdt(model::Trace& trace, model::Process& p, const node::ProbePlan& plan, PerProcess& st) {
    auto* progs = &session_.skeleton()->progs;
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

  void attach(model::Trace& trace, model::Process& p, PerProcess& st) {
    auto plan = node::plan_for_pid(p.pid());
    if (!plan) return;  // no executable to read (exited, kernel thread): nothing to say
    bool any_found =
        std::any_of(plan->probes.begin(), plan->probes.end(), [](const auto& s) { return s.found(); });
    bool usdt = plan->find_usdt("node", "gc__start") && plan->find_usdt("node", "gc__done");
    if (!any_found && !usdt && plan->node_version.empty() && !plan->is_shared_library) return;  // not node
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
    ml_v8_counters zero{};
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

  void attach_array_buffers(model::Trace& trace, model::Process& p, const node::ProbePlan& plan,
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

  BpfSession& session_;
  bool alloc_probes_ = false;
  bool stacks_ = false;
  model::Trace* trace_ = nullptr;
  std::map<pid_t, PerProcess> procs_;
  std::set<model::ProcessKey> noted_;
  uint64_t kernel_unmatched_exited_ = 0, kernel_pending_full_exited_ = 0;
};

}  // namespace

std::unique_ptr<TraceExtension> make_v8_extension(BpfSession& session, bool alloc_probes) {
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
