#include "collect/fd_extension.h"

#include <bpf/libbpf.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <linux/close_range.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <ctime>
#include <map>
#include <set>

#include "collect/extensions.h"
#include "collect/fd_events.h"
#include "collect/fd_reconcile.h"
#include "collect/hold.h"
#include "collect/process_probes.h"
#include "collect/wrapper_sites.h"
#include "common/clock.h"
#include "elf/elf_file.h"
#include "fds.skel.h"
#include "proc/fd_scan.h"
#include "proc/procfs.h"
#include "symbolize/symbolizer.h"

namespace memlens::collect {

const std::vector<FdProbeSpec>& fd_probe_specs() {
  static const std::vector<FdProbeSpec> specs = {
      {"open", ML_FDK_OPEN, true},
      {"open64", ML_FDK_OPEN, true},
      {"openat", ML_FDK_OPENAT, true},
      {"openat64", ML_FDK_OPENAT, true},
      {"creat", ML_FDK_CREAT, true},
      {"creat64", ML_FDK_CREAT, true},
      {"socket", ML_FDK_SOCKET, true},
      {"socketpair", ML_FDK_SOCKETPAIR, true},
      {"accept", ML_FDK_ACCEPT, true},
      {"accept4", ML_FDK_ACCEPT4, true},
      {"pipe", ML_FDK_PIPE, true},
      {"pipe2", ML_FDK_PIPE2, true},
      {"dup", ML_FDK_DUP, true},
      {"dup2", ML_FDK_DUP2, true},
      {"dup3", ML_FDK_DUP3, true},
      {"fcntl", ML_FDK_FCNTL, true},
      {"fcntl64", ML_FDK_FCNTL, true},
      {"eventfd", ML_FDK_EVENTFD, true},
      {"epoll_create", ML_FDK_EPOLL_CREATE, true},
      {"epoll_create1", ML_FDK_EPOLL_CREATE1, true},
      {"timerfd_create", ML_FDK_TIMERFD, true},
      {"signalfd", ML_FDK_SIGNALFD, true},
      {"memfd_create", ML_FDK_MEMFD, true},
      {"inotify_init", ML_FDK_INOTIFY_INIT, true},
      {"inotify_init1", ML_FDK_INOTIFY_INIT1, true},
      {"pidfd_open", ML_FDK_PIDFD_OPEN, true},
      {"close", ML_FDK_CLOSE, false},
      {"close_range", ML_FDK_CLOSE_RANGE, false},
      // glibc's own uncancellable variants, exported for its other libraries: fopen opens through
      // open but fclose closes through __close_nocancel; opendir and others open through
      // __open_nocancel.
      {"__close_nocancel", ML_FDK_CLOSE, false},
      {"__open_nocancel", ML_FDK_OPEN, true},
      {"__open64_nocancel", ML_FDK_OPEN, true},
  };
  return specs;
}

namespace {

class FdExtension : public TraceExtension {
 public:
  ~FdExtension() override {
    for (auto& [pid, l] : links_) session_.retire(std::move(l.links));
  }

  FdExtension(BpfSession& session, bool accept_stacks) : session_(session), accept_stacks_(accept_stacks) {
    // The fd table at each tracked process's exit (bpf/fd.bpf.h): one program for the whole trace.
    if (bpf_link* l = bpf_program__attach(session_.fds()->progs.ml_fd_at_exit))
      exit_link_ = UprobeLink(l);
    else
      exit_attach_error_ = errno_error("cannot attach the fd exit snapshot (sched_process_exit)").describe();
  }

  std::string name() const override { return "fds"; }

  void on_track(model::Trace& trace, model::Process& p, bool after_exec) override {
    p.fds.totals_lower_bound = !accept_stacks_;
    trace_ = &trace;
    if (!exit_link_attached() && !exit_skip_noted_) {
      exit_skip_noted_ = true;
      trace.info.probes_skipped.push_back({"fd exit snapshot", exit_attach_error_});
    }
    double now = trace.seconds_since_start(boot_ns());
    if (after_exec) {
      // Close-on-exec fds died with the old image; the others carry on. The new image maps its C library
      // later (the dynamic loader): the probes are checked at the next sample.
      p.fds.exec();
      libc_check_pending_[p.pid()] = true;
      // The close-on-exec flags the table holds may be stale (ioctl FIOCLEX is not traced): /proc says
      // which fds survived, once the dynamic loader is done (on_image_loaded): while it runs, /proc shows
      // the library files it has open for a moment, closed with raw syscalls no probe sees.
      exec_reconcile_pending_.insert(p.pid());
      return;
    }
    attach(trace, p);
    watch_exit(p);
    auto listing = proc::scan_fds(p.pid());
    now = trace.seconds_since_start(boot_ns());
    if (listing)
      p.fds.reconcile(*listing, now, true);
    else
      p.notes.push_back(
          "fds: cannot read /proc: " + listing.error().describe() +
          (listing.error().errno_value == EACCES || listing.error().errno_value == EPERM
               ? " (another user's fd directory can be listed by root or with CAP_DAC_READ_SEARCH)"
               : ""));
  }

  void on_image_loaded(model::Trace& trace, model::Process& p) override {
    if (!exec_reconcile_pending_.erase(p.pid())) return;
    // Fds the new image opened since are added as found in /proc and take their origin from their open
    // events, still in the ring buffer.
    if (auto listing = proc::scan_fds(p.pid()))
      p.fds.reconcile(*listing, trace.seconds_since_start(boot_ns()), false);
  }

  void on_untrack(model::Process& p) override {
    exec_reconcile_pending_.erase(p.pid());
    // The fds open at the end (or at exit) by opening stack, in the shared stack table: the stacks
    // extension, after this one, names them with the process's symbols and writes fd_opens.folded and
    // .pb.gz. Fds whose opening was not seen have no stack and are left out (report.json counts them).
    if (!p.alive() && !exit_applied_.count(p.pid()))
      apply_exit_snapshot(p, true,
                          p.exited_at_s.value_or(trace_ ? trace_->seconds_since_start(boot_ns()) : 0));
    for (const auto& [fd, e] : p.fds.entries())
      if (e.stack_id >= 0) ++p.stacks[model::stack_kind::kFdOpens][e.stack_id].count;
    unwatch_exit(p.pid());
    exit_applied_.erase(p.pid());
    detach(p.pid());
    over_limit_noted_.erase(p.pid());
    libc_check_pending_.erase(p.pid());
  }

  void on_sample(model::Process& p, model::Sample& s) override {
    exec_reconcile_pending_.erase(p.pid());  // the reconcile below does it
    if (libc_check_pending_.count(p.pid())) {
      auto libc = find_libc(p.pid());
      if (libc) {
        auto it = links_.find(p.pid());
        if (it == links_.end() || !(it->second.libc == *libc)) attach_to(p, *libc, nullptr);
        libc_check_pending_.erase(p.pid());
      }
    }
    if (p.alive() && trace_) {
      bool reconciled = reconcile_with_proc(*trace_, p);
      // Skipped because the process is exiting: the kernel's copy of its fd table at exit says the rest.
      if (!reconciled && !exit_applied_.count(p.pid())) apply_exit_snapshot(p, false, s.t_s);
      if (!reconciled && p.fds.open_count() > kReconcileMaxFds && over_limit_noted_.insert(p.pid()).second)
        p.notes.push_back(fmt::format(
            "fds: more than {} open: /proc is not read at every sample, so closes made past close() "
            "(libuv's syscall(SYS_close)) are found only when their number is reused",
            kReconcileMaxFds));
      resolve_some(p.fds, p.pid(), kResolvePerSample);
    }
    p.fds.record_sample(s.t_s);
    s.fds_open = p.fds.open_count();
  }

  void on_finish(model::Trace& trace) override {
    for (auto* p : trace.processes.live()) {
      (void)reconcile_with_proc(trace, *p);  // closes since the last sample
      resolve_some(p->fds, p->pid(), kResolveAtEnd);
      resolve_sockets(p->fds, p->pid());
    }
    for (const auto& p : trace.processes.all()) copy_stacks(p->fds);
    for (auto* p : trace.processes.live()) name_stacks(*p);
    // A process whose fd probes did not attach is counted as untraced (its notes say why); the exit
    // snapshot's program, when it did not attach, is in the skipped probes.
  }

 private:
  struct Links {
    MappedObject libc;
    std::vector<UprobeLink> links;
  };
  struct Target {
    uint64_t file_offset;
    uint32_t kind;
    bool needs_return;
    const char* symbol;
    uint64_t entry_offset = 0;           // where the entry program goes: the start or an equivalent branch
    std::vector<uint64_t> result_sites;  // branches after the syscall that replace the return probe
    // Branches after the syscall that replace both probes, with the stack bytes the wrapper has taken
    // there (accept, accept4: ml_fd_accepted); when set, result_sites and entry_offset are not used.
    OneHitSites call_sites;
  };

  // accept and accept4 are the calls a server makes per connection: they are read at the branch after
  // each syscall, one emulated hit per call where the path to it is known (ml_fd_accepted), else the
  // result alone there, after the entry probe (wrapper_sites.h). Other wrappers keep
  // their return probe: a wrapper that also reaches its syscall through another function would be missed.
  static bool result_at_syscall(uint32_t kind) { return kind == ML_FDK_ACCEPT || kind == ML_FDK_ACCEPT4; }

  // The functions of this C library to probe, one per address: aliases (open and open64, fcntl and
  // fcntl64) share their code, and two probes at one address would report each call twice.
  Result<std::vector<Target>> targets_of(const MappedObject& libc) {
    std::string key = fmt::format("{}:{}", libc.device, libc.inode);
    if (auto it = targets_.find(key); it != targets_.end()) return it->second;
    auto elf = elf::ElfFile::open_path(libc.host_path);
    if (!elf) return elf.error();
    std::vector<Target> out;
    std::map<uint64_t, bool> seen;
    for (const auto& spec : fd_probe_specs()) {
      // accept and accept4 only on request: a server's connections would each cost a trap.
      if (!accept_stacks_ && result_at_syscall(spec.kind)) continue;
      auto located = locate_wrapper(**elf, spec.symbol);
      if (!located || seen.count(located->file_offset)) continue;
      uint64_t off = located->file_offset;
      seen[off] = true;
      Target t{off, spec.kind, spec.needs_return, spec.symbol};
      t.entry_offset = off;
      const WrapperSites& sites = located->sites;
      if (sites.entry) t.entry_offset = off + *sites.entry;
      if (spec.needs_return && result_at_syscall(spec.kind)) {
        t.call_sites = one_hit_sites(*located);
        if (t.call_sites.empty())
          for (uint64_t site : sites.after_syscall) t.result_sites.push_back(off + site);
      }
      out.push_back(std::move(t));
    }
    targets_[key] = out;
    return out;
  }

  void attach(model::Trace& trace, model::Process& p) {
    auto libc = find_libc(p.pid());
    if (!libc) {
      untraced(p, "fds not traced: " + libc.error().describe());
      return;
    }
    attach_to(p, *libc, &trace);
  }

  void attach_to(model::Process& p, const MappedObject& libc, model::Trace* trace) {
    detach(p.pid());
    auto targets = targets_of(libc);
    if (!targets) {
      untraced(p, "fds not traced: " + targets.error().describe());
      return;
    }
    Links l;
    l.libc = libc;
    auto* progs = &session_.fds()->progs;
    std::vector<std::string> failed;
    if (attach_grouped(p.pid(), libc, *targets, l)) {
      p.untraced.end("fds", now_s());
      note_attached(trace);
      links_[p.pid()] = std::move(l);
      return;
    }
    // Attaches one probe of target t, keeping its link or what failed; true when it is attached.
    auto attach_at = [&](bpf_program* prog, const Target& t, uint64_t offset, bool retprobe,
                         std::optional<uint64_t> cookie = {}) {
      auto link = attach_one(prog, p.pid(), libc.host_path, t, offset, retprobe, cookie);
      if (!link) {
        failed.push_back(fmt::format("{} ({})", t.symbol, link.error().describe()));
        return false;
      }
      l.links.push_back(std::move(*link));
      return true;
    };
    for (const auto& t : *targets) {
      if (!t.call_sites.empty()) {
        for (const auto& [site, stack_bytes] : t.call_sites)
          attach_at(progs->ml_fd_accepted, t, site, false,
                    t.kind | (static_cast<uint64_t>(stack_bytes) << 32));
        continue;
      }
      // The result probes first: an entry without its result would leave arguments waiting. At a branch
      // after the syscall the return program reads %rax, which holds the syscall's result there.
      if (t.needs_return) {
        bool all = true;
        if (t.result_sites.empty()) all = attach_at(progs->ml_fd_exit, t, t.file_offset, true);
        for (uint64_t site : t.result_sites) all = attach_at(progs->ml_fd_exit, t, site, false) && all;
        if (!all) continue;
      }
      attach_at(t.needs_return ? progs->ml_fd_enter : progs->ml_fd_close, t, t.entry_offset, false);
    }
    if (!failed.empty()) {
      untraced(p, fmt::format("fds: {} probe(s) not attached: {}", failed.size(), failed.front()));
    } else {
      p.untraced.end("fds", now_s());
    }
    if (!l.links.empty()) note_attached(trace);
    links_[p.pid()] = std::move(l);
  }

  static void note_attached(model::Trace* trace) {
    if (!trace) return;
    const std::string name = "libc:fd calls";
    auto& attached = trace->info.probes_attached;
    if (std::find(attached.begin(), attached.end(), name) == attached.end()) attached.push_back(name);
  }

  // Every probe of the targets in one uprobe_multi link per program (and kind: return or not), where the
  // kernel has them: attaching is then a handful of calls instead of one per probe, and so is detaching
  // (a grace period per link). A new process is held until this is done (docs/probes.md): this is most of
  // what holding it costs. The result probes go first (an entry without its result would leave arguments
  // waiting). False, with nothing attached, when a link is refused: attach_to then goes one by one.
  bool attach_grouped(pid_t pid, const MappedObject& libc, const std::vector<Target>& targets, Links& l) {
    auto* progs = &session_.fds()->progs;
    struct Group {
      bpf_program* prog;
      bool retprobe;
      std::vector<uint64_t> offsets, cookies;
    };
    Group results_ret{progs->ml_fd_exit, true, {}, {}}, results_at{progs->ml_fd_exit, false, {}, {}};
    Group accepted{progs->ml_fd_accepted, false, {}, {}}, entries{progs->ml_fd_enter, false, {}, {}};
    Group closes{progs->ml_fd_close, false, {}, {}};
    for (const auto& t : targets) {
      if (!t.call_sites.empty()) {
        for (const auto& [site, stack_bytes] : t.call_sites) {
          accepted.offsets.push_back(site);
          accepted.cookies.push_back(t.kind | (static_cast<uint64_t>(stack_bytes) << 32));
        }
        continue;
      }
      if (t.needs_return) {
        if (t.result_sites.empty()) {
          results_ret.offsets.push_back(t.file_offset);
          results_ret.cookies.push_back(t.kind);
        }
        for (uint64_t site : t.result_sites) {
          results_at.offsets.push_back(site);
          results_at.cookies.push_back(t.kind);
        }
      }
      Group& g = t.needs_return ? entries : closes;
      g.offsets.push_back(t.entry_offset);
      g.cookies.push_back(t.kind);
    }
    std::vector<UprobeLink> made;
    for (Group* g : {&results_ret, &results_at, &accepted, &entries, &closes}) {
      if (g->offsets.empty()) continue;
      auto link = attach_uprobes_at(g->prog, pid, libc.host_path, g->offsets, g->cookies, g->retprobe);
      if (!link) {
        session_.retire(std::move(made));
        return false;
      }
      made.push_back(std::move(*link));
    }
    for (auto& link : made) l.links.push_back(std::move(link));
    return true;
  }

  // Removes a process's uprobes, off the drain loop (a detach waits for grace periods).
  void detach(pid_t pid) {
    auto it = links_.find(pid);
    if (it == links_.end()) return;
    session_.retire(std::move(it->second.links));
    links_.erase(it);
  }

  bool exit_link_attached() const { return exit_attach_error_.empty(); }

  double now_s() const { return trace_ ? trace_->seconds_since_start(boot_ns()) : 0; }

  // p runs with its fd calls untraced from now on (model/loss.h), unless it is gone already (a process
  // killed while held ran nothing).
  void untraced(model::Process& p, const std::string& reason) {
    p.notes.push_back(reason);
    if (!process_gone(p.pid(), p.key().start_time_ticks)) p.untraced.begin("fds", now_s(), reason);
  }

  void watch_exit(model::Process& p) {
    if (!exit_link_attached()) {
      p.notes.push_back("fds: " + exit_attach_error_ +
                        ": closes made past close() in the last interval before exit are not seen");
      return;
    }
    uint32_t key = static_cast<uint32_t>(p.pid());
    uint8_t one = 1;
    if (bpf_map__update_elem(session_.fds()->maps.ml_fd_watch, &key, sizeof(key), &one, sizeof(one),
                             BPF_ANY) != 0)
      p.notes.push_back("fds: cannot watch this process's exit (fd watch map full)");
  }

  void unwatch_exit(pid_t pid) {
    uint32_t key = static_cast<uint32_t>(pid);
    auto* maps = &session_.fds()->maps;
    bpf_map__delete_elem(maps->ml_fd_watch, &key, sizeof(key), 0);
    bpf_map__delete_elem(maps->ml_fd_exit_fds, &key, sizeof(key), 0);
  }

  // Applies the kernel's copy of p's fd table at exit, if there is one: fds the table holds that were not
  // open at exit were closed past close() since the last sample. With wait, gives the snapshot a moment:
  // it is written right after the exit event, by the next program on the same tracepoint. t: the exit's
  // trace time.
  bool apply_exit_snapshot(model::Process& p, bool wait, double t) {
    if (!exit_link_attached()) return false;
    uint32_t key = static_cast<uint32_t>(p.pid());
    auto snap = std::make_unique<ml_fd_exit_fds>();
    bool found = false;
    for (int attempt = 0; attempt < (wait ? 20 : 1) && !found; ++attempt) {
      if (attempt > 0) usleep(500);
      found = bpf_map__lookup_elem(session_.fds()->maps.ml_fd_exit_fds, &key, sizeof(key), snap.get(),
                                   sizeof(*snap), 0) == 0;
    }
    if (!found) return false;
    exit_applied_.insert(p.pid());
    apply_fds_at_exit(p.fds, *snap, t);
    return true;
  }

  // cookie: what the program reads with bpf_get_attach_cookie(), by default the wrapper's kind.
  static Result<UprobeLink> attach_one(bpf_program* prog, pid_t pid, const std::string& path, const Target& t,
                                       uint64_t file_offset, bool retprobe,
                                       std::optional<uint64_t> cookie = {}) {
    auto link = attach_uprobe(prog, pid, path, "", file_offset, retprobe, cookie.value_or(t.kind));
    if (!link)
      return make_error(fmt::format("{}: {}", t.symbol, link.error().message), link.error().errno_value);
    return link;
  }

  void copy_stacks(model::FdTable& table) {
    for (const auto& [fd, e] : table.entries()) {
      if (e.stack_id < 0 || table.stacks.count(e.stack_id)) continue;
      auto ips = session_.stack(e.stack_id);
      if (!ips.empty()) table.stacks[e.stack_id] = std::move(ips);
    }
  }

  // Names the opening stacks a report shows (those of the fds open longest) while the process's binaries
  // and perf map are there: the report of a capture, written anywhere later, names them from the table.
  static void name_stacks(model::Process& p) {
    auto& table = p.fds;
    std::unique_ptr<symbolize::ProcessSymbolizer> sym;
    for (const auto* e : model::longest_open(table, model::kLongestOpenFds)) {
      std::pair<int32_t, uint64_t> key{e->stack_id, e->caller_ip};
      auto addrs = model::opening_addresses(table, *e);
      if (addrs.empty() || table.stack_labels.count(key)) continue;
      if (!sym) {
        auto made = symbolize::ProcessSymbolizer::create(p.pid());
        if (!made) return;  // gone: its stacks stay addresses
        sym = std::move(*made);
      }
      auto& labels = table.stack_labels[key];
      for (const auto& f : sym->symbolize(addrs)) labels.push_back(f.label());
    }
  }

  BpfSession& session_;
  bool accept_stacks_ = false;
  std::map<pid_t, Links> links_;
  std::map<pid_t, bool> libc_check_pending_;
  std::set<pid_t> exec_reconcile_pending_;  // exec'd: /proc is read once the dynamic loader is done
  std::set<pid_t> over_limit_noted_;
  std::set<pid_t> exit_applied_;
  UprobeLink exit_link_;
  std::string exit_attach_error_;
  bool exit_skip_noted_ = false;
  model::Trace* trace_ = nullptr;  // on_sample has no trace argument; the trace outlives the extension
  std::map<std::string, std::vector<Target>> targets_;
};

}  // namespace

std::unique_ptr<TraceExtension> make_fd_extension(BpfSession& session, bool accept_stacks) {
  if (!session.fds()) return nullptr;  // its object was not loaded
  return std::make_unique<FdExtension>(session, accept_stacks);
}

}  // namespace memlens::collect
