#include "collect/v8_gc_probes.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fmt/format.h>

#include <cerrno>

#include "collect/v8_heap_slots.h"
#include "memlens/abi.h"
#include "node/probe_plan.h"
#include "v8_gc.skel.h"

namespace memlens::collect {

using node::ProbePurpose;

Result<std::unique_ptr<V8GcProbes>> V8GcProbes::open_and_load() {
  std::unique_ptr<V8GcProbes> p(new V8GcProbes());
  p->skel_ = v8_gc_bpf__open();
  if (!p->skel_) return make_error("cannot open the V8 GC BPF object", errno);
  // No stacks: the stack tables are never written.
  bpf_map__set_max_entries(p->skel_->maps.ml_stacks, 1);
  bpf_map__set_max_entries(p->skel_->maps.ml_js_procs, 1);
  bpf_map__set_max_entries(p->skel_->maps.ml_js_frames, 1);
  bpf_map__set_max_entries(p->skel_->maps.ml_js_new, 1);
  bpf_map__set_max_entries(p->skel_->maps.ml_v8_gc_sampling, 1);
  prepare_uprobe_programs(p->skel_->obj);
  if (int err = v8_gc_bpf__load(p->skel_); err != 0)
    return make_error("cannot load the V8 GC BPF object", err < 0 ? -err : errno);
  p->ring_ = ring_buffer__new(bpf_map__fd(p->skel_->maps.ml_events), &V8GcProbes::on_event, p.get(), nullptr);
  if (!p->ring_) return make_error("cannot open the V8 GC ring buffer", errno);
  return p;
}

V8GcProbes::~V8GcProbes() {
  procs_.clear();  // links first, while the programs are loaded
  if (ring_) ring_buffer__free(ring_);
  if (skel_) v8_gc_bpf__destroy(skel_);
}

Result<std::string> V8GcProbes::attach(pid_t pid) {
  if (attached(pid)) return std::string("attached");
  auto plan = node::plan_for_pid(pid);
  if (!plan) return plan.error();
  uint32_t key = static_cast<uint32_t>(pid);
  ml_v8_counters zero = initial_v8_counters(*plan);
  if (bpf_map__update_elem(skel_->maps.ml_v8_counters, &key, sizeof(key), &zero, sizeof(zero), BPF_ANY) != 0)
    return make_error("cannot add to ml_v8_counters", errno);
  std::vector<UprobeLink> links;
  auto fail = [&](Error e) -> Result<std::string> {
    links.clear();
    bpf_map__delete_elem(skel_->maps.ml_v8_counters, &key, sizeof(key), 0);
    return e;
  };
  auto* progs = &skel_->progs;
  Attached at;
  at.counter_offset = plan->ab_counter_offset;
  at.vptr_file_offset = plan->ab_allocator_vptr_file_offset;
  at.holder_path = plan->path_in_process;
  if (!at.counter_offset)
    at.why_no_allocator = plan->ab_counter_skip_reason;
  else if (!at.vptr_file_offset)
    at.why_no_allocator = "NodeArrayBufferAllocator's vtable symbol not found in " + plan->host_path;
  const auto* start = plan->find(ProbePurpose::gc_start);
  const auto* end = plan->find(ProbePurpose::gc_end);
  if (start && end && start->found() && end->found()) {
    // The end first: a start without its end would wait forever.
    std::pair<const node::ProbeSite*, bpf_program*> sites[] = {
        {end, progs->ml_v8_gc_end},
        {start, progs->ml_v8_gc_start},
        {plan->find(ProbePurpose::heap_used_before), progs->ml_v8_heap_before},
        {plan->find(ProbePurpose::heap_used_after), progs->ml_v8_heap_after},
        {plan->find(ProbePurpose::heap_committed), progs->ml_v8_heap_total}};
    for (auto [site, prog] : sites) {
      if (!site || !site->found()) continue;  // heap figures absent: GC times still count
      bool heap_figure =
          site->purpose == ProbePurpose::heap_used_before || site->purpose == ProbePurpose::heap_used_after;
      if (heap_figure && heap_figures_at_gc_end(*plan)) continue;  // the end probe reads them
      for (const auto& a : site->points) {
        auto link = attach_uprobe(program_for_point(*progs, site->purpose, a, prog), pid, a.host_path, "",
                                  a.file_offset, a.retprobe);
        if (!link) return fail(link.error());
        links.push_back(std::move(*link));
      }
    }
    at.links = std::move(links);
    procs_[pid] = std::move(at);
    return std::string("uprobes");
  }
  if (plan->find_usdt("node", "gc__start") && plan->find_usdt("node", "gc__done")) {
    std::pair<const char*, bpf_program*> order[] = {{"gc__done", progs->ml_v8_usdt_gc_done},
                                                    {"gc__start", progs->ml_v8_usdt_gc_start}};
    for (auto [probe, prog] : order) {
      bpf_link* l = bpf_program__attach_usdt(prog, pid, plan->host_path.c_str(), "node", probe, nullptr);
      if (!l) return fail(make_error(fmt::format("cannot attach USDT node:{}", probe), errno));
      links.emplace_back(l);
    }
    at.links = std::move(links);
    procs_[pid] = std::move(at);
    return std::string("usdt");
  }
  return fail(make_error("V8's GC functions not found in " + plan->host_path + " (and no node:gc__* USDT)"));
}

void V8GcProbes::detach(pid_t pid) {
  auto it = procs_.find(pid);
  if (it == procs_.end()) return;
  procs_.erase(it);
  uint32_t key = static_cast<uint32_t>(pid);
  ml_v8_counters c{};
  if (bpf_map__lookup_elem(skel_->maps.ml_v8_counters, &key, sizeof(key), &c, sizeof(c), 0) == 0)
    unpaired_ += c.gc_end_unmatched + c.gc_pending_full;
  bpf_map__delete_elem(skel_->maps.ml_v8_counters, &key, sizeof(key), 0);
  bpf_map__delete_elem(skel_->maps.ml_v8_heap_committed, &key, sizeof(key), 0);
  pending_.erase(pid);
}

int V8GcProbes::on_event(void* ctx, void* data, size_t size) {
  auto* self = static_cast<V8GcProbes*>(ctx);
  if (size < sizeof(ml_v8_event)) return 0;
  const auto* e = static_cast<const ml_v8_event*>(data);
  if (e->h.type != ML_EV_V8_GC) return 0;
  GcSeen g;
  g.end_s = static_cast<double>(e->h.ts_ns) / 1e9;
  g.seconds = e->h.ts_ns > e->start_ns ? static_cast<double>(e->h.ts_ns - e->start_ns) / 1e9 : 0;
  g.full = (e->flags & ML_V8_GC_USDT) ? (e->kind & 4) != 0 : e->kind == 1;
  if (e->flags & ML_V8_GC_HEAP_AFTER) g.heap_used_after_bytes = e->heap_used_after_bytes;
  self->pending_[static_cast<pid_t>(e->h.pid)].push_back(g);
  return 0;
}

std::map<pid_t, std::vector<GcSeen>> V8GcProbes::take_gcs() {
  ring_buffer__consume(ring_);
  auto out = std::move(pending_);
  pending_.clear();
  return out;
}

uint64_t V8GcProbes::lost() const {
  uint64_t n = unpaired_;
  for (const auto& [pid, at] : procs_) {
    uint32_t key = static_cast<uint32_t>(pid);
    ml_v8_counters c{};
    if (bpf_map__lookup_elem(skel_->maps.ml_v8_counters, &key, sizeof(key), &c, sizeof(c), 0) == 0)
      n += c.gc_end_unmatched + c.gc_pending_full;
  }
  uint32_t i = ML_LOSS_RINGBUF_FULL;
  int cpus = libbpf_num_possible_cpus();
  std::vector<uint64_t> per_cpu(cpus > 0 ? cpus : 1);
  if (bpf_map__lookup_elem(skel_->maps.ml_loss, &i, sizeof(i), per_cpu.data(), per_cpu.size() * 8, 0) == 0)
    for (auto v : per_cpu) n += v;
  return n;
}

std::optional<uint64_t> V8GcProbes::heap_committed(pid_t pid) const {
  if (!attached(pid)) return std::nullopt;
  uint32_t key = static_cast<uint32_t>(pid);
  uint64_t bytes = 0;
  if (bpf_map__lookup_elem(skel_->maps.ml_v8_heap_committed, &key, sizeof(key), &bytes, sizeof(bytes), 0) !=
      0)
    return std::nullopt;
  return bytes;
}

std::optional<uint64_t> V8GcProbes::array_buffer_bytes(pid_t pid, double now_s, std::string* why_not) {
  auto it = procs_.find(pid);
  if (it == procs_.end()) return std::nullopt;
  auto& at = it->second;
  auto fail = [&](std::string why) -> std::optional<uint64_t> {
    if (why_not) *why_not = std::move(why);
    return std::nullopt;
  };
  if (!at.counter_offset || !at.vptr_file_offset) return fail(at.why_no_allocator);
  if (at.allocators.empty() && at.scans < kAllocatorScans &&
      (!at.last_scan_s || now_s - *at.last_scan_s >= kAllocatorRescanS)) {
    at.last_scan_s = now_s;
    ++at.scans;
    auto found = find_allocators(pid, at.holder_path, *at.vptr_file_offset);
    if (!found) return fail(at.why_no_allocator = found.error().describe());
    for (uint64_t addr : *found) add_allocator(pid, at.allocators, addr);
    if (at.allocators.empty())
      at.why_no_allocator =
          fmt::format("no NodeArrayBufferAllocator object in the process's [heap] ({} of {} scans)", at.scans,
                      kAllocatorScans);
  }
  if (at.allocators.empty()) return fail(at.why_no_allocator);
  auto bytes = read_allocator_counters(pid, at.allocators, *at.counter_offset);
  if (!bytes) return fail("the allocator object is no longer readable");
  return bytes;
}

}  // namespace memlens::collect
