// memlens top [INTERVAL [COUNT]]: every Node process of the host, like bcc's *top tools. With COUNT, or
// when stdout is not a terminal, plain tables (one per interval); on a terminal, a live view with sort keys.
#include <fmt/format.h>
#include <poll.h>
#include <sys/resource.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <cmath>

#include "cli/commands.h"
#include "cli/signals.h"
#include "cli/top_v8.h"
#include "common/clock.h"
#include "common/units.h"
#include "host/top_view.h"
#include "proc/procfs.h"
#include "report/terminal.h"

namespace memlens::cli {

namespace {

std::string bytes_or_dash(std::optional<uint64_t> v) {
  return v ? format_bytes(*v) : "-";
}

std::string growth_text(const host::TopRow& r) {
  if (!r.growth_bytes_per_s) return "-";
  double per_min = *r.growth_bytes_per_s * 60;
  return format_signed_bytes(static_cast<int64_t>(std::llround(per_min)));
}

std::string eta_text(std::optional<double> s) {
  if (!s) return "-";
  if (*s < 120) return fmt::format("{:.0f}s", *s);
  if (*s < 7200) return fmt::format("{:.0f}m", *s / 60);
  if (*s < 2 * 86400) return fmt::format("{:.1f}h", *s / 3600);
  return fmt::format("{:.0f}d", *s / 86400);
}

const char* sort_name(host::TopSort s) {
  switch (s) {
    case host::TopSort::kRss:
      return "rss";
    case host::TopSort::kGrowth:
      return "growth";
    case host::TopSort::kPid:
      return "pid";
    case host::TopSort::kTimeToLimit:
      return "limit";
    case host::TopSort::kFds:
      return "fds";
  }
  return "rss";
}

// The V8 columns, after the /proc ones.
std::string v8_columns(const TopV8Cells& c) {
  return fmt::format(" {:>10} {:>10} {:>10} {:>10} {:>10} {:>5} {:<7}", c.heap_used, c.heap_committed,
                     c.array_buffers, c.native, c.code, c.gc_share, c.verdict);
}

std::string render(const host::TopView& view, const TopV8Columns& v8, host::TopSort sort) {
  const auto& h = view.host();
  rusage self{};
  getrusage(RUSAGE_SELF, &self);
  double cpu_s = static_cast<double>(self.ru_utime.tv_sec + self.ru_stime.tv_sec) +
                 static_cast<double>(self.ru_utime.tv_usec + self.ru_stime.tv_usec) / 1e6;
  std::string out = fmt::format(
      "memlens top  host memory {} total, {} available  node processes: {} now, {} started, {} exited "
      "(from {}; events lost {}; ended before classified {})  memlens: cpu {:.2f}s rss {}\n",
      format_bytes(h.mem_total_bytes), format_bytes(h.mem_available_bytes), h.node_now, h.node_started,
      h.node_exited, h.lifecycle_source, h.lifecycle_events_lost, h.lifecycle_unclassified, cpu_s,
      format_bytes(static_cast<uint64_t>(self.ru_maxrss) * 1024));
  out += v8.header();
  out += fmt::format(
      "{:>7} {:>7} {:<12} {:<28} {:>10} {:>10} {:>10} {:>11} {:>10} {:>5} {:>8} {:>5} {:>5} {:>4}{}\n", "PID",
      "NSPID", "CONTAINER", "COMMAND", "RSS", "ANON", "FILE", "GROWTH/MIN", "LIMIT", "USED%", "TO-LIMIT",
      "FDS", "SOCKS", "OOM",
      v8_columns({"JS-HEAP", "JS-COMMIT", "ARRAYBUF", "NATIVE", "CODE", "GC%", "VERDICT"}));
  for (const auto& r : view.rows(sort)) {
    const auto& p = r.process;
    std::string used = r.limit_bytes && r.cgroup_usage_bytes && *r.limit_bytes
                           ? fmt::format("{:.0f}", 100.0 * *r.cgroup_usage_bytes / *r.limit_bytes)
                           : "-";
    std::string command = p.command.size() > 28 ? p.command.substr(0, 25) + "..." : p.command;
    out += fmt::format(
        "{:>7} {:>7} {:<12} {:<28} {:>10} {:>10} {:>10} {:>11} {:>10} {:>5} {:>8} {:>5} {:>5} {:>4}{}\n",
        p.pid, p.ns_pid, p.container ? p.container->short_id() : "-", command, format_bytes(r.rss_bytes),
        format_bytes(r.anon_bytes), format_bytes(r.file_bytes), growth_text(r), bytes_or_dash(r.limit_bytes),
        used, eta_text(r.seconds_to_limit), r.fds, r.sockets,
        r.oom_kills ? std::to_string(*r.oom_kills) : "-", v8_columns(v8.cells(r)));
  }
  if (!view.oom_kills().empty()) out += "last OOM kills:\n";
  for (const auto& k : view.oom_kills()) {
    const auto& r = k.last;
    out += fmt::format("  at {:.0f}s  pid {} ({}){}: rss {} growing {}/min{}\n", k.at_s, r.process.pid,
                       r.process.command, r.limit_source.empty() ? "" : " in " + r.limit_source,
                       format_bytes(r.rss_bytes), growth_text(r),
                       r.limit_bytes ? ", limit " + format_bytes(*r.limit_bytes) : "");
  }
  return out;
}

// Raw keys on a terminal for the live view, restored however the view ends.
class RawTerminal {
 public:
  RawTerminal() {
    if (tcgetattr(STDIN_FILENO, &saved_) != 0) return;
    termios raw = saved_;
    raw.c_lflag &= ~static_cast<tcflag_t>(ICANON | ECHO);
    raw.c_cc[VMIN] = 0;
    raw.c_cc[VTIME] = 0;
    active_ = tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0;
  }
  ~RawTerminal() {
    if (active_) tcsetattr(STDIN_FILENO, TCSANOW, &saved_);
  }
  RawTerminal(const RawTerminal&) = delete;
  RawTerminal& operator=(const RawTerminal&) = delete;

 private:
  termios saved_{};
  bool active_ = false;
};

// Waits up to seconds for a key on stdin; 0 when none.
char wait_key(double seconds) {
  pollfd pfd{STDIN_FILENO, POLLIN, 0};
  if (poll(&pfd, 1, static_cast<int>(seconds * 1000)) <= 0) return 0;
  char c = 0;
  return read(STDIN_FILENO, &c, 1) == 1 ? c : 0;
}

}  // namespace

int top_command(const TopOptions& opts) {
  install_stop_handlers();
  host::TopView view(opts.filter);
  auto sort = host::parse_top_sort(opts.sort);
  if (!sort) {
    fmt::print(stderr, "memlens top: unknown sort column '{}' (rss, growth, limit, pid, fds)\n", opts.sort);
    return kExitUsage;
  }
  TopV8Columns v8(opts.v8_max_processes);
  double t0 = monotonic_s();
  view.refresh(0);
  v8.update(view.rows(host::TopSort::kPid));
  bool live = !opts.count && isatty(STDOUT_FILENO) && isatty(STDIN_FILENO);
  if (!live) {
    // bcc's convention: each table covers one interval, so the first comes after the first interval.
    for (uint64_t n = 0; !opts.count || n < *opts.count; ++n) {
      double until = monotonic_s() + opts.interval_s;
      while (monotonic_s() < until && !stop_signal()) usleep(50'000);
      if (stop_signal()) break;
      view.refresh(monotonic_s() - t0);
      v8.update(view.rows(host::TopSort::kPid));
      fmt::print("{}", render(view, v8, *sort));
      if (!opts.count || n + 1 < *opts.count) fmt::print("\n");
      fflush(stdout);
    }
    return kExitOk;
  }
  RawTerminal raw;
  while (!stop_signal()) {
    fmt::print("\033[H\033[2J{}\nsort: {}   keys: r rss, g growth, l time to limit, p pid, f fds, q quit\n",
               render(view, v8, *sort), sort_name(*sort));
    fflush(stdout);
    double until = monotonic_s() + opts.interval_s;
    bool quit = false;
    while (!quit && !stop_signal() && monotonic_s() < until) {
      char key = wait_key(until - monotonic_s());
      if (key == 'q') quit = true;
      const std::pair<char, host::TopSort> keys[] = {{'r', host::TopSort::kRss},
                                                     {'g', host::TopSort::kGrowth},
                                                     {'l', host::TopSort::kTimeToLimit},
                                                     {'p', host::TopSort::kPid},
                                                     {'f', host::TopSort::kFds}};
      for (const auto& [k, s] : keys)
        if (key == k) {
          sort = s;
          until = 0;  // redraw at once in the new order
        }
    }
    if (quit) break;
    view.refresh(monotonic_s() - t0);
    v8.update(view.rows(host::TopSort::kPid));
  }
  return kExitOk;
}

}  // namespace memlens::cli
