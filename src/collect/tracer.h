// The tracing loop: drains the ring buffer into the model, follows processes as they fork, exec and exit
// (attaching and detaching their uprobes), samples the kernel's per-process figures every interval, and
// counts every lost event by stage.
#pragma once

#include <sys/types.h>

#include <functional>
#include <map>
#include <memory>
#include <optional>

#include "collect/bpf_session.h"
#include "collect/decode.h"
#include "collect/extension.h"
#include "collect/process_probes.h"
#include "collect/trace_builder.h"
#include "model/trace.h"

struct ring_buffer;

namespace memlens::collect {

struct TracerOptions {
  double interval_s = 1.0;
  bool capture_stacks = false;
  uint32_t fault_sample_period = 0;
  uint32_t growth_stack_bytes = 0;            // SessionOptions::growth_stack_bytes
  uint64_t unwind_table_bytes = 32ull << 20;  // SessionOptions::unwind_table_bytes
  uint32_t max_processes = 4096;
  // Hold each new process of the traced tree until its probes are attached (bpf/memlens.bpf.c).
  bool hold = true;
  // Load the capabilities' BPF objects (SessionOptions): off, their extensions cannot be made.
  bool fds = true;
  bool v8 = true;
  // Probe munmap and madvise too (--unmap-probes): exact counts of both, and the model loses an unmapped
  // range at once. Off, unmaps are found in /proc/PID/maps at samples (find_unmapped).
  bool unmap_probes = false;
};

class Tracer : private TraceHost {
 public:
  // Loads the BPF programs and attaches the kernel-side probes.
  static Result<std::unique_ptr<Tracer>> create(const TracerOptions& opts, model::Trace& trace);
  ~Tracer();

  // Starts tracking pid and every process it forks from now on. With attached_late, the process already
  // ran before memlens (attach mode): its existing children are tracked too and its history is unknown.
  Status track_root(pid_t pid, bool attached_late);

  // Drains events for at most timeout_ms and takes a sample when an interval has passed.
  void poll(int timeout_ms);
  // Final drain and final figures of the processes still alive; fills the trace's loss counts.
  void finish();

  bool root_exited() const { return root_exited_; }
  pid_t root_pid() const { return root_pid_; }
  // Called after each interval's sample (the live line).
  void on_sample(std::function<void(const model::Trace&)> f) { on_sample_ = std::move(f); }
  // Called with each decoded event before it is applied (a recording keeps the event stream).
  void on_event(std::function<void(const Event&)> f) { on_event_ = std::move(f); }
  // Called with what the host contributes to the model as it does (a recording keeps it for a replay).
  void on_host_answer(std::function<void(const HostAnswer&)> f) { on_host_answer_ = std::move(f); }
  // Called when memlens starts tracking a process by itself (track_root), before its events are applied.
  void on_track_start(std::function<void(const TrackStart&)> f) { on_track_start_ = std::move(f); }
  // The wait status of the root, when the caller reaped it (run mode) before its exit event arrived.
  void set_root_wait_status(int status);

  BpfSession& session() { return *session_; }
  // Adds a capability (before track_root). The tracer owns it.
  void add_extension(std::unique_ptr<TraceExtension> ext) { extensions_.push_back(std::move(ext)); }
  // Process pid, which memlens holds at its gate, will exec path: every extension prepares for it
  // (TraceExtension::prepare_exec).
  void prepare_exec(pid_t pid, const std::string& path) {
    for (auto& ext : extensions_) ext->prepare_exec(pid, path);
  }

  // Ring-buffer callback entry (public for the C callback trampoline).
  int handle_event(const void* data, size_t size);

 private:
  Tracer(const TracerOptions& opts, model::Trace& trace)
      : opts_(opts), trace_(trace), builder_(trace, *this) {}

  // TraceHost: what the trace builder asks of the live host.
  double now_s() const override { return trace_.seconds_since_start(now_boot_ns()); }
  void read_new_process(model::Process& p) override;
  void refresh_identity(model::Process& p) override;
  pid_t parent_of(pid_t pid) override;
  void seed_address_space(model::Process& p) override;
  void attach_probes(model::Process& p) override;
  void exec_probes(model::Process& p, double t_s) override;
  void finish_hold(model::Process& p, const ProcEvent& e, double ran_since_s) override;
  void image_loaded(model::Process& p) override;
  void exited(model::Process& p, int wait_status, double t_s) override;
  bool capability_event(model::Process& p, const Event& e) override;

  void attach_libc_probes(model::Process& p);
  void retire_probes(pid_t pid);
  void sample();
  void update_from_kernel(model::Process& p);
  // Without munmap's probe: at a sample where p's virtual size or its address-space calls moved since the
  // last look, takes the ranges it no longer maps out of its model (and records them for a replay); the
  // maps read are the sample's (Process::maps_at_sample).
  void find_unmapped(model::Process& p);
  bool munmap_probed(pid_t pid) const;
  // Starts fault sampling of a process that inherits no sampling event (see BpfSession::sample_faults).
  void sample_faults(model::Process& p, bool all_threads);
  void mark_exited(model::Process& p, int wait_status, double t_s, bool from_kernel_event);
  void check_vanished();
  void collect_losses();
  model::Process* start_tracking(const TrackStart& t);
  void read_identity(model::Process& p);
  void answered(const HostAnswer& a) {
    if (on_host_answer_) on_host_answer_(a);
  }
  // Marks p untraced for `what` from now on with `reason`, unless it is gone (a held process killed
  // before it ran has nothing untraced).
  void untraced_from_now(model::Process& p, const std::string& what, const std::string& reason);
  uint64_t now_boot_ns() const;

  TracerOptions opts_;
  model::Trace& trace_;
  TraceBuilder builder_;
  std::unique_ptr<BpfSession> session_;
  ring_buffer* ring_ = nullptr;
  std::map<pid_t, ProcessProbes> probes_;  // by live pid
  // After exec: confirm the probes sit on the new image's libc (the trace time of the exec).
  std::map<pid_t, double> libc_check_pending_;
  struct UnmapLook {
    uint64_t events = 0;
    uint64_t vm_size = 0;
  };
  std::map<pid_t, UnmapLook> unmap_looks_;  // by live pid, since its last seed
  pid_t root_pid_ = 0;
  bool root_exited_ = false;
  uint64_t next_sample_ns_ = 0;
  uint64_t next_tick_ns_ = 0;
  std::function<void(const model::Trace&)> on_sample_;
  std::function<void(const Event&)> on_event_;
  std::function<void(const TrackStart&)> on_track_start_;
  std::function<void(const HostAnswer&)> on_host_answer_;
  std::vector<std::unique_ptr<TraceExtension>> extensions_;
};

}  // namespace memlens::collect
