// memlens: where a Node.js process's memory goes, from outside, without restarting it.
#include <fmt/format.h>

#include <CLI/CLI.hpp>

#include "cli/commands.h"
#include "cli/environment.h"
#include "cli/fds_command.h"

using namespace memlens::cli;

namespace {

void add_trace_options(CLI::App* cmd, TraceOptions& o) {
  cmd->add_option("-o,--out", o.out_dir, "Directory for the report files (created if missing)");
  cmd->add_option("--interval", o.interval_s, "Time-series period in seconds")
      ->check(CLI::Range(0.05, 3600.0))
      ->capture_default_str();
  cmd->add_flag("-q,--quiet", o.quiet, "No live line and no summary");
  cmd->add_flag("-v,--verbose", o.verbose, "Show libbpf's messages");
  cmd->add_flag("!--no-v8", o.v8, "Do not attach the V8 probes (GC, heap used, ArrayBuffers)");
  cmd->add_flag("--v8-alloc-probes", o.v8_alloc_probes,
                "Probe every ArrayBuffer allocation and free: exact allocated/freed totals and an exact "
                "array_buffers profile, at one breakpoint trap per allocation (slow for Buffer-heavy code)");
  cmd->add_flag("!--no-fds", o.fds, "Do not track file descriptors");
  cmd->add_flag("!--no-stacks", o.stacks, "Do not capture user stacks (no flame graphs or profiles)");
  cmd->add_flag("!--no-hold", o.hold,
                "Do not stop new processes (SIGSTOP) until their probes are attached: they run at once, and "
                "what they do before is not traced (counted as untraced time); for interactive shells, "
                "which report a stopped child");
  cmd->add_option("--fault-sample-period", o.fault_sample_period,
                  "Record the stack of one page fault in this many (per process)")
      ->check(CLI::Range(1u, 1u << 20))
      ->capture_default_str();
}

}  // namespace

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
                  "Stop tracing after this many seconds (the command keeps running)");
  run->add_flag(
      "!--no-perf-map", run_opts.perf_map,
      "Do not start node with V8's perf map (--perf-basic-prof-only-functions); JS frames stay unnamed");
  run->add_option("command", command, "The command and its arguments, after --")->required();
  run->footer("Example: memlens run -o out -- node server.js");

  TraceOptions attach_opts;
  pid_t attach_pid = 0;
  double attach_duration = 0;
  auto* attach =
      app.add_subcommand("attach", "Trace a running process and its descendants, without restarting it");
  attach->add_option("pid", attach_pid, "Process id")->required();
  add_trace_options(attach, attach_opts);
  attach->add_option("--duration", attach_duration, "Stop after this many seconds");
  attach->footer("Example: memlens attach 1234 --duration 60 -o out");

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
      ->check(CLI::Range(0.0, 86400.0));
  fds->add_flag("--json", fds_opts.json, "One JSON object: open, by_type, fds");
  fds->add_flag("-v,--verbose", fds_opts.verbose, "Show libbpf's messages");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? kExitOk : kExitUsage;
  }

  if (*run) {
    install_libbpf_logging(run_opts.verbose);
    if (run_duration > 0) run_opts.duration_s = run_duration;
    return run_command(command, run_opts);
  }
  if (*attach) {
    install_libbpf_logging(attach_opts.verbose);
    if (attach_duration > 0) attach_opts.duration_s = attach_duration;
    return attach_command(attach_pid, attach_opts);
  }
  if (*doctor) {
    std::optional<pid_t> pid;
    if (doctor_pid > 0) pid = doctor_pid;
    return doctor_command(pid, doctor_binary);
  }
  if (*fds) return fds_command(fds_pid, fds_opts);
  return kExitUsage;
}
