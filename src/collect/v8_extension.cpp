// The V8 capability: per tracked node process, uprobes (or USDT) at the points src/node/probe_plan finds,
// GC events from the ring buffer, ArrayBuffer and external-memory counters read from a map at each sample.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <set>

#include "collect/extensions.h"
#include "collect/v8_doctor.h"
#include "memlens.skel.h"
#include "node/probe_plan.h"
#include "proc/procfs.h"

namespace memlens::collect {

namespace {

using node::ProbePurpose;

// After exec, a libnode.so may not be mapped yet when the exec event is handled: look again at the next
// few samples.
constexpr int kLibnodeRechecks = 3;

bool maps_libnode(pid_t pid) {
  auto maps = proc::read_maps(pid);
  if (!maps) return false;
  for (const auto& m : *maps) {
    auto slash = m.path.rfind('/');
    if (m.is_file() && m.path.compare(slash == std::string::npos ? 0 : slash + 1, 10, "libnode.so") == 0)
      return true;
  }
  return false;
}

// The executable and libnode.so files mapped into pid, by (device, inode): which image runs now.
std::string image_identity(pid_t pid) {
  auto maps = proc::read_maps(pid);
  auto exe = proc::read_exe(pid);
  if (!maps || !exe) return "";
  std::string out;
  for (const auto& m : *maps) {
    if (!m.is_file() || m.offset != 0) continue;
    auto slash = m.path.rfind('/');
    bool libnode = m.path.compare(slash == std::string::npos ? 0 : slash + 1, 10, "libnode.so") == 0;
    if (m.path == *exe || libnode) out += fmt::format("{}:{}:{};", m.dev_major, m.dev_minor, m.inode);
  }
  return out;
}

class V8Extension : public TraceExtension {
 public:
  explicit V8Extension(BpfSession& session) : session_(session) {}
  ~V8Extension() override {
    for (auto& [pid, st] : procs_) forget_counters(pid);
  }

  std::string name() const override { return "v8"; }

  void on_track(model::Trace& trace, model::Process& p, bool after_exec) override {
    trace_ = &trace;
    auto& st = procs_[p.pid()];
    std::string identity = image_identity(p.pid());
    // Exec events are handled after the fact, sometimes several at once (a shell script that execs node):
    // when the image probed is still the one running, or the process is gone already, keep what is there.
    if (after_exec && (identity.empty() || (st.found_v8 && identity == st.identity))) return;
    st.identity = identity;
    st.links.clear();  // after exec: the old image's probes are gone with it
    forget_counters(p.pid());
    st.counters = false;
    st.found_v8 = false;  // the new image is planned afresh (and re-planned while its libnode.so loads)
    st.rechecks_left = after_exec ? kLibnodeRechecks : 0;
    if (after_exec) {
      // The new image has its own allocator: what the old one held is gone.
      p.v8.array_buffer_live_bytes = 0;
      p.v8.array_buffer_allocated_total = p.v8.array_buffer_freed_total = 0;
      p.v8.array_buffer_allocations = p.v8.array_buffer_frees = 0;
      p.v8.external_adjustments_bytes = 0;
      p.v8.external_adjustments = 0;
    }
    attach(trace, p, st);
  }

  void on_untrack(model::Process& p) override {
    auto it = procs_.find(p.pid());
    if (it == procs_.end()) return;
    if (it->second.counters) read_counters(p, it->second);
    if (!it->second.ever_found_v8 && noted_.insert(p.key()).second)
      p.notes.push_back(
          "no V8 found in this process (not node, or its binary has no usable V8 symbols): "
          "no GC or ArrayBuffer figures");
    kernel_unmatched_exited_ += it->second.last.gc_end_unmatched;
    kernel_pending_full_exited_ += it->second.last.gc_pending_full;
    forget_counters(p.pid());
    procs_.erase(it);
    update_losses();
  }

  bool handles(uint32_t event_type) const override { return event_type == ML_EV_V8_GC; }

  void on_event(model::Trace& trace, model::Process& p, const void* data, size_t size) override {
    if (size < sizeof(ml_v8_event)) {
      ++malformed_;
      return;
    }
    ml_v8_event e;
    std::memcpy(&e, data, sizeof(e));
    model::GcEvent g;
    g.t_s = trace.seconds_since_start(e.start_ns);
    g.pause_ms = e.h.ts_ns >= e.start_ns ? static_cast<double>(e.h.ts_ns - e.start_ns) / 1e6 : 0;
    g.kind = (e.flags & ML_V8_GC_USDT) ? model::gc_kind_from_gc_type(e.kind)
                                       : model::gc_kind_from_collector(e.kind);
    if (e.flags & ML_V8_GC_HEAP_BEFORE) g.heap_used_before_bytes = e.heap_used_before_bytes;
    if (e.flags & ML_V8_GC_HEAP_AFTER) {
      g.heap_used_after_bytes = e.heap_used_after_bytes;
      p.v8.heap_used_bytes = e.heap_used_after_bytes;
    }
    p.v8.gcs.push_back(g);
  }

  void on_sample(model::Process& p, model::Sample& s) override {
    auto it = procs_.find(p.pid());
    if (it != procs_.end()) {
      auto& st = it->second;
      if (!st.found_v8 && st.rechecks_left > 0) {
        --st.rechecks_left;
        if (trace_ && maps_libnode(p.pid())) {
          st.identity = image_identity(p.pid());
          attach(*trace_, p, st);
        }
      }
      if (st.counters) read_counters(p, st);
    }
    if (p.v8.heap_used_bytes) s.js_heap_used_bytes = p.v8.heap_used_bytes;
    if (p.v8.array_buffers_probed) s.array_buffers_bytes = p.v8.array_buffer_live_bytes;
    update_losses();
  }

  void on_finish(model::Trace& trace) override {
    trace_ = &trace;
    for (auto* p : trace.processes.live()) {
      auto it = procs_.find(p->pid());
      if (it != procs_.end() && it->second.counters) read_counters(*p, it->second);
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
  };

  int counters_fd() { return bpf_map__fd(session_.skeleton()->maps.ml_v8_counters); }

  void forget_counters(pid_t pid) {
    uint32_t key = static_cast<uint32_t>(pid);
    bpf_map_delete_elem(counters_fd(), &key);
  }

  void read_counters(model::Process& p, PerProcess& st) {
    uint32_t key = static_cast<uint32_t>(p.pid());
    ml_v8_counters c{};
    if (bpf_map_lookup_elem(counters_fd(), &key, &c) != 0) return;
    st.last = c;
    auto& v8 = p.v8;
    v8.array_buffer_allocated_total = c.ab_allocated_bytes;
    v8.array_buffer_freed_total = c.ab_freed_bytes;
    v8.array_buffer_allocations = c.ab_allocations;
    v8.array_buffer_frees = c.ab_frees;
    // Attach mode: frees of backing stores allocated before attach can exceed what was seen allocated.
    v8.array_buffer_live_bytes =
        c.ab_allocated_bytes > c.ab_freed_bytes ? c.ab_allocated_bytes - c.ab_freed_bytes : 0;
    v8.array_buffer_peak_bytes =
        std::max({v8.array_buffer_peak_bytes, static_cast<uint64_t>(c.ab_peak_live_bytes),
                  v8.array_buffer_live_bytes});
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
    trace_->info.loss["kernel_v8_gc_end_unmatched"] = unmatched;
    trace_->info.loss["kernel_v8_gc_pending_full"] = full;
    trace_->info.loss["userspace_v8_malformed"] = malformed_;
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

    bool ab = true;
    for (auto purpose : {ProbePurpose::array_buffer_alloc, ProbePurpose::array_buffer_alloc_uninit,
                         ProbePurpose::array_buffer_free, ProbePurpose::array_buffer_realloc}) {
      const auto* s = site(purpose);
      if (!s) continue;
      bool ok = attach_site(trace, p.pid(), *s, st);
      if (!ok && !s->optional) ab = false;
    }
    // Live bytes need every allocation and every free: without one of them they would drift.
    if (ab) {
      p.v8.array_buffers_probed = true;
      if (p.attached_late && !p.v8.array_buffers_baseline_unknown) {
        p.v8.array_buffers_baseline_unknown = true;
        p.notes.push_back(
            "attached to a running process: ArrayBuffer backing stores allocated before attach are "
            "unknown; array_buffers figures count from attach (live bytes may read low)");
      }
    } else {
      p.notes.push_back(
          "ArrayBuffer figures not collected: an allocator probe is missing (see probes.skipped)");
    }
    for (auto purpose : {ProbePurpose::external_memory_adjust, ProbePurpose::external_memory_increase,
                         ProbePurpose::external_memory_decrease, ProbePurpose::external_memory_update})
      if (const auto* s = site(purpose); s && attach_site(trace, p.pid(), *s, st))
        p.v8.external_probed = true;
    if (p.attached_late && gc)
      p.notes.push_back("attached to a running process: GCs before attach are not in the GC history");
  }

  BpfSession& session_;
  model::Trace* trace_ = nullptr;
  std::map<pid_t, PerProcess> procs_;
  std::set<model::ProcessKey> noted_;
  uint64_t malformed_ = 0;
  uint64_t kernel_unmatched_exited_ = 0, kernel_pending_full_exited_ = 0;
};

}  // namespace

std::unique_ptr<TraceExtension> make_v8_extension(BpfSession& session) {
  return std::make_unique<V8Extension>(session);
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
