#include "cli/trace_session.h"

#include <fcntl.h>
#include <fmt/chrono.h>
#include <fmt/format.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>

#include "cli/environment.h"
#include "cli/signals.h"
#include "collect/extensions.h"
#include "collect/js_objects_extension.h"
#include "common/clock.h"
#include "common/safe_file.h"
#include "proc/procfs.h"
#include "report/folded.h"
#include "report/html.h"
#include "report/js_objects_section.h"
#include "report/json_report.h"
#include "report/pprof.h"
#include "report/terminal.h"

namespace memlens::cli {

namespace {

std::string rfc3339_now() {
  auto now = std::chrono::system_clock::now();
  auto secs = std::chrono::time_point_cast<std::chrono::seconds>(now);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now - secs).count();
  return fmt::format("{:%Y-%m-%dT%H:%M:%S}.{:03d}Z", fmt::gmtime(std::chrono::system_clock::to_time_t(now)),
                     ms);
}

const char* signal_name(int sig) {
  switch (sig) {
    case 2:
      return "SIGINT";
    case 15:
      return "SIGTERM";
    case 1:
      return "SIGHUP";
    default:
      return "signal";
  }
}

}  // namespace

TraceSession::TraceSession(const TraceOptions& opts) : opts_(opts) {}

namespace {

// memlens's own oom_score_adj before it lowered it, as text, for the commands it starts.
char g_inherited_oom_score[16] = "";

// The OOM killer must not choose the tracer over the service it traces (a target outside a cgroup limit
// that exhausts the host's memory): memlens's own score is lowered as far as an agent's usually is.
void protect_from_oom_killer() {
  int fd = open("/proc/self/oom_score_adj", O_RDWR | O_CLOEXEC);
  if (fd < 0) return;
  ssize_t n = read(fd, g_inherited_oom_score, sizeof(g_inherited_oom_score) - 1);
  g_inherited_oom_score[n > 0 ? n : 0] = '\0';
  (void)!pwrite(fd, "-900", 4, 0);
  close(fd);
}

}  // namespace

void restore_inherited_oom_score() {
  if (!g_inherited_oom_score[0]) return;
  // Async-signal-safe: called in a child between fork and exec.
  int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
  if (fd < 0) return;
  (void)!write(fd, g_inherited_oom_score, strlen(g_inherited_oom_score));
  close(fd);
}

int TraceSession::start() {
  if (int rc = preflight(opts_.quiet); rc != 0) return rc;
  protect_from_oom_killer();
  if (!opts_.out_dir.empty()) {
    // Fail before tracing, not after a long trace, when the report cannot be written.
    if (auto s = prepare_output_directory(opts_.out_dir); !s) {
      fmt::print(stderr, "memlens: {}\n  remedy: choose another --out directory\n", s.error().describe());
      return kExitOutput;
    }
  }
  if (!opts_.capture_path.empty()) {
    nlohmann::json options = {{"interval_s", opts_.interval_s},
                              {"stacks", opts_.stacks},
                              {"fault_sample_period", opts_.fault_sample_period},
                              {"mmap_sample_bytes", opts_.mmap_sample_bytes},
                              {"perf_map", opts_.perf_map},
                              {"v8", opts_.v8},
                              {"v8_alloc_probes", opts_.v8_alloc_probes},
                              {"fds", opts_.fds},
                              {"fd_stacks", opts_.fd_stacks},
                              {"unmap_probes", opts_.unmap_probes},
                              {"js_objects", opts_.js_objects},
                              {"max_snapshots", opts_.max_snapshots},
                              {"save_snapshots", opts_.save_snapshots},
                              {"hold", opts_.hold},
                              {"max_size_bytes", opts_.capture_max_bytes}};
    if (opts_.duration_s) options["duration_s"] = *opts_.duration_s;
    auto rec = CaptureRecorder::create(opts_.capture_path, opts_.capture_max_bytes, std::move(options));
    if (!rec) {
      fmt::print(stderr, "memlens: cannot create the capture {}: {}\n  remedy: choose a new file name\n",
                 opts_.capture_path, rec.error().describe());
      return kExitOutput;
    }
    recorder_ = std::move(*rec);
  }
  trace_.info.started_at = rfc3339_now();
  trace_.info.started_unix_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                                    std::chrono::system_clock::now().time_since_epoch())
                                    .count();
  trace_.info.kernel = proc::kernel_release();
  collect::TracerOptions to;
  to.interval_s = opts_.interval_s;
  to.capture_stacks = opts_.stacks;
  to.fault_sample_period = opts_.fault_sample_period;
  to.growth_stack_bytes = opts_.mmap_sample_bytes;
  to.unwind_table_bytes = uint64_t{opts_.unwind_table_mib} << 20;
  to.hold = opts_.hold;
  to.fds = opts_.fds;
  to.v8 = opts_.v8;
  to.unmap_probes = opts_.unmap_probes;
  auto tracer = collect::Tracer::create(to, trace_);
  if (!tracer) return report_kernel_failure("memlens: ", tracer.error());
  tracer_ = std::move(*tracer);
  if (recorder_) {
    tracer_->on_event([this](const collect::Event& e) { recorder_->event(e); });
    tracer_->on_track_start([this](const collect::TrackStart& t) { recorder_->track_start(t); });
    tracer_->on_host_answer([this](const collect::HostAnswer& a) { recorder_->host_answer(a); });
  }
  collect::ExtensionOptions eo;
  eo.v8 = opts_.v8;
  eo.v8_alloc_probes = opts_.v8_alloc_probes;
  eo.fds = opts_.fds;
  eo.fd_accept_stacks = opts_.fd_stacks == "accept";
  for (auto& ext : collect::default_extensions(tracer_->session(), eo))
    tracer_->add_extension(std::move(ext));
  if (!opts_.js_objects.empty()) {
    collect::JsObjectsOptions jo;
    jo.mode = opts_.js_objects;
    jo.run_mode = opts_.run_mode;
    jo.max_snapshots = opts_.max_snapshots;
    if (opts_.save_snapshots) jo.snapshot_dir = opts_.out_dir;
    tracer_->add_extension(collect::make_js_objects_extension(jo));
  }
  if (opts_.stacks) {
    // Last: it symbolizes the stacks the other capabilities recorded for a process.
    auto stacks = std::make_unique<collect::StacksExtension>(tracer_->session());
    stacks_ = stacks.get();
    tracer_->add_extension(std::move(stacks));
  }
  return kExitOk;
}

int TraceSession::track_root(pid_t pid, bool attached_late) {
  if (attached_late) {
    // A process memlens may not read would be traced blind (no maps, no stacks, no probes): refuse it.
    if (Check access = check_process_access(pid); !access.ok) {
      fmt::print(stderr, "memlens: {}\n  remedy: {}\n", access.detail, access.remedy);
      return kExitPrivileges;
    }
  }
  auto s = tracer_->track_root(pid, attached_late);
  if (!s) {
    if (is_permission_error(s.error())) return report_kernel_failure("memlens: ", s.error());
    fmt::print(stderr, "memlens: {}\n", s.error().describe());
    return s.error().errno_value == ESRCH ? kExitNoProcess : kExitProbe;
  }
  return kExitOk;
}

void TraceSession::loop(const std::function<bool()>& poll_child, const std::function<void(int)>& on_signal) {
  report::LiveView live(stderr);
  if (!opts_.quiet || recorder_)
    tracer_->on_sample([&](const model::Trace& t) {
      if (!opts_.quiet) live.update(t);
      if (recorder_) recorder_->sample(trace_);
    });
  double started = monotonic_s();
  std::optional<double> grace_until;
  bool forwarded = false;
  // What --js-objects learns while tracing is said at once: JS objects unavailable (and why), the
  // inspector opened, another client on it.
  std::map<const model::Process*, std::pair<size_t, size_t>> js_said;
  auto say_js_objects = [&]() {
    if (opts_.quiet || opts_.js_objects.empty()) return;
    for (const auto& p : trace_.processes.all()) {
      const auto& js = p->js_objects;
      if (!js.requested) continue;
      auto& [history, clients] = js_said[p.get()];
      for (; history < js.history.size(); ++history) {
        const auto& h = js.history[history];
        if (h.state != "unavailable" && h.state != "open") continue;
        live.clear();
        if (h.state == "unavailable")
          fmt::print(stderr, "memlens: pid {}: JS objects unavailable: {}\n", p->pid(), h.reason);
        else
          fmt::print(stderr, "memlens: pid {}: V8 inspector at {} ({})\n", p->pid(), h.address,
                     h.opened_by_memlens ? "opened by memlens, closed when the trace ends"
                                         : "already open: left open");
      }
      for (; clients < js.other_clients.size(); ++clients) {
        live.clear();
        fmt::print(stderr, "memlens: pid {}: another client connected to the inspector memlens uses: {}\n",
                   p->pid(), js.other_clients[clients].peer);
      }
      // Past the clients listed one by one, their number: said when it first passes them, then each time
      // it doubles (a client that reconnects every few seconds is not a line every few seconds).
      if (js.other_clients_total > clients &&
          (clients == js.other_clients.size() || js.other_clients_total >= 2 * clients)) {
        live.clear();
        fmt::print(stderr,
                   "memlens: pid {}: {} other clients connected to the inspector memlens uses so far (the "
                   "first {} are listed)\n",
                   p->pid(), js.other_clients_total, js.other_clients.size());
        clients = js.other_clients_total;
      }
    }
  };
  while (true) {
    say_js_objects();
    int sig = stop_signal();
    if (sig && !forwarded) {
      forwarded = true;
      trace_.info.stop_reason = fmt::format("{} received", signal_name(sig));
      if (!on_signal) break;
      // run: pass the signal on and give the command a moment to exit, so its end is traced too.
      on_signal(sig);
      grace_until = monotonic_s() + 5.0;
    }
    tracer_->poll(100);
    if (poll_child && poll_child()) {
      if (trace_.info.stop_reason.empty()) trace_.info.stop_reason = "command exited";
      break;
    }
    if (!poll_child && tracer_->root_exited()) {
      trace_.info.stop_reason = "target exited";
      break;
    }
    if (opts_.duration_s && monotonic_s() - started >= *opts_.duration_s) {
      trace_.info.stop_reason = "duration reached";
      break;
    }
    if (grace_until && monotonic_s() > *grace_until) break;
    if (stop_requests() >= 2) break;  // asked twice: no grace for the command, but a report all the same
  }
  tracer_->on_sample(nullptr);
  live.clear();
}

int TraceSession::finish_and_report() {
  tracer_->finish();
  std::vector<symbolize::StackProfile> profiles;
  if (stacks_) profiles = stacks_->profiles(trace_);
  if (!opts_.js_objects.empty()) {
    // V8's live heap by allocation site, from the last sampling profile of each process.
    auto js = report::js_live_profile_frame(trace_.info.started_unix_ns,
                                            static_cast<int64_t>(trace_.info.duration_s * 1e9));
    for (const auto& p : trace_.processes.all()) report::append_js_live_samples(*p, js);
    if (!js.samples.empty()) profiles.push_back(std::move(js));
  }
  nlohmann::json report = report::build_report(trace_, profiles);
  report["profiles"] = report::profiles_summary(profiles);
  int rc = kExitOk;
  if (recorder_) {
    auto st = recorder_->finish(trace_.info, profiles);
    if (recorder_->events_dropped() || recorder_->others_dropped())
      fmt::print(stderr,
                 "memlens: the capture {} reached its --max-size bound: {} event record(s) and {} other "
                 "record(s) dropped (its report says so)\n  remedy: a larger --max-size, or a shorter "
                 "trace\n",
                 recorder_->path(), recorder_->events_dropped(), recorder_->others_dropped());
    if (recorder_->oversize_dropped())
      fmt::print(stderr,
                 "memlens: the capture {} dropped {} record(s) larger than a chunk holds (its report says "
                 "so)\n",
                 recorder_->path(), recorder_->oversize_dropped());
    if (!st) {
      fmt::print(stderr,
                 "memlens: the capture {} is incomplete: {}\n  remedy: free space or choose another file\n",
                 recorder_->path(), st.error().describe());
      rc = kExitOutput;
    }
  }
  if (int w = write_report_files(opts_.out_dir, report, profiles, opts_.quiet); w != kExitOk) rc = w;
  // Detach everything before returning, whatever the caller does next.
  tracer_.reset();
  return rc;
}

int write_report_files(const std::string& out_dir, const nlohmann::json& report,
                       const std::vector<symbolize::StackProfile>& profiles, bool quiet) {
  std::vector<std::string> written;
  int rc = kExitOk;
  if (!out_dir.empty()) {
    auto note = [&](const Status& s, const std::string& file) {
      if (s) {
        written.push_back(out_dir + "/" + file);
        return;
      }
      fmt::print(stderr, "memlens: cannot write {}: {}\n  remedy: free space or choose another --out\n", file,
                 s.error().describe());
      rc = kExitOutput;
    };
    for (const auto& prof : profiles) {
      note(report::write_folded(out_dir, prof), prof.kind + ".folded");
      note(report::write_pprof(out_dir, prof), prof.kind + ".pb.gz");
    }
    note(report::write_report_json(out_dir, report), "report.json");
    note(report::write_html(out_dir, report, profiles), "report.html");
  }
  if (!quiet) fmt::print(stderr, "{}", report::render_summary(report, written));
  return rc;
}

}  // namespace memlens::cli
