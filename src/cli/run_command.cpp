// memlens run -- CMD ARGS: start CMD held at a gate, attach every probe to it, then let it exec, so its
// first instruction is already traced.
#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "cli/commands.h"
#include "cli/signals.h"
#include "cli/trace_session.h"
#include "common/text.h"
#include "node/v8_frame_layout.h"

namespace memlens::cli {

namespace {

struct GatedChild {
  pid_t pid = -1;
  int gate_fd = -1;      // write a byte to let the child exec
  int exec_err_fd = -1;  // receives errno if exec fails; EOF when exec succeeded
};

GatedChild spawn_gated(const std::vector<std::string>& argv) {
  int gate[2], err[2];
  if (pipe2(gate, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) return {};
  pid_t pid = fork();
  if (pid < 0) return {};
  if (pid == 0) {
    restore_default_handlers();
    restore_inherited_oom_score();
    close(gate[1]);
    close(err[0]);
    char go = 0;
    ssize_t n;
    do n = read(gate[0], &go, 1);
    while (n < 0 && errno == EINTR);
    if (n != 1) _exit(125);  // memlens went away before attaching: do not run untraced
    // Capabilities given to memlens as ambient ones (setpriv, systemd's AmbientCapabilities) would pass
    // to a non-root command through exec: tracing rights are memlens's, not the command's.
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execvp(args[0], args.data());
    int e = errno;
    (void)!write(err[1], &e, sizeof(e));
    _exit(e == ENOENT ? kExitCommandNotFound : kExitCannotExecute);
  }
  close(gate[0]);
  close(err[1]);
  return {pid, gate[1], err[0]};
}

// The file execvp will run for arg0: arg0 itself when it has a slash, else the first executable regular
// file of that name on PATH (the C library's default, /bin:/usr/bin, when PATH is unset). "" when none.
std::string resolve_command(const std::string& arg0) {
  if (arg0.find('/') != std::string::npos) return arg0;
  const char* path = getenv("PATH");
  for (auto dir : split(path ? path : "/bin:/usr/bin", ':')) {
    std::string candidate = (dir.empty() ? std::string(".") : std::string(dir)) + "/" + arg0;
    struct stat st {};
    if (stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) && access(candidate.c_str(), X_OK) == 0)
      return candidate;
  }
  return "";
}

bool is_node_command(const std::string& arg0) {
  auto slash = arg0.rfind('/');
  std::string base = slash == std::string::npos ? arg0 : arg0.substr(slash + 1);
  return base == "node" || base == "nodejs" || base.rfind("node-", 0) == 0 || base.rfind("node2", 0) == 0 ||
         base.rfind("node1", 0) == 0;
}

// Whether the kernel-side stacks of this node will have their JS frames named from V8's own metadata
// (collect/js_frame_names.h): then V8's perf map is not needed, and node is spared writing it (a line per
// compiled function, in a file left in /tmp after it exits).
bool js_frames_named_from_v8(const std::string& binary) {
  const char* env = getenv("MEMLENS_JS_NAMES");
  if (env && std::string_view(env) == "0") return false;
  return !binary.empty() && node::v8_layout_problem(binary).empty();
}

// V8 writes /tmp/perf-PID.map with the name of every JIT-compiled JS function when started with these
// flags; without the perf map JS frames cannot be named. --logfile=/dev/null: some Node versions otherwise
// write an isolate-*.log into the working directory, which the user did not ask for.
std::vector<std::string> with_perf_map_flags(const std::vector<std::string>& argv, bool quiet) {
  for (const auto& a : argv)
    if (a.rfind("--perf-basic-prof", 0) == 0 || a.rfind("--perf-prof", 0) == 0 ||
        a.rfind("--logfile", 0) == 0)
      return argv;  // the user chose their own
  std::vector<std::string> out = {argv[0], "--perf-basic-prof-only-functions",
                                  "--interpreted-frames-native-stack", "--logfile=/dev/null"};
  out.insert(out.end(), argv.begin() + 1, argv.end());
  if (!quiet)
    fmt::print(
        stderr,
        "memlens: starting node with --perf-basic-prof-only-functions --interpreted-frames-native-stack "
        "(JS function names in stacks; it writes /tmp/perf-<pid>.map); --no-perf-map turns this off\n");
  return out;
}

// With --js-objects, SIGUSR1 opens node's inspector on the port it was started with, 9229 by default, which
// another node of the host (a developer's server, a second traced app) may hold. memlens starts this node,
// so it names a free loopback port for it instead: port 0, the kernel's choice, found from the process's
// sockets once the inspector listens. Nothing opens before memlens signals.
std::vector<std::string> with_free_inspector_port(const std::vector<std::string>& argv) {
  for (const auto& a : argv)
    if (a.rfind("--inspect", 0) == 0 || a.rfind("--debug-port", 0) == 0) return argv;  // the user chose
  std::vector<std::string> out = {argv[0], "--inspect-port=127.0.0.1:0"};
  out.insert(out.end(), argv.begin() + 1, argv.end());
  return out;
}

}  // namespace

int run_command(const std::vector<std::string>& argv, const TraceOptions& opts) {
  if (argv.empty()) {
    fmt::print(stderr, "memlens run: no command given\n  usage: memlens run [options] -- CMD [ARGS...]\n");
    return kExitUsage;
  }
  install_stop_handlers();
  TraceOptions run_opts = opts;
  run_opts.run_mode = true;
  TraceSession session(run_opts);
  if (int rc = session.start(); rc != kExitOk) return rc;
  session.trace().info.command = argv;

  // The file the command will run ("" when none: then the exec fails and says so).
  std::string binary = resolve_command(argv[0]);
  std::vector<std::string> command = argv;
  if (opts.perf_map && opts.stacks && is_node_command(argv[0]) &&
      (opts.perf_map_always || !js_frames_named_from_v8(binary)))
    command = with_perf_map_flags(argv, opts.quiet);
  if (!opts.js_objects.empty() && is_node_command(argv[0])) command = with_free_inspector_port(command);
  GatedChild child = spawn_gated(command);
  if (child.pid < 0) {
    fmt::print(stderr, "memlens run: cannot start {}: {}\n", argv[0], strerror(errno));
    return kExitFailure;
  }
  auto abandon = [&](int rc) {
    close(child.gate_fd);  // the child sees EOF and exits without running the command
    close(child.exec_err_fd);
    waitpid(child.pid, nullptr, 0);
    return rc;
  };
  if (int rc = session.track_root(child.pid, false); rc != kExitOk) return abandon(rc);
  // While the child still waits: the work that depends only on the file it will run (its V8 probes'
  // plan, its and its libraries' unwind tables), so that none of it competes with the command's start.
  if (!binary.empty()) session.tracer().prepare_exec(child.pid, binary);

  char go = 1;
  if (write(child.gate_fd, &go, 1) != 1) return abandon(kExitFailure);
  close(child.gate_fd);
  int exec_errno = 0;
  ssize_t n;
  do n = read(child.exec_err_fd, &exec_errno, sizeof(exec_errno));
  while (n < 0 && errno == EINTR);
  close(child.exec_err_fd);
  if (n == static_cast<ssize_t>(sizeof(exec_errno))) {
    int status = 0;
    waitpid(child.pid, &status, 0);
    if (exec_errno == ENOENT) {
      fmt::print(stderr, "memlens run: command not found: {}\n  remedy: check the name and PATH\n", argv[0]);
      return kExitCommandNotFound;
    }
    fmt::print(stderr, "memlens run: cannot execute {}: {}\n", argv[0], strerror(exec_errno));
    return kExitCannotExecute;
  }

  int child_status = 0;
  bool reaped = false;
  auto poll_child = [&]() {
    if (reaped) return true;
    pid_t r = waitpid(child.pid, &child_status, WNOHANG);
    if (r == child.pid) {
      reaped = true;
      session.tracer().set_root_wait_status(child_status);
    }
    return reaped;
  };
  auto forward = [&](int sig) { kill(child.pid, sig); };
  session.loop(poll_child, forward);

  int rc = session.finish_and_report();
  if (!reaped) {
    // --duration did what was asked: the command is left running, untraced, and that is no failure.
    // After a signal (grace period over) the command did not end when asked: memlens's status is the
    // signal's, as for any program stopped by it.
    bool by_duration = session.trace().info.stop_reason == "duration reached";
    fmt::print(stderr, "memlens run: stopped tracing; the command (pid {}) is left running, untraced\n",
               child.pid);
    if (rc != kExitOk) return rc;
    int sig = stop_signal();
    return by_duration || sig == 0 ? kExitOk : 128 + sig;
  }
  if (rc != kExitOk) return rc;
  if (WIFSIGNALED(child_status)) return 128 + WTERMSIG(child_status);
  return WEXITSTATUS(child_status);
}

}  // namespace memlens::cli
