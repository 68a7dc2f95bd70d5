// memlens: where a Node.js process's memory goes, from outside, without restarting it.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/environment.h"

using namespace memlens::cli;

namespace {

void add_trace_options(CLI::App* cmd, TraceOptions& o) {
  cmd->add_option("-o,--out", o.out_dir, "Directory for the report files (created if missing)");
  cmd->add_option("--interval", o.interval_s, "Time-series period in seconds")
      ->check(CLI::Range(0.05, 3600.0))
      ->capture_default_str();
  cmd->add_flag("-q,--quiet", o.quiet, "No live line and no summary");
  cmd->add_flag("-v,--verbose", o.verbose, "Show libbpf's messages");
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"memlens: an eBPF memory tracer for Node.js.\n"
               "Where does the RSS go (JS heap, Buffers, native memory, code, stacks, files), is it growing, who grows it."};
  app.set_version_flag("--version", MEMLENS_VERSION);
  app.require_subcommand(1);

  TraceOptions run_opts;
  std::vector<std::string> command;
  auto* run = app.add_subcommand("run", "Start a command with every probe attached and trace it and its descendants");
  add_trace_options(run, run_opts);
  double run_duration = 0;
  run->add_option("--duration", run_duration, "Stop tracing after this many seconds (the command keeps running)");
  run->add_option("command", command, "The command and its arguments, after --")->required();
  run->footer("Example: memlens run -o out -- node server.js");

  TraceOptions attach_opts;
  pid_t attach_pid = 0;
  double attach_duration = 0;
  auto* attach = app.add_subcommand("attach", "Trace a running process and its descendants, without restarting it");
  attach->add_option("pid", attach_pid, "Process id")->required();
  add_trace_options(attach, attach_opts);
  attach->add_option("--duration", attach_duration, "Stop after this many seconds");
  attach->footer("Example: memlens attach 1234 --duration 60 -o out");

  pid_t doctor_pid = 0;
  std::string doctor_binary;
  auto* doctor = app.add_subcommand("doctor", "Check that this host can run memlens, and what a process offers");
  doctor->add_option("--pid", doctor_pid, "Also check what this process offers");
  doctor->add_option("--binary", doctor_binary, "Also check what this binary offers");

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
  return kExitUsage;
}
