// memlens: where a Node.js process's memory goes, from outside, without restarting it.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <cmath>
#include <string>
#include <tuple>

#include "cli/commands.h"
#include "cli/environment.h"
#include "cli/fds_command.h"

using namespace memlens::cli;

// A year: longer is a typo, not a trace.
constexpr double kMaxDurationS = 365.0 * 86400;

namespace {

// A number of seconds that bounds a wait: finite and above zero. CLI::Range lets NaN through (every
// comparison with NaN is false), and 0 or inf would mean "never stop" without saying so.
CLI::Validator positive_seconds(double max_s, double min_s = 0) {
  return CLI::Validator(
      [max_s, min_s](std::string& text) -> std::string {
        double v = 0;
        try {
          size_t used = 0;
          v = std::stod(text, &used);
          if (used != text.size()) return "not a number of seconds: " + text;
        } catch (const std::exception&) {
          return "not a number of seconds: " + text;
        }
        if (!std::isfinite(v) || v <= 0 || v < min_s || v > max_s)
          return min_s > 0
                     ? fmt::format("must be a number of seconds from {:g} to {:g}: {}", min_s, max_s, text)
                     : fmt::format("must be a number of seconds above 0 and at most {:g}: {}", max_s, text);
        return "";
      },
      "SECONDS>0");
}

void add_trace_options(CLI::App* cmd, TraceOptions& o, const std::string& out_dir_flag = "-o,--out") {
  cmd->add_option(out_dir_flag, o.out_dir, "Directory for the report files (created if missing)");
  cmd->add_option("--interval", o.interval_s, "Time-series period in seconds (0.05 to 3600)")
      ->check(positive_seconds(3600.0, 0.05))
      ->capture_default_str();
  cmd->add_flag("-q,--quiet", o.quiet, "No live line and no summary");
  cmd->add_flag("-v,--verbose", o.verbose, "Show libbpf's messages");
  cmd->add_flag("!--no-v8", o.v8, "Do not attach the V8 probes (GC, heap used, ArrayBuffers)");
  cmd->add_flag("--v8-alloc-probes", o.v8_alloc_probes,
                "Probe every ArrayBuffer allocation and free: exact allocated/freed totals and an exact "
                "array_buffers profile, at one breakpoint trap per allocation (slow for Buffer-heavy code)");
  cmd->add_flag("!--no-fds", o.fds, "Do not track file descriptors");
  cmd->add_option("--fd-stacks", o.fd_stacks,
                  "accept: also trace accept and accept4, for the exact count and the opening stack of every "
                  "accepted connection (a trap per connection: slower for a server with a connection per "
                  "request). Without it accepted sockets are found in /proc at each sample, and the fd "
                  "totals are lower bounds")
      ->check(CLI::IsMember({"accept"}));
  cmd->add_flag("--unmap-probes", o.unmap_probes,
                "Also trace munmap and madvise: exact counts of both, and an unmapped range leaves the "
                "mmap_growth live bytes at once (a trap per call: an allocating Node process makes more of "
                "them than of all other address-space calls). Without it unmapped ranges are found in "
                "/proc/PID/maps at each sample, and neither call is counted");
  cmd->add_flag("!--no-stacks", o.stacks, "Do not capture user stacks (no flame graphs or profiles)");
  cmd->add_flag("!--no-hold", o.hold,
                "Do not stop new processes (SIGSTOP) until their probes are attached: they run at once, and "
                "what they do before is not traced (counted as untraced time); for interactive shells, "
                "which report a stopped child");
  // A flag whose value, when given, follows '=' only: "--js-objects -- node app.js" must not read "--" as
  // its value.
  cmd->add_flag(
         "--js-objects{full}", o.js_objects,
         "Open V8's inspector (safely: see the README) for the live JS heap by allocation site "
         "(js_live profile) and full GCs that confirm a JS heap growth. --js-objects=sampling reads the "
         "profile only when the trace ends; --js-objects=force overrides an unknown SIGUSR1 check")
      ->check(CLI::IsMember({"full", "sampling", "force"}));
  cmd->add_option("--max-snapshots", o.max_snapshots,
                  "With --js-objects: at most this many heap snapshots a trace (a baseline, one when the JS "
                  "heap grows, one at the end; 0: none)")
      ->check(CLI::Range(0, 100))
      ->capture_default_str();
  cmd->add_flag("--save-snapshots", o.save_snapshots,
                "With --js-objects: also write each heap snapshot memlens takes to the report directory "
                "(heap-PID-N.heapsnapshot, mode 0600, for Chrome DevTools). They hold every string of the "
                "heap: secrets included");
  cmd->add_option(
         "--fault-sample-period", o.fault_sample_period,
         "Sample one page fault in this many (per process; 1024 is a good start): its mode (user or "
         "kernel) and, with stacks, its user stack (the page_faults profile). Off by default: a page-fault "
         "perf event makes every fault of the host take the kernel's software-event path (docs/probes.md). "
         "Fault counts are exact either way (the kernel's)")
      ->check(CLI::Range(0u, 1u << 20))
      ->capture_default_str();
  cmd->add_option(
         "--mmap-sample-bytes", o.mmap_sample_bytes,
         "With stacks: keep the user stack of one address-space call (mmap, brk, mremap that grows) per "
         "this many bytes of growth on average, at least (more while a process maps memory fast: about "
         "50 stacks a second per CPU at most); a call this large or larger always has its stack, a "
         "smaller one with the chance bytes/this, weighed by the inverse in mmap_growth (an unbiased "
         "estimate). 0: every call's stack (a stack walk per call). The counts of calls and the address "
         "space are exact either way")
      ->check(CLI::Range(0u, 1u << 30))
      ->capture_default_str();
  cmd->add_option(
         "--unwind-table-mib", o.unwind_table_mib,
         "Kernel memory for the unwind tables of the traced executables (stacks through code built "
         "without frame pointers); a file that does not fit is named in report.json's unwind.failed. 0: "
         "frame pointers only")
      ->check(CLI::Range(0u, 4096u))
      ->capture_default_str();
}

}  // namespace

// The snapshot options only mean something with --js-objects (full) and, to save, a report directory:
// the complaint, or "" when they fit.
std::string snapshot_options_error(const CLI::App* cmd, const TraceOptions& o, const std::string& out_flag) {
  bool max_given = cmd->count("--max-snapshots") > 0;
  if ((o.save_snapshots || max_given) && o.js_objects.empty())
    return fmt::format("{} needs --js-objects", o.save_snapshots ? "--save-snapshots" : "--max-snapshots");
  if ((o.save_snapshots || max_given) && o.js_objects == "sampling")
    return "--js-objects=sampling takes no heap snapshot: use --js-objects";
  if (o.save_snapshots && o.out_dir.empty())
    return fmt::format("--save-snapshots needs a directory to write them to ({} DIR)", out_flag);
  return "";
}

int main(int argc, char** argv) {
  CLI::App app{
      "memlens: an eBPF memory tracer for Node.js.\n"
      "Where does the RSS go (JS heap, Buffers, native memory, code, stacks, files), is it growing, who "
      "grows it."};
  app.set_version_flag("--version", MEMLENS_VERSION);
  app.require_subcommand(1);

  TraceOptions run_opts;
  std::vector<std::string> command;
  auto* run =
      app.add_subcommand("run", "Start a command with every probe attached and trace it and its descendants");
  add_trace_options(run, run_opts);
  double run_duration = 0;
  run->add_option("--duration", run_duration,
                  "Stop tracing after this many seconds (the command keeps running)")
      ->check(positive_seconds(kMaxDurationS));
  auto* run_no_perf_map = run->add_flag(
      "!--no-perf-map", run_opts.perf_map,
      "Never start node with V8's perf map (--perf-basic-prof-only-functions); without it, JS frames are "
      "named only where memlens understands node's V8 metadata");
  run->add_flag("--perf-map", run_opts.perf_map_always,
                "Start node with V8's perf map even where its V8 metadata names JS frames (by default "
                "only where it does not: the map costs node a write per compiled function and stays "
                "in /tmp)")
      ->excludes(run_no_perf_map);
  run->add_option("command", command, "The command and its arguments, after --")->required();
  run->footer("Example: memlens run -o out -- node server.js");

  TraceOptions record_opts;
  std::vector<std::string> record_command;
  pid_t record_pid = 0;
  double record_duration = 0;
  auto* record = app.add_subcommand(
      "record", "Trace a command (or a running process) into a capture file, to report later, elsewhere");
  record
      ->add_option("-o,--output", record_opts.capture_path, "The capture file to create (never overwritten)")
      ->required();
  add_trace_options(record, record_opts, "--report-dir");
  record
      ->add_option("--max-size", record_opts.capture_max_bytes,
                   "Bound on the capture's size, e.g. 200M (events stop first, then the rest is counted)")
      ->transform(CLI::AsSizeValue(false));
  auto* record_pid_opt = record->add_option("--pid", record_pid, "Trace this running process instead");
  record->add_option("--duration", record_duration, "Stop tracing after this many seconds")
      ->check(positive_seconds(kMaxDurationS));
  auto* record_no_perf_map = record->add_flag(
      "!--no-perf-map", record_opts.perf_map,
      "Never start node with V8's perf map (--perf-basic-prof-only-functions); without it, JS frames are "
      "named only where memlens understands node's V8 metadata");
  record
      ->add_flag("--perf-map", record_opts.perf_map_always,
                 "Start node with V8's perf map even where its V8 metadata names JS frames (by default "
                 "only where it does not: the map costs node a write per compiled function and stays "
                 "in /tmp)")
      ->excludes(record_no_perf_map);
  auto* record_cmd_opt =
      record->add_option("command", record_command, "The command and its arguments, after --");
  record_pid_opt->excludes(record_cmd_opt);
  record->footer(
      "Examples: memlens record -o app.mlcap -- node server.js\n          memlens record -o app.mlcap --pid "
      "1234 --duration 60\n          memlens report app.mlcap -o out");

  std::string report_capture, report_dir;
  bool report_quiet = false;
  auto* report_cmd = app.add_subcommand(
      "report", "Write the report files of a capture (no root, no traced binaries needed)");
  report_cmd->add_option("capture", report_capture, "The capture file `memlens record` wrote")->required();
  report_cmd->add_option("-o,--out", report_dir, "Directory for the report files (created if missing)");
  report_cmd->add_flag("-q,--quiet", report_quiet, "No summary");

  TraceOptions attach_opts;
  pid_t attach_pid = 0;
  double attach_duration = 0;
  auto* attach =
      app.add_subcommand("attach", "Trace a running process and its descendants, without restarting it");
  bool attach_all = false;
  memlens::host::TopFilter attach_filter;
  auto* attach_pid_opt = attach->add_option("pid", attach_pid, "Process id");
  auto* all_opt = attach->add_flag("--all", attach_all,
                                   "Every Node process of the host, and those that start while tracing");
  attach_pid_opt->excludes(all_opt);
  attach->add_option("--container", attach_filter.container, "With --all: only this container's (id prefix)")
      ->needs(all_opt);
  attach
      ->add_option("--cgroup", attach_filter.cgroup,
                   "With --all: only processes whose cgroup path contains this")
      ->needs(all_opt);
  add_trace_options(attach, attach_opts);
  attach->add_option("--duration", attach_duration, "Stop after this many seconds")
      ->check(positive_seconds(kMaxDurationS));
  attach->footer(
      "Examples: memlens attach 1234 --duration 60 -o out\n          memlens attach --all --duration 60 -o "
      "out");

  pid_t doctor_pid = 0;
  std::string doctor_binary;
  auto* doctor =
      app.add_subcommand("doctor", "Check that this host can run memlens, and what a process offers");
  doctor->add_option("--pid", doctor_pid, "Also check what this process offers");
  doctor->add_option("--binary", doctor_binary, "Also check what this binary offers");

  pid_t fds_pid = 0;
  FdsOptions fds_opts;
  auto* fds =
      app.add_subcommand("fds", "List a running process's open fds by type and opening stack (like lsof -p)");
  fds->add_option("pid", fds_pid, "Process id")->required();
  fds->add_option("--watch", fds_opts.watch_s,
                  "Trace opens and closes for this many seconds: new fds get stacks")
      ->check(positive_seconds(86400.0));
  fds->add_flag("--json", fds_opts.json, "One JSON object: open, by_type, fds");
  fds->add_flag("-v,--verbose", fds_opts.verbose, "Show libbpf's messages");

  TopOptions top_opts;
  std::vector<double> top_args;
  pid_t top_pid = 0;
  auto* top =
      app.add_subcommand("top", "Every Node process of the host: memory, growth, container limit, fds");
  top->add_option("interval_count", top_args,
                  "INTERVAL seconds between tables (default 1), COUNT tables (default: until stopped)")
      ->expected(0, 2);
  top->add_option("-s,--sort", top_opts.sort,
                  "Sort by rss, growth, limit (time to the memory limit), pid or fds")
      ->capture_default_str();
  top->add_option("-p,--pid", top_pid, "Only this process");
  top->add_option("--container", top_opts.filter.container, "Only processes of this container (id prefix)");
  top->add_option("--cgroup", top_opts.filter.cgroup, "Only processes whose cgroup path contains this");
  top->add_option(
         "--v8-max", top_opts.v8_max_processes,
         "At most this many processes get V8's GC probes (JS heap, GC%); the others show - (0: none)")
      ->check(CLI::Range(0u, 4096u));
  top->footer("Example: memlens top 1 1   (one plain table over one second)");

  ServeOptions serve_opts;
  pid_t serve_pid = 0;
  auto* serve = app.add_subcommand(
      "serve",
      "Trace every Node process of the host until stopped: Prometheus /metrics, pprof profiles, reports");
  serve
      ->add_option(
          "--listen", serve_opts.listen,
          "ADDRESS:PORT to serve on; beyond loopback only when given (no authentication: docs/serve.md)")
      ->capture_default_str();
  serve->add_option("-p,--pid", serve_pid, "Only this process");
  serve->add_option("--container", serve_opts.filter.container,
                    "Only processes of this container (id prefix)");
  serve->add_option("--cgroup", serve_opts.filter.cgroup, "Only processes whose cgroup path contains this");
  serve
      ->add_option("--max-processes", serve_opts.max_processes,
                   "Export the series of at most this many processes (the others are counted)")
      ->check(CLI::Range(1u, 100000u))
      ->capture_default_str();
  serve->add_option("--interval", serve_opts.interval_s, "Seconds between samples (what /metrics shows)")
      ->check(positive_seconds(3600.0))
      ->capture_default_str();
  serve
      ->add_option("--fault-sample-period", serve_opts.fault_sample_period,
                   "Sample one page fault in this many (the page_faults profile); off by default")
      ->check(CLI::Range(0u, 1u << 20));
  serve->add_flag("-v,--verbose", serve_opts.verbose, "Show libbpf's messages");
  serve->footer("Example: memlens serve --listen 127.0.0.1:9464   (then curl http://127.0.0.1:9464/metrics)");

  // CLI11 answers a mistyped command with "A subcommand is required": name it and the commands there are.
  std::string known;
  bool is_known = false;
  for (const auto* sub : app.get_subcommands({})) {
    known += (known.empty() ? "" : ", ") + sub->get_name();
    is_known = is_known || (argc > 1 && sub->get_name() == argv[1]);
  }
  if (argc > 1 && argv[1][0] != '-' && !is_known) {
    fmt::print(stderr,
               "memlens: unknown command '{}' (commands: {})\nRun with --help for more information.\n",
               argv[1], known);
    return kExitUsage;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? kExitOk : kExitUsage;
  }

  for (auto [cmd, opts, flag] :
       {std::tuple{run, &run_opts, "-o"}, std::tuple{record, &record_opts, "--report-dir"},
        std::tuple{attach, &attach_opts, "-o"}}) {
    if (!*cmd) continue;
    if (std::string e = snapshot_options_error(cmd, *opts, flag); !e.empty()) {
      fmt::print(stderr, "memlens {}: {}\nRun with --help for more information.\n", cmd->get_name(), e);
      return kExitUsage;
    }
  }
  if (*run) {
    install_libbpf_logging(run_opts.verbose);
    if (run_duration > 0) run_opts.duration_s = run_duration;
    return run_command(command, run_opts);
  }
  if (*record) {
    install_libbpf_logging(record_opts.verbose);
    if (record_duration > 0) record_opts.duration_s = record_duration;
    if (record_pid_opt->count() > 0) return attach_command(record_pid, record_opts);
    if (record_command.empty()) {
      fmt::print(
          stderr,
          "memlens record: give a command after -- or --pid PID\nRun with --help for more information.\n");
      return kExitUsage;
    }
    return run_command(record_command, record_opts);
  }
  if (*report_cmd) return report_command(report_capture, report_dir, report_quiet);
  if (*attach) {
    install_libbpf_logging(attach_opts.verbose);
    if (attach_duration > 0) attach_opts.duration_s = attach_duration;
    if (attach_all) return attach_all_command(attach_filter, attach_opts);
    if (attach_pid_opt->count() == 0) {
      fmt::print(stderr,
                 "memlens attach: pid is required (or --all)\nRun with --help for more information.\n");
      return kExitUsage;
    }
    return attach_command(attach_pid, attach_opts);
  }
  if (*doctor) {
    std::optional<pid_t> pid;
    if (doctor_pid > 0) pid = doctor_pid;
    return doctor_command(pid, doctor_binary);
  }
  if (*fds) return fds_command(fds_pid, fds_opts);
  if (*serve) {
    install_libbpf_logging(serve_opts.verbose);
    if (serve_pid > 0) serve_opts.filter.pid = serve_pid;
    return serve_command(serve_opts);
  }
  if (*top) {
    if (!top_args.empty()) {
      if (!std::isfinite(top_args[0]) || top_args[0] < 0.1 || top_args[0] > 3600) {
        fmt::print(stderr, "memlens top: INTERVAL must be a number of seconds from 0.1 to 3600\n");
        return kExitUsage;
      }
      top_opts.interval_s = top_args[0];
    }
    if (top_args.size() == 2) {
      if (!(top_args[1] >= 1) || top_args[1] != std::floor(top_args[1]) || top_args[1] > 1e9) {
        fmt::print(stderr, "memlens top: COUNT must be a whole number of tables, 1 or more\n");
        return kExitUsage;
      }
      top_opts.count = static_cast<uint64_t>(top_args[1]);
    }
    if (top_pid > 0) top_opts.filter.pid = top_pid;
    return top_command(top_opts);
  }
  return kExitUsage;
}
