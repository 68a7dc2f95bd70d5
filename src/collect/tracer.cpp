#include "collect/tracer.h"

#include <bpf/libbpf.h>
#include <fmt/format.h>
#include <sys/wait.h>
#include <time.h>

#include <algorithm>
#include <cstring>

#include "collect/hold.h"
#include "collect/trace_builder.h"
#include "common/clock.h"
#include "memlens.skel.h"
#include "proc/procfs.h"

namespace memlens::collect {

namespace {

int ring_callback(void* ctx, void* data, size_t size) {
  return static_cast<Tracer*>(ctx)->handle_event(data, size);
}

// Whether the image pid runs is statically linked: neither a dynamic loader nor a C library is mapped. At
// the exec event (the process held before its first instruction) a dynamic image has its loader mapped.
bool statically_linked(pid_t pid) {
  auto maps = proc::read_maps(pid);
  if (!maps || maps->empty()) return false;  // cannot tell
  for (const auto& m : *maps) {
    if (!m.is_file()) continue;
    auto slash = m.path.rfind('/');
    std::string base = slash == std::string::npos ? m.path : m.path.substr(slash + 1);
    if (base.rfind("ld-", 0) == 0 || base.rfind("libc.", 0) == 0 || base.rfind("libc-", 0) == 0) return false;
  }
  return true;
}

}  // namespace

Result<std::unique_ptr<Tracer>> Tracer::create(const TracerOptions& opts, model::Trace& trace) {
  std::unique_ptr<Tracer> t(new Tracer(opts, trace));
  SessionOptions so;
  so.capture_stacks = opts.capture_stacks;
  so.fault_sample_period = opts.fault_sample_period;
  so.growth_stack_bytes = opts.growth_stack_bytes;
  so.unwind_table_bytes = opts.unwind_table_bytes;
  so.max_processes = opts.max_processes;
  so.hold = opts.hold;
  so.fds = opts.fds;
  so.v8 = opts.v8;
  auto session = BpfSession::open_and_load(so);
  if (!session) return session.error();
  t->session_ = std::move(*session);
  trace.info.holding = t->session_->holds_exec();
  trace.info.holding_fork = t->session_->holds_fork();
  auto statuses = t->session_->attach_kernel_probes();
  if (!statuses) return statuses.error();
  for (auto& s : *statuses) {
    if (s.attached)
      trace.info.probes_attached.push_back(s.name);
    else
      trace.info.probes_skipped.push_back({s.name, s.reason});
  }
  t->ring_ = ring_buffer__new(t->session_->ringbuf_fd(), ring_callback, t.get(), nullptr);
  if (!t->ring_) return errno_error("cannot set up the ring buffer consumer");
  trace.info.started_boot_ns = t->now_boot_ns();
  trace.info.interval_s = opts.interval_s;
  t->next_sample_ns_ = trace.info.started_boot_ns + static_cast<uint64_t>(opts.interval_s * 1e9);
  return t;
}

Tracer::~Tracer() {
  extensions_.clear();  // they retire their probes to the session
  if (session_) {       // null when create() failed before loading the programs
    for (auto& [pid, probes] : probes_) session_->retire(probes.take_links());
    session_->drain_retired();  // every probe detached before memlens goes on (or exits)
  }
  probes_.clear();
  if (ring_) ring_buffer__free(ring_);
}

uint64_t Tracer::now_boot_ns() const {
  return boot_ns();
}

void Tracer::sample_faults(model::Process& p, bool all_threads) {
  if (!session_->samples_faults()) return;  // said once, in the probe statuses
  if (auto s = session_->sample_faults(p.pid(), all_threads); !s)
    p.notes.push_back("page faults not sampled (no user/kernel split, no fault stacks): " +
                      s.error().describe());
}

void Tracer::refresh_identity(model::Process& p) {
  read_identity(p);
  answered(identity_of(p, false));
}

void Tracer::read_identity(model::Process& p) {
  if (auto st = proc::read_stat(p.pid())) p.comm = st->comm;
  if (auto exe = proc::read_exe(p.pid())) p.exe = *exe;
  if (auto args = proc::read_cmdline(p.pid())) p.cmdline = std::move(*args);
}

void Tracer::seed_address_space(model::Process& p) {
  auto maps = proc::read_maps(p.pid());
  if (!maps) return;
  uint64_t now = now_boot_ns();
  p.address_space.seed(*maps, now);
  unmap_looks_[p.pid()] = UnmapLook{p.events.total(), 0};  // the next sample looks again
  if (on_host_answer_) answered(AddressSpaceSeed{p.pid(), p.start_time_ns, now, std::move(*maps)});
}

void Tracer::attach_probes(model::Process& p) {
  attach_libc_probes(p);
  for (auto& ext : extensions_) ext->on_track(trace_, p, false);
}

void Tracer::retire_probes(pid_t pid) {
  auto it = probes_.find(pid);
  if (it == probes_.end()) return;
  session_->retire(it->second.take_links());
  probes_.erase(it);
}

void Tracer::untraced_from_now(model::Process& p, const std::string& what, const std::string& reason) {
  if (process_gone(p.pid(), p.key().start_time_ticks)) return;  // nothing runs untraced
  p.untraced.begin(what, now_s(), reason);
}

void Tracer::attach_libc_probes(model::Process& p) {
  retire_probes(p.pid());
  auto libc = find_libc(p.pid());
  if (!libc) {
    untraced_from_now(p, kAddressSpace, "address-space calls not traced: " + libc.error().describe());
    return;
  }
  auto probes = attach_process_probes(*session_, p.pid(), *libc, opts_.unmap_probes);
  if (!probes) {
    untraced_from_now(p, kAddressSpace, probes.error().describe());
    return;
  }
  p.untraced.end(kAddressSpace, now_s());
  for (const auto& s : probes->statuses()) {
    if (s.attached) {
      if (std::find(trace_.info.probes_attached.begin(), trace_.info.probes_attached.end(), s.name) ==
          trace_.info.probes_attached.end())
        trace_.info.probes_attached.push_back(s.name);
    } else {
      trace_.info.probes_skipped.push_back({s.name, fmt::format("pid {}: {}", p.pid(), s.reason)});
    }
  }
  probes_.emplace(p.pid(), std::move(*probes));
}

Status Tracer::track_root(pid_t pid, bool attached_late) {
  auto start = proc::read_start_time_ns(pid);
  if (!start) return make_error(fmt::format("no process with pid {}", pid), ESRCH);
  auto st = proc::read_stat(pid);
  pid_t ppid = st ? st->ppid : 0;
  // The kernel needs the real start_boottime in ns; /proc gives ticks. The key uses ticks either way.
  if (auto s = session_->track(pid, *start); !s) return s;
  root_pid_ = pid;
  auto* p = start_tracking({now_boot_ns(), pid, ppid, *start, attached_late, !attached_late});
  sample_faults(*p, attached_late);
  attach_probes(*p);
  seed_address_space(*p);
  if (!proc::process_exists(pid))
    return make_error(fmt::format("process {} exited while memlens attached", pid), ESRCH);
  if (attached_late) {
    // Descendants that already exist are followed too (cluster workers, child processes).
    std::vector<pid_t> queue = proc::list_children(pid);
    while (!queue.empty()) {
      pid_t c = queue.back();
      queue.pop_back();
      auto cs = proc::read_start_time_ns(c);
      if (!cs || !session_->track(c, *cs)) continue;
      auto* cp = start_tracking({now_boot_ns(), c, pid, *cs, true, false});
      sample_faults(*cp, true);
      attach_probes(*cp);
      seed_address_space(*cp);
      for (pid_t g : proc::list_children(c)) queue.push_back(g);
    }
  }
  update_from_kernel(*p);
  return {};
}

model::Process* Tracer::start_tracking(const TrackStart& t) {
  if (on_track_start_) on_track_start_(t);
  return builder_.track(t);
}

int Tracer::handle_event(const void* data, size_t size) {
  ++trace_.info.events_received;
  auto decoded = decode_event(data, size);
  if (const auto* bad = std::get_if<Malformed>(&decoded))
    builder_.malformed(*bad);
  else {
    if (on_event_) on_event_(std::get<Event>(decoded));
    builder_.apply(std::get<Event>(decoded));
  }
  return 0;
}

void Tracer::read_new_process(model::Process& p) {
  // The threads first, the process after: a fault taken between the two reads then counts in the
  // process's baseline, not only in the threads' (whose exit figure it comes off). Read the other way round,
  // the exit count plus minor_before_tracking would fall short of the process's own count.
  for (pid_t tid : proc::list_threads(p.pid())) {
    if (auto ts = proc::read_thread_stat(p.pid(), tid)) {
      p.thread_minflt_at_start += ts->minflt;
      p.thread_majflt_at_start += ts->majflt;
    }
  }
  if (auto st = proc::read_stat(p.pid())) {
    p.minflt_at_start = st->minflt;
    p.majflt_at_start = st->majflt;
  }
  read_identity(p);
  answered(identity_of(p, true));
}

pid_t Tracer::parent_of(pid_t pid) {
  auto st = proc::read_stat(pid);
  return st ? st->ppid : 0;
}

void Tracer::exec_probes(model::Process& p, double t_s) {
  pid_t pid = p.pid();
  libc_check_pending_[pid] = t_s;
  if (statically_linked(pid)) {
    // No C library to probe: its address-space calls are not seen (RSS and faults still are).
    retire_probes(pid);
    libc_check_pending_.erase(pid);
    untraced_from_now(p, kAddressSpace,
                      "statically linked: no C library to probe, address-space calls not traced");
  } else if (!probes_.count(pid)) {
    // Its C library is mapped later by the dynamic loader: probed at the next sample, untraced until.
    untraced_from_now(p, kAddressSpace, "no C library probed at its exec: probes attached late");
  }
  for (auto& ext : extensions_) ext->on_track(trace_, p, true);
}

void Tracer::image_loaded(model::Process& p) {
  for (auto& ext : extensions_) ext->on_image_loaded(trace_, p);
}

bool Tracer::capability_event(model::Process& p, const Event& e) {
  for (auto& ext : extensions_)
    if (ext->handles(e)) return ext->on_event(trace_, p, e);
  return false;  // no capability takes it
}

void Tracer::finish_hold(model::Process& p, const ProcEvent& e, double ran_since_s) {
  double now = now_s();
  if (e.flags & ML_PROC_HELD) {
    ++p.holds;
    p.held_s += std::max(0.0, now - trace_.seconds_since_start(e.ts_ns));
    if (session_->release(p.pid(), e.start_time_ns) == ReleaseOutcome::kFailed)
      p.notes.push_back(
          fmt::format("memlens could not release it after its probes were attached: {}", strerror(errno)));
    return;
  }
  // It ran its own code from ran_since_s until its probes were attached (now): untraced.
  std::string reason;
  if (e.flags & ML_PROC_HOLD_FAILED)
    reason = fmt::format("not held ({}): ran before its probes were attached", strerror(-e.hold_error));
  else if (!session_->holds_exec())
    reason = "not held (--no-hold): ran before its probes were attached";
  else
    reason =
        "not held (this kernel cannot stop a forked child from BPF): ran before its probes were attached";
  p.untraced.add(now - ran_since_s, reason);
}

void Tracer::update_from_kernel(model::Process& p) {
  auto s = session_->read_stats(p.pid());
  // RSS and faults of a live process are the kernel's own per-process figures, read from /proc at each
  // sample (no program runs on the host's page faults or RSS changes). Once it has exited, the exit
  // program's last reading of its mm and its threads' fault counters.
  auto st = p.alive() ? proc::read_status(p.pid()) : Result<proc::Status>(make_error("exited", ESRCH));
  if (st && st->vm_rss > 0) {
    p.vm_size_bytes = st->vm_size;
    p.rss.anon_bytes = st->rss_anon;
    p.rss.file_bytes = st->rss_file;
    p.rss.shmem_bytes = st->rss_shmem;
    p.rss.swap_bytes = st->vm_swap;
    // The kernel's high-water mark of the address space (since the process started, or its last exec).
    p.rss_peak_bytes = std::max<uint64_t>(p.rss_peak_bytes, st->vm_hwm);
    if (auto stat = proc::read_stat(p.pid())) {
      p.minflt = stat->minflt - std::min(stat->minflt, p.minflt_at_start);
      p.majflt = stat->majflt - std::min(stat->majflt, p.majflt_at_start);
      p.has_kernel_fault_counts = true;
    }
  } else if (s && s->rss_updates > 0) {
    p.rss.anon_bytes = s->rss_anon_bytes;
    p.rss.file_bytes = s->rss_file_bytes;
    p.rss.shmem_bytes = s->rss_shmem_bytes;
    p.rss.swap_bytes = s->rss_swap_bytes;
    p.rss_peak_bytes = std::max<uint64_t>(p.rss_peak_bytes, s->rss_peak_bytes);
  }
  p.rss_peak_bytes = std::max<uint64_t>(p.rss_peak_bytes, p.rss.total());
  if (!s) return;
  auto& lost = p.lost_by_source["kernel"];
  lost.ring_full = s->lost_ring_full;
  lost.map_full = s->lost_map_full;
  // The fault program counts samples: each stands for one period of faults.
  p.fault_sample_period = session_->fault_sample_period();
  p.faults_user = s->faults_user * p.fault_sample_period;
  p.faults_kernel = s->faults_kernel * p.fault_sample_period;
}

bool Tracer::munmap_probed(pid_t pid) const {
  auto it = probes_.find(pid);
  if (it == probes_.end()) return false;
  const auto& st = it->second.statuses();
  return std::any_of(st.begin(), st.end(),
                     [](const ProbeStatus& s) { return s.attached && s.name == "libc:munmap"; });
}

void Tracer::find_unmapped(model::Process& p) {
  // Without munmap's probe (not asked for, or it would not attach to this process).
  if (p.vm_size_bytes == 0 || munmap_probed(p.pid())) return;
  auto look = unmap_looks_.find(p.pid());
  if (look != unmap_looks_.end() && look->second.vm_size == p.vm_size_bytes &&
      look->second.events == p.events.total())
    return;  // an unmap shrinks the virtual size; a map is an event
  auto maps = proc::read_maps(p.pid());
  if (!maps || maps->empty()) return;  // gone, or a zombie: its model stays as it last was
  // Read after the maps: the same start time makes them this process's, not those of a later process that
  // reuses its pid (its exit event lost).
  auto start = proc::read_start_time_ns(p.pid());
  if (!start || model::start_time_ns_to_ticks(*start) != p.key().start_time_ticks) return;
  unmap_looks_[p.pid()] = UnmapLook{p.events.total(), p.vm_size_bytes};
  // An mmap whose event is not applied yet is not in the model: it cannot look unmapped. An mremap that
  // moved a mapping, or a brk, before this read and whose event comes after: the model handles both
  // (AddressSpace::unmapped_in, take_out).
  AddressSpaceUnmapped u{p.pid(), p.start_time_ns, now_boot_ns(), p.address_space.unmapped_in(*maps)};
  p.maps_at_sample = std::make_shared<const std::vector<proc::MapEntry>>(std::move(*maps));
  if (u.ranges.empty()) return;
  apply_unmapped(p, u);
  answered(u);
}

void Tracer::exited(model::Process& p, int wait_status, double t_s) {
  mark_exited(p, wait_status, t_s, true);
}

void Tracer::mark_exited(model::Process& p, int wait_status, double t_s, bool from_kernel_event) {
  if (!p.alive()) return;
  // Gone (or a zombie with its memory released): the kernel side's last figures are the ones it ran with.
  p.exited_at_s = t_s;
  update_from_kernel(p);
  model::Sample last;
  last.t_s = t_s;
  last.rss = p.rss;
  last.faults = p.minflt + p.majflt;
  last.events = p.events.total();
  for (auto& ext : extensions_) ext->on_sample(p, last);
  auto recorded = sample_of(p, last);
  recorded.at_exit = true;
  recorded.exit_event = from_kernel_event;
  recorded.wait_status = wait_status;
  answered(recorded);
  model::add_sample(p, last);
  p.exit_status = decode_wait_status(wait_status);
  p.exited_at_s = t_s;
  if (!from_kernel_event) p.notes.push_back(kExitWithoutEvent);
  for (auto& ext : extensions_) ext->on_untrack(p);
  p.untraced.end_all(t_s);
  retire_probes(p.pid());
  libc_check_pending_.erase(p.pid());
  unmap_looks_.erase(p.pid());
  session_->forget_stats(p.pid());
  session_->untrack(p.pid());
  if (p.pid() == root_pid_) root_exited_ = true;
}

void Tracer::set_root_wait_status(int status) {
  auto* p = trace_.processes.find_live(root_pid_);
  if (p) {
    // The exit event may still be in the ring buffer: drain it first, it carries the fault counts.
    ring_buffer__consume(ring_);
    p = trace_.processes.find_live(root_pid_);
  }
  if (p) mark_exited(*p, status, trace_.seconds_since_start(now_boot_ns()), false);
  for (auto& proc : trace_.processes.all())
    if (proc->pid() == root_pid_ && proc->exit_status) proc->exit_status = decode_wait_status(status);
  root_exited_ = true;
}

void Tracer::check_vanished() {
  // A process is reaped only after its exit event was submitted: drain first, so that the processes found
  // gone below are those whose exit event was lost (or never sent: not followed by the kernel).
  ring_buffer__consume(ring_);
  for (auto* p : trace_.processes.live()) {
    auto start = proc::read_start_time_ns(p->pid());
    bool same = start && model::start_time_ns_to_ticks(*start) == p->key().start_time_ticks;
    if (same) {
      // A zombie has released its memory already; its exit event tells the rest. One still live here after
      // the drain exited before the kernel side followed it (while memlens attached) or its event was lost:
      // /proc still has its wait status. (A leader that called pthread_exit is a zombie too while its other
      // threads run: num_threads tells them apart.)
      auto st = proc::read_stat(p->pid());
      if (st && st->state == 'Z' && st->num_threads <= 1)
        mark_exited(*p, st->exit_code, trace_.seconds_since_start(now_boot_ns()), false);
      continue;
    }
    // Its exit event was lost (counted by the kernel as ring_full), or it was never followed by the kernel.
    mark_exited(*p, 0, trace_.seconds_since_start(now_boot_ns()), false);
  }
}

void Tracer::sample() {
  double t_s = trace_.seconds_since_start(now_boot_ns());
  for (auto* p : trace_.processes.live()) {
    if (libc_check_pending_.count(p->pid())) {
      // After exec the new image maps its own C library; if it is another file than the one probed,
      // move the probes.
      auto libc = find_libc(p->pid());
      auto it = probes_.find(p->pid());
      if (libc && it != probes_.end() && !(it->second.libc() == *libc)) {
        // The probes sat on a C library the new image does not run: untraced since its exec.
        p->untraced.add(t_s - libc_check_pending_[p->pid()],
                        "its C library is another file than its parent's: probes moved after its exec");
        attach_libc_probes(*p);
      } else if (libc && it == probes_.end()) {
        attach_libc_probes(*p);
      }
      if (libc) libc_check_pending_.erase(p->pid());
    }
    update_from_kernel(*p);
    find_unmapped(*p);
    model::Sample s;
    s.t_s = t_s;
    s.rss = p->rss;
    s.faults = p->minflt + p->majflt;
    s.events = p->events.total();
    for (auto& ext : extensions_) ext->on_sample(*p, s);
    p->maps_at_sample.reset();
    answered(sample_of(*p, s));
    model::add_sample(*p, std::move(s));
  }
  check_vanished();
  collect_losses();
  if (on_sample_) on_sample_(trace_);
}

void Tracer::poll(int timeout_ms) {
  ring_buffer__poll(ring_, timeout_ms);
  // Events are submitted without a wake-up until enough are pending: consume what is there anyway.
  ring_buffer__consume(ring_);
  uint64_t now = now_boot_ns();
  if (now >= next_tick_ns_) {
    for (auto* p : trace_.processes.live())
      for (auto& ext : extensions_) ext->on_tick(*p);
    next_tick_ns_ = now + kTickNs;
  }
  if (now >= next_sample_ns_) {
    sample();
    uint64_t step = static_cast<uint64_t>(opts_.interval_s * 1e9);
    while (next_sample_ns_ <= now) next_sample_ns_ += step;
  }
}

void Tracer::collect_losses() {
  auto k = session_->read_losses();
  // Tracked-map-full and hold failures are not events lost: the processes concerned are counted as
  // untraced, each with its reason (handle_event).
  auto& kernel = trace_.info.loss_by_source["kernel"];
  kernel.ring_full = k[ML_LOSS_RINGBUF_FULL];
  kernel.map_full = k[ML_LOSS_PENDING_FULL];
  trace_.info.stacks_lost = k[ML_LOSS_STACK];
  auto& tracer = trace_.info.loss_by_source["tracer"];
  tracer.unknown_process = builder_.unknown_process_events();
  tracer.malformed = 0;
  for (const auto& [source, n] : builder_.malformed_by_source())
    trace_.info.loss_by_source[source].malformed = n;
}

void Tracer::finish() {
  ring_buffer__consume(ring_);
  // No new hold from here on; a process still held (its event not handled yet) goes on untraced.
  session_->release_all();
  ring_buffer__consume(ring_);
  for (auto* p : trace_.processes.live()) {
    update_from_kernel(*p);
    find_unmapped(*p);  // what it unmapped since the last sample leaves the live bytes of the report
    p->maps_at_sample.reset();
    if (auto st = proc::read_stat(p->pid())) {
      p->minflt = st->minflt - std::min(st->minflt, p->minflt_at_start);
      p->majflt = st->majflt - std::min(st->majflt, p->majflt_at_start);
      p->has_kernel_fault_counts = true;
    }
    model::Sample now;
    now.rss = p->rss;
    auto figures = sample_of(*p, now);
    figures.figures_only = true;
    answered(figures);
  }
  for (auto& ext : extensions_) ext->on_finish(trace_);
  collect_losses();
  trace_.info.duration_s = trace_.seconds_since_start(now_boot_ns());
  for (auto* p : trace_.processes.live()) {
    for (auto& ext : extensions_) ext->on_untrack(*p);
    p->untraced.end_all(trace_.info.duration_s);
  }
  for (const auto& p : trace_.processes.all()) {
    answered(end_state_of(*p, p->exited_at_s.value_or(trace_.info.duration_s)));
    answered(v8_end_state_of(*p));
    if (on_host_answer_) answered(capabilities_end_state_of(*p));  // a copy of its tables: only to record
  }
  std::vector<pid_t> pids;
  for (const auto& [pid, probes] : probes_) pids.push_back(pid);
  for (pid_t pid : pids) retire_probes(pid);
}

}  // namespace memlens::collect
