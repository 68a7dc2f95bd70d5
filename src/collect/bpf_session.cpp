#include "collect/bpf_session.h"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <fmt/format.h>
#include <linux/perf_event.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/clock.h"
#include "faults.skel.h"
#include "fds.skel.h"
#include "memlens.skel.h"
#include "proc/procfs.h"
#include "v8.skel.h"

namespace memlens::collect {

namespace {

constexpr const char* kVmlinuxBtf = "/sys/kernel/btf/vmlinux";
// New JS stacks announced between two looks (0.2 s apart): more than this is a burst that a walk of the
// whole table answers.
constexpr uint32_t kJsNewCapacity = 4096;

Error libbpf_error(const std::string& what, long err) {
  int e = err < 0 ? static_cast<int>(-err) : errno;
  return make_error(what, e);
}

}  // namespace

BpfSession::KernelFacts BpfSession::read_kernel_facts() {
  KernelFacts facts;
  btf* vmlinux = btf__load_vmlinux_btf();
  if (!vmlinux) return facts;
  facts.can_signal_task = btf__find_by_name_kind(vmlinux, "bpf_send_signal_task", BTF_KIND_FUNC) > 0;
  // typedef void (*btf_trace_mark_victim)(void*, struct task_struct*, uid_t): its second parameter.
  int id = btf__find_by_name_kind(vmlinux, "btf_trace_mark_victim", BTF_KIND_TYPEDEF);
  const btf_type* t = id > 0 ? btf__type_by_id(vmlinux, id) : nullptr;
  if (t) t = btf__type_by_id(vmlinux, t->type);  // the pointer
  if (t && btf_is_ptr(t)) t = btf__type_by_id(vmlinux, t->type);
  if (t && btf_is_func_proto(t) && btf_vlen(t) >= 2) {
    const btf_type* arg = btf__type_by_id(vmlinux, btf__resolve_type(vmlinux, btf_params(t)[1].type));
    facts.marks_oom_victim_task = arg && btf_is_ptr(arg);
  }
  btf__free(vmlinux);
  return facts;
}

Result<std::unique_ptr<BpfSession>> BpfSession::open_and_load(const SessionOptions& opts) {
  std::unique_ptr<BpfSession> s(new BpfSession());
  if (opts.hold) {
    // Before anything is loaded: the watchdog must hold no BPF link.
    auto w = HoldWatchdog::start();
    if (!w) return w.error();
    s->watchdog_ = std::move(*w);
  }
  // CO-RE relocations are made against the kernel's own BTF file, named explicitly. Left to itself,
  // libbpf also searches the BTF of kernel modules for a type vmlinux lacks (memlens's field-existence
  // checks ask for such types on purpose), and listing module BTF needs CAP_SYS_ADMIN: with the file
  // named, CAP_BPF + CAP_PERFMON suffice. memlens relocates only against core kernel types.
  LIBBPF_OPTS(bpf_object_open_opts, open_opts);
  if (access(kVmlinuxBtf, R_OK) == 0) open_opts.btf_custom_path = kVmlinuxBtf;
  s->skel_ = memlens_bpf__open_opts(&open_opts);
  if (!s->skel_) return libbpf_error("cannot open the BPF object", -errno);

  auto* skel = s->skel_;
  skel->rodata->capture_stacks = opts.capture_stacks;
  s->fault_sample_period_ = opts.fault_sample_period;
  bpf_map__set_max_entries(skel->maps.ml_tracked, opts.max_processes);
  bpf_map__set_max_entries(skel->maps.ml_proc_stats, opts.max_processes);
  bpf_map__set_max_entries(skel->maps.ml_held, opts.max_processes);
  KernelFacts kernel = read_kernel_facts();
  s->holds_ = opts.hold;
  s->holds_fork_ = opts.hold && kernel.can_signal_task;
  skel->rodata->hold_new_processes = opts.hold;
  skel->rodata->growth_stack_bytes = opts.growth_stack_bytes;
  skel->rodata->can_signal_task = s->holds_fork_;
  bpf_map__set_max_entries(skel->maps.ml_events, opts.ringbuf_bytes);
  // A stack table is memory the kernel pins for the whole run: keep it minimal when stacks are off.
  bpf_map__set_max_entries(skel->maps.ml_stacks, opts.capture_stacks ? opts.stack_entries : 1);
  bpf_map__set_max_entries(skel->maps.ml_js_procs, opts.capture_stacks ? opts.max_processes : 1);
  bpf_map__set_max_entries(skel->maps.ml_js_frames, opts.capture_stacks ? opts.stack_entries : 1);
  bpf_map__set_max_entries(skel->maps.ml_js_new,
                           opts.capture_stacks ? std::min<uint32_t>(opts.stack_entries, kJsNewCapacity) : 1);
  bool tables = opts.capture_stacks && opts.unwind_table_bytes > 0;
  uint64_t rows = tables ? opts.unwind_table_bytes / sizeof(ml_unwind_row) : 1;
  rows = std::clamp<uint64_t>(rows, 1, uint64_t{1} << 30);
  bpf_map__set_max_entries(skel->maps.ml_unwind_rows, static_cast<uint32_t>(rows));
  bpf_map__set_max_entries(skel->maps.ml_unwind_procs, opts.capture_stacks ? opts.max_processes : 1);
  bpf_map__set_max_entries(skel->maps.ml_unwind_files, tables ? ML_UNWIND_MAX_FILES : 1);

  s->marks_oom_victims_ = kernel.marks_oom_victim_task;
  bpf_program__set_autoload(skel->progs.ml_oom_victim, s->marks_oom_victims_);
  prepare_uprobe_programs(skel->obj);
  int err = memlens_bpf__load(skel);
  if (err) {
    return libbpf_error(
        "cannot load the BPF programs (the kernel verifier refused them, or BTF/CO-RE relocation failed; run "
        "`memlens doctor` for what this kernel lacks)",
        err);
  }
  if (tables) s->unwind_row_capacity_ = static_cast<uint32_t>(rows);
  if (opts.hold) {
    if (auto w = s->watchdog_.watch(bpf_map__fd(skel->maps.ml_held)); !w) return w.error();
  }
  if (opts.fds)
    if (auto st = s->load_capability(s->fds_skel_, fds_bpf__open_opts, fds_bpf__load, fds_bpf__destroy,
                                     "file-descriptor", opts.capture_stacks);
        !st)
      return st.error();
  if (opts.v8)
    if (auto st = s->load_capability(s->v8_skel_, v8_bpf__open_opts, v8_bpf__load, v8_bpf__destroy, "V8",
                                     opts.capture_stacks);
        !st)
      return st.error();
  if (opts.fault_sample_period > 0) {
    if (auto f = s->load_faults(opts); !f) s->faults_unavailable_ = f.error().describe();
  } else {
    s->faults_unavailable_ = "fault sampling off";
  }
  return s;
}

Status BpfSession::share_core_maps(bpf_object* obj, const char* what) {
  // Every map of the same name is the core's (those of common.bpf.h and tracked.bpf.h): one tracked-pid
  // map, one ring buffer, one stack table.
  bpf_map* m = nullptr;
  bpf_object__for_each_map(m, obj) {
    if (bpf_map__is_internal(m)) continue;  // each object's own .rodata and .bss
    bpf_map* core = bpf_object__find_map_by_name(skel_->obj, bpf_map__name(m));
    if (!core) continue;
    if (int err = bpf_map__reuse_fd(m, bpf_map__fd(core)))
      return libbpf_error(fmt::format("cannot share the map {} with the {} object", bpf_map__name(m), what),
                          err);
  }
  return {};
}

// The capability objects: opened, given the core's maps and the options the core has, loaded.
template <typename Skel>
Status BpfSession::load_capability(Skel*& out, Skel* (*open)(const bpf_object_open_opts*), int (*load)(Skel*),
                                   void (*destroy)(Skel*), const char* what, bool capture_stacks) {
  LIBBPF_OPTS(bpf_object_open_opts, open_opts);
  if (access(kVmlinuxBtf, R_OK) == 0) open_opts.btf_custom_path = kVmlinuxBtf;
  Skel* skel = open(&open_opts);
  if (!skel) return libbpf_error(fmt::format("cannot open the {} BPF object", what), -errno);
  skel->rodata->capture_stacks = capture_stacks;
  if (auto st = share_core_maps(skel->obj, what); !st) {
    destroy(skel);
    return st;
  }
  prepare_uprobe_programs(skel->obj);
  if (int err = load(skel)) {
    destroy(skel);
    return libbpf_error(fmt::format("cannot load the {} BPF programs (the kernel verifier refused them; run "
                                    "`memlens doctor` for what this kernel lacks)",
                                    what),
                        err);
  }
  out = skel;
  return {};
}

Status BpfSession::load_faults(const SessionOptions& opts) {
  LIBBPF_OPTS(bpf_object_open_opts, open_opts);
  if (access(kVmlinuxBtf, R_OK) == 0) open_opts.btf_custom_path = kVmlinuxBtf;
  faults_bpf* f = faults_bpf__open_opts(&open_opts);
  if (!f) return libbpf_error("cannot open the page-fault BPF object", -errno);
  f->rodata->capture_stacks = opts.capture_stacks;
  if (auto st = share_core_maps(f->obj, "page-fault"); !st) {
    faults_bpf__destroy(f);
    return st;
  }
  if (!opts.capture_stacks) bpf_map__set_max_entries(f->maps.ml_fault_stacks, 1);
  int err = faults_bpf__load(f);
  if (err) {
    faults_bpf__destroy(f);
    return libbpf_error("cannot load the page-fault program (perf_event programs refused?)", err);
  }
  faults_skel_ = f;
  return {};
}

namespace {

// A page-fault software event on one thread (every CPU), inherited by the tasks it starts, disabled
// until the program is attached.
Result<int> open_fault_event(pid_t tid, uint32_t period) {
  perf_event_attr attr{};
  attr.size = sizeof(attr);
  attr.type = PERF_TYPE_SOFTWARE;
  attr.config = PERF_COUNT_SW_PAGE_FAULTS;
  attr.sample_period = period;
  attr.inherit = 1;
  attr.disabled = 1;
  int fd = static_cast<int>(syscall(SYS_perf_event_open, &attr, tid, -1, -1, PERF_FLAG_FD_CLOEXEC));
  if (fd < 0) return errno_error(fmt::format("cannot open the page-fault perf event of thread {}", tid));
  return fd;
}

}  // namespace

Status BpfSession::sample_faults(pid_t pid, bool all_threads) {
  if (!faults_skel_) return make_error(faults_unavailable_, ENOTSUP);
  std::vector<pid_t> tids = all_threads ? proc::list_threads(pid) : std::vector<pid_t>{pid};
  if (tids.empty()) tids.push_back(pid);
  std::vector<bpf_link*> made;
  auto undo = [&made] {
    for (bpf_link* link : made) bpf_link__destroy(link);  // disables and closes the event too
  };
  for (pid_t tid : tids) {
    auto fd = open_fault_event(tid, fault_sample_period_);
    if (!fd) {
      if (tid != pid) continue;  // a thread that has just exited
      undo();
      return fd.error();
    }
    bpf_link* link = bpf_program__attach_perf_event(faults_skel_->progs.ml_fault_sample, *fd);
    if (!link) {
      int e = errno;
      close(*fd);
      undo();
      return make_error(fmt::format("cannot attach the page-fault program to pid {}", pid), e);
    }
    made.push_back(link);  // the link owns the event's fd from here on
  }
  fault_events_.insert(fault_events_.end(), made.begin(), made.end());
  return {};
}

BpfSession::~BpfSession() {
  reaper_.drain();
  release_all();  // no process stays held (the watchdog sweeps again once memlens has exited)
  for (bpf_link* link : fault_events_) bpf_link__destroy(link);
  if (faults_skel_) faults_bpf__destroy(faults_skel_);
  if (v8_skel_) v8_bpf__destroy(v8_skel_);
  if (fds_skel_) fds_bpf__destroy(fds_skel_);
  for (auto* l : links_) bpf_link__destroy(l);
  if (skel_) memlens_bpf__destroy(skel_);
}

Result<std::vector<ProbeStatus>> BpfSession::attach_kernel_probes() {
  struct Want {
    bpf_program* prog;
    const char* name;
    bool required;
  };
  auto* p = &skel_->progs;
  const Want wants[] = {
      {p->ml_fork, "sched:sched_process_fork", true},
      {p->ml_exec, "sched:sched_process_exec", true},
      {p->ml_exit, "sched:sched_process_exit", true},
      {p->ml_oom_victim, "oom:mark_victim", false},
  };
  std::vector<ProbeStatus> out;
  for (const auto& w : wants) {
    if (!bpf_program__autoload(w.prog)) {
      out.push_back({w.name, false,
                     "not loaded: this kernel's tracepoint does not pass the victim's task (Linux 6.8+); "
                     "OOM kills are told from the OOM-kill counters alone"});
      continue;
    }
    bpf_link* link = bpf_program__attach(w.prog);
    if (w.prog == p->ml_oom_victim) marks_oom_victims_ = link != nullptr;
    if (!link) {
      int e = errno;
      if (w.required)
        return make_error(fmt::format("cannot attach the BPF program for tracepoint {}", w.name), e);
      out.push_back({w.name, false, fmt::format("attach failed: {}", strerror(e))});
      continue;
    }
    links_.push_back(link);
    out.push_back({w.name, true, ""});
  }
  if (faults_skel_)
    out.push_back({fmt::format("perf:page-faults (sampled 1 in {})", fault_sample_period_), true, ""});
  else
    out.push_back({"perf:page-faults", false, faults_unavailable_});
  return out;
}

Status BpfSession::track(pid_t pid, uint64_t start_time_ns) {
  __u32 key = static_cast<__u32>(pid);
  ml_tracked t{};
  t.start_time_ns = start_time_ns;
  t.tracked_since_ns = boot_ns();
  if (bpf_map__update_elem(skel_->maps.ml_tracked, &key, sizeof(key), &t, sizeof(t), BPF_ANY) != 0)
    return errno_error(fmt::format("cannot track pid {} (tracked-process map full?)", pid));
  ml_proc_stats stats{};
  stats.start_time_ns = start_time_ns;
  // Keep figures the kernel may already have written for this pid (a fork seen before this call).
  if (bpf_map__update_elem(skel_->maps.ml_proc_stats, &key, sizeof(key), &stats, sizeof(stats),
                           BPF_NOEXIST) != 0 &&
      errno != EEXIST)
    return errno_error(fmt::format("cannot create the statistics entry of pid {}", pid));
  return {};
}

void BpfSession::untrack(pid_t pid) {
  __u32 key = static_cast<__u32>(pid);
  bpf_map__delete_elem(skel_->maps.ml_tracked, &key, sizeof(key), 0);
}

std::optional<ml_proc_stats> BpfSession::read_stats(pid_t pid) const {
  __u32 key = static_cast<__u32>(pid);
  ml_proc_stats s{};
  if (bpf_map__lookup_elem(skel_->maps.ml_proc_stats, &key, sizeof(key), &s, sizeof(s), 0) != 0)
    return std::nullopt;
  return s;
}

void BpfSession::forget_stats(pid_t pid) {
  __u32 key = static_cast<__u32>(pid);
  bpf_map__delete_elem(skel_->maps.ml_proc_stats, &key, sizeof(key), 0);
}

ReleaseOutcome BpfSession::release(pid_t pid, uint64_t start_time_ns) {
  ReleaseOutcome out = release_process(pid, start_time_ns);
  forget_hold(bpf_map__fd(skel_->maps.ml_held), pid, start_time_ns);
  return out;
}

size_t BpfSession::release_all() {
  if (!skel_) return 0;
  skel_->bss->holds_closed = 1;
  return release_all_held(bpf_map__fd(skel_->maps.ml_held));
}

namespace {

// The per-CPU counters of an array map of N slots, summed over the CPUs.
template <size_t N>
std::array<uint64_t, N> sum_per_cpu(const bpf_map* map) {
  std::array<uint64_t, N> total{};
  int ncpu = libbpf_num_possible_cpus();
  if (ncpu <= 0) return total;
  std::vector<__u64> per_cpu(static_cast<size_t>(ncpu));
  for (__u32 i = 0; i < N; ++i) {
    if (bpf_map__lookup_elem(map, &i, sizeof(i), per_cpu.data(), per_cpu.size() * sizeof(__u64), 0) != 0)
      continue;
    for (auto v : per_cpu) total[i] += v;
  }
  return total;
}

}  // namespace

LossCounts BpfSession::read_losses() const {
  return sum_per_cpu<ML_LOSS_REASONS>(skel_->maps.ml_loss);
}

Result<void> BpfSession::write_unwind_rows(uint32_t first, const ml_unwind_row* rows, size_t n) {
  if (n == 0) return {};
  if (first > unwind_row_capacity_ || n > unwind_row_capacity_ - first)
    return make_error("the rows do not fit in the unwind-table array", ENOSPC);
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  size_t begin = size_t{first} * sizeof(ml_unwind_row);
  size_t end = begin + n * sizeof(ml_unwind_row);
  size_t map_begin = begin / page * page;
  size_t map_len = end - map_begin;
  void* m = mmap(nullptr, map_len, PROT_READ | PROT_WRITE, MAP_SHARED,
                 bpf_map__fd(skel_->maps.ml_unwind_rows), static_cast<off_t>(map_begin));
  if (m == MAP_FAILED) return errno_error("cannot map the unwind-table array into memlens");
  std::memcpy(static_cast<char*>(m) + (begin - map_begin), rows, n * sizeof(ml_unwind_row));
  munmap(m, map_len);
  return {};
}

int BpfSession::unwind_procs_fd() const {
  return bpf_map__fd(skel_->maps.ml_unwind_procs);
}

int BpfSession::unwind_files_fd() const {
  return bpf_map__fd(skel_->maps.ml_unwind_files);
}

std::array<uint64_t, ML_UNWIND_STATS> BpfSession::read_unwind_stats() const {
  return sum_per_cpu<ML_UNWIND_STATS>(skel_->maps.ml_unwind_stats);
}

std::vector<std::pair<int32_t, uint64_t>> BpfSession::take_fault_stacks(pid_t pid) {
  std::vector<std::pair<int32_t, uint64_t>> out;
  if (!faults_skel_) return out;
  int fd = bpf_map__fd(faults_skel_->maps.ml_fault_stacks);
  std::vector<ml_fault_stack_key> mine;
  ml_fault_stack_key key{}, next{};
  ml_fault_stack_key* prev = nullptr;
  while (bpf_map_get_next_key(fd, prev, &next) == 0) {
    key = next;
    prev = &key;
    if (key.pid == static_cast<__u32>(pid)) mine.push_back(key);
  }
  for (const auto& k : mine) {
    __u64 n = 0;
    if (bpf_map_lookup_elem(fd, &k, &n) == 0) out.emplace_back(k.stack_id, n);
    bpf_map_delete_elem(fd, &k);
  }
  return out;
}

std::vector<uint64_t> BpfSession::stack(int32_t stack_id) const {
  std::vector<uint64_t> ips(ML_MAX_STACK_DEPTH + 1, 0);  // the frames, then the kernel side's hash
  if (stack_id < 0) return {};
  __u32 key = static_cast<__u32>(stack_id);
  if (bpf_map__lookup_elem(skel_->maps.ml_stacks, &key, sizeof(key), ips.data(),
                           ips.size() * sizeof(uint64_t), 0) != 0)
    return {};
  size_t n = 0;
  while (n < ML_MAX_STACK_DEPTH && ips[n] != 0) ++n;
  ips.resize(n);
  return ips;
}

Status BpfSession::set_js_layout(pid_t pid, const ml_js_proc& layout) {
  __u32 key = static_cast<__u32>(pid);
  if (int err = bpf_map__update_elem(skel_->maps.ml_js_procs, &key, sizeof(key), &layout, sizeof(layout), 0);
      err != 0)
    return libbpf_error("cannot set the V8 frame layout of a process", err);
  return {};
}

void BpfSession::clear_js_layout(pid_t pid) {
  __u32 key = static_cast<__u32>(pid);
  bpf_map__delete_elem(skel_->maps.ml_js_procs, &key, sizeof(key), 0);
}

std::vector<uint64_t> BpfSession::js_frames(int32_t stack_id) const {
  if (stack_id < 0) return {};
  __u32 key = static_cast<__u32>(stack_id);
  ml_js_frames frames{};
  if (bpf_map__lookup_elem(skel_->maps.ml_js_frames, &key, sizeof(key), &frames, sizeof(frames), 0) != 0)
    return {};
  return {std::begin(frames.sfi), std::end(frames.sfi)};
}

std::vector<std::pair<int32_t, ml_js_frames>> BpfSession::new_js_stacks(
    std::unordered_set<int32_t>& seen) const {
  std::vector<std::pair<int32_t, ml_js_frames>> out;
  int fd = bpf_map__fd(skel_->maps.ml_js_frames);
  auto take = [&](__u32 key) {
    if (seen.count(static_cast<int32_t>(key))) return;
    ml_js_frames frames{};
    if (bpf_map_lookup_elem(fd, &key, &frames) != 0)
      return;  // pruned since: not seen, named if it comes back
    seen.insert(static_cast<int32_t>(key));
    out.emplace_back(static_cast<int32_t>(key), frames);
  };
  // The kernel side announces each new stack in ml_js_new. Having held as many as it can (it may have
  // refused some since), the queue sends us through the whole table once.
  int queue = bpf_map__fd(skel_->maps.ml_js_new);
  uint32_t capacity = bpf_map__max_entries(skel_->maps.ml_js_new), popped = 0;
  __u32 id = 0;
  while (bpf_map_lookup_and_delete_elem(queue, nullptr, &id) == 0) {
    ++popped;
    take(id);
  }
  if (popped < capacity) return out;
  __u32 key = 0, next = 0;
  __u32* prev = nullptr;
  while (bpf_map_get_next_key(fd, prev, &next) == 0) {
    key = next;
    prev = &key;
    take(key);
  }
  return out;
}

std::vector<bpf_object*> BpfSession::objects() const {
  std::vector<bpf_object*> out;
  if (skel_) out.push_back(skel_->obj);
  if (fds_skel_) out.push_back(fds_skel_->obj);
  if (v8_skel_) out.push_back(v8_skel_->obj);
  if (faults_skel_) out.push_back(faults_skel_->obj);
  return out;
}

int BpfSession::ringbuf_fd() const {
  return bpf_map__fd(skel_->maps.ml_events);
}

}  // namespace memlens::collect
