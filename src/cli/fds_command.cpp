// memlens fds PID [--watch S] [--json]: like `lsof -p PID`, plus who opened each fd. The table is read
// from /proc; with --watch, opens and closes are traced for S seconds, so fds opened meanwhile carry
// their opening stack (fds open before memlens came are shown as such).
#include "cli/fds_command.h"

#include <fmt/format.h>
#include <time.h>

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <tuple>

#include "cli/commands.h"
#include "cli/environment.h"
#include "cli/signals.h"
#include "collect/extensions.h"
#include "collect/tracer.h"
#include "common/clock.h"
#include "common/json_text.h"
#include "proc/fd_scan.h"
#include "proc/procfs.h"
#include "proc/sock_diag.h"
#include "report/fd_section.h"

namespace memlens::cli {

namespace {

// "3-7,9,12" from sorted fd numbers.
std::string fd_ranges(const std::vector<int>& fds, size_t max_parts) {
  std::string out;
  size_t parts = 0;
  for (size_t i = 0; i < fds.size();) {
    size_t j = i;
    while (j + 1 < fds.size() && fds[j + 1] == fds[j] + 1) ++j;
    if (parts == max_parts) return out + ",...";
    if (!out.empty()) out += ",";
    out += i == j ? fmt::format("{}", fds[i]) : fmt::format("{}-{}", fds[i], fds[j]);
    ++parts;
    i = j + 1;
  }
  return out;
}

std::string what(const model::FdEntry& e) {
  if (e.socket) {
    std::string s = e.socket->family.empty() ? "socket" : e.socket->family + "/" + e.socket->protocol;
    if (!e.socket->local.empty()) s += " " + e.socket->local;
    if (!e.socket->remote.empty()) s += " -> " + e.socket->remote;
    if (!e.socket->state.empty()) s += " (" + e.socket->state + ")";
    return s;
  }
  return e.path;
}

void print_table(const model::Process& p, symbolize::ProcessSymbolizer* sym, double watch_s) {
  const auto& t = p.fds;
  fmt::print("pid {} ({}): {} open fds\n", p.pid(), p.comm, t.open_count());
  std::string types;
  for (const auto& [type, n] : t.by_type())
    types += fmt::format("{}{} {}", types.empty() ? "" : ", ", type, n);
  fmt::print("  by type: {}\n", types);
  if (watch_s > 0)
    fmt::print(
        "  watched {:.1f} s: {} opened, {} closed; opening stacks are known for fds opened meanwhile\n",
        watch_s, t.opened_total(), t.closed_total());
  else
    fmt::print(
        "  opening stacks are unknown for fds open before memlens came (use --watch S to see new ones)\n");

  // Groups: (type, origin) where origin is the opening stack, or "before" for fds already open.
  struct Group {
    std::vector<int> fds;
    std::vector<std::string> whats;
    const model::FdEntry* first = nullptr;
  };
  std::map<std::tuple<std::string, int32_t, std::string>, Group> groups;
  for (const auto& [fd, e] : t.entries()) {
    std::string type(proc::fd_type_name(model::effective_type(e)));
    // Fds whose opening was not seen: open before memlens came (-2), or found in /proc later (-3).
    int32_t origin = e.before_tracing ? -2 : e.seeded ? -3 : e.stack_id;
    auto& g = groups[{type, origin, e.seeded ? "" : e.opened_by}];
    g.fds.push_back(fd);
    if (!g.first) g.first = &e;
    std::string w = what(e);
    if (!w.empty() && g.whats.size() < 4 && std::find(g.whats.begin(), g.whats.end(), w) == g.whats.end())
      g.whats.push_back(w);
  }
  std::vector<std::pair<const decltype(groups)::key_type*, const Group*>> order;
  for (const auto& [k, g] : groups) order.emplace_back(&k, &g);
  std::stable_sort(order.begin(), order.end(),
                   [](const auto& a, const auto& b) { return a.second->fds.size() > b.second->fds.size(); });
  fmt::print("\n{:>6}  {:<12} {:<24} {}\n", "COUNT", "TYPE", "OPENED BY", "FDS / WHAT");
  for (const auto& [k, g] : order) {
    const auto& [type, stack_id, call] = *k;
    std::string origin = stack_id == -2 ? "(before memlens)" : stack_id == -3 ? "(found in /proc)" : call;
    fmt::print("{:>6}  {:<12} {:<24} fds {}\n", g->fds.size(), type, origin, fd_ranges(g->fds, 6));
    for (const auto& w : g->whats) fmt::print("{:>6}  {:<12} {:<24}   {}\n", "", "", "", w);
    if (stack_id >= -1) {
      auto stack = report::fd_opening_stack(t, *g->first, sym);
      if (stack.empty()) {
        fmt::print("{:>6}  {:<12} {:<24}   stack: not captured\n", "", "", "");
      } else {
        size_t shown = 0;
        for (const auto& f : stack) {
          if (shown++ == 16) {
            fmt::print("{:>46}...\n", "");
            break;
          }
          fmt::print("{:>46}{}\n", "", f.label());
        }
      }
    }
  }
}

}  // namespace

int fds_command(pid_t pid, const FdsOptions& opts) {
  if (pid <= 0 || !proc::process_exists(pid)) {
    fmt::print(stderr, "memlens fds: no process with pid {}\n  remedy: check the pid (ps -e | grep node)\n",
               pid);
    return kExitNoProcess;
  }
  for (const Check& access : {check_process_access(pid), check_fd_listing(pid)}) {
    if (access.ok) continue;
    fmt::print(stderr, "memlens fds: {}\n  remedy: {}\n", access.detail, access.remedy);
    return kExitPrivileges;
  }
  model::Trace trace;
  std::unique_ptr<collect::Tracer> tracer;
  model::Process* p = nullptr;
  double watched = 0;

  if (opts.watch_s > 0) {
    install_libbpf_logging(opts.verbose);
    if (int rc = preflight(opts.json); rc != 0) return rc;
    install_stop_handlers();
    collect::TracerOptions to;
    to.interval_s = 1.0;
    // Opening stacks go to the shared stack table; page-fault sampling is of no use here.
    to.capture_stacks = true;
    to.fault_sample_period = 0;
    to.v8 = false;
    auto t = collect::Tracer::create(to, trace);
    if (!t) return report_kernel_failure("memlens fds: ", t.error());
    tracer = std::move(*t);
    auto ext = collect::make_fd_extension(tracer->session());
    if (ext) tracer->add_extension(std::move(ext));
    if (auto s = tracer->track_root(pid, true); !s) {
      if (is_permission_error(s.error())) return report_kernel_failure("memlens fds: ", s.error());
      fmt::print(stderr, "memlens fds: {}\n", s.error().describe());
      return s.error().errno_value == ESRCH ? kExitNoProcess : kExitProbe;
    }
    if (!opts.json) fmt::print(stderr, "memlens: watching fds of pid {} for {:.1f} s\n", pid, opts.watch_s);
    double start = monotonic_s();
    while (monotonic_s() - start < opts.watch_s && !tracer->root_exited() && !stop_signal())
      tracer->poll(100);
    watched = monotonic_s() - start;
    tracer->finish();
    p = trace.processes.find_live(pid);
    if (!p) {
      fmt::print(stderr, "memlens fds: process {} exited while watched\n", pid);
      return kExitNoProcess;
    }
  } else {
    auto start = proc::read_start_time_ns(pid);
    auto listing = proc::scan_fds(pid);
    if (!start || !listing) {
      const Error& e = listing ? start.error() : listing.error();
      fmt::print(stderr, "memlens fds: cannot read the fds of pid {}: {}\n  remedy: {}\n", pid, e.describe(),
                 is_permission_error(e)
                     ? "run memlens as root, as the process's user, or grant it CAP_SYS_PTRACE"
                     : "check the pid (ps -e | grep node)");
      return is_permission_error(e) ? kExitPrivileges : kExitNoProcess;
    }
    p = &trace.processes.add({pid, model::start_time_ns_to_ticks(*start)}, 0);
    if (auto st = proc::read_stat(pid)) p->comm = st->comm;
    p->fds.reconcile(*listing, 0, true);
    p->fds.set_socket_addresses(proc::read_sockets(pid));
  }

  std::unique_ptr<symbolize::ProcessSymbolizer> sym;
  if (auto s = symbolize::ProcessSymbolizer::create(pid)) sym = std::move(*s);
  if (opts.json) {
    nlohmann::json j;
    j["pid"] = pid;
    j["open"] = p->fds.open_count();
    nlohmann::json by_type = nlohmann::json::object();
    for (const auto& [type, n] : p->fds.by_type()) by_type[type] = n;
    j["by_type"] = std::move(by_type);
    j["watch_s"] = watched;
    j["opened_total"] = p->fds.opened_total();
    j["closed_total"] = p->fds.closed_total();
    j["seeded"] = p->fds.seeded_total();
    j["opened_unseen"] = p->fds.opened_unseen();
    j["closed_unseen"] = p->fds.closed_unseen();
    nlohmann::json fds = nlohmann::json::array();
    for (const auto& [fd, e] : p->fds.entries()) fds.push_back(report::fd_entry_json(p->fds, e, sym.get()));
    j["fds"] = std::move(fds);
    fmt::print("{}\n", json_text(j));
  } else {
    print_table(*p, sym.get(), watched);
  }
  tracer.reset();
  return kExitOk;
}

}  // namespace memlens::cli
