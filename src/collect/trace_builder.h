// Applies decoded events (collect/decode.h) to the model. What an event means for the model is decided here;
// what it needs from the live host (identity and maps read from /proc, probes to attach, a held process to
// release) is asked of a TraceHost. The live tracer is one host; a test's scripted host is another, and a
// replay's would answer from what a capture recorded.
#pragma once

#include <sys/types.h>

#include <map>
#include <string>
#include <variant>
#include <vector>

#include "collect/decode.h"
#include "model/process.h"
#include "model/trace.h"
#include "proc/procfs.h"

namespace memlens::collect {

// What is untraced when a process's address-space calls are not seen (model/loss.h, UntracedTime).
inline constexpr const char* kAddressSpace = "address space";

// What building a trace needs from the host it runs on.
class TraceHost {
 public:
  virtual ~TraceHost() = default;
  // Trace time now.
  virtual double now_s() const = 0;
  // Tracking of p starts: its identity and counters as they are now (comm, exe, cmdline, faults so far).
  virtual void read_new_process(model::Process& p) = 0;
  // p exec'd: its new identity.
  virtual void refresh_identity(model::Process& p) = 0;
  // The parent of a live pid, 0 when unknown.
  virtual pid_t parent_of(pid_t pid) = 0;
  // p's mappings as they are now.
  virtual void seed_address_space(model::Process& p) = 0;
  // Attach what p needs traced (a new process: the C library's probes, each capability's).
  virtual void attach_probes(model::Process& p) = 0;
  // p exec'd at trace time t_s: probe its new image.
  virtual void exec_probes(model::Process& p, double t_s) = 0;
  // The end of a fork or exec: release p if the kernel held it, else count the time it ran unprobed
  // (since ran_since_s) as untraced.
  virtual void finish_hold(model::Process& p, const ProcEvent& e, double ran_since_s) = 0;
  // p's first address-space call after an exec: its image is loaded.
  virtual void image_loaded(model::Process& p) = 0;
  // p exited at t_s (its kernel exit event): its last figures, its probes detached.
  virtual void exited(model::Process& p, int wait_status, double t_s) = 0;
  // An event a capability consumes by itself (ArrayBuffer window notices); false when it is malformed.
  virtual bool capability_event(model::Process& p, const Event& e) = 0;
};

// A process memlens starts tracking by itself rather than from an event: the root of a trace, and in attach
// mode the descendants it already has. A capture records it where it happened in the event stream.
struct TrackStart {
  uint64_t ts_ns = 0;  // CLOCK_BOOTTIME when tracking began
  pid_t pid = 0;
  pid_t ppid = 0;
  uint64_t start_time_ns = 0;
  bool attached_late = false;
  bool before_command_exec = false;  // memlens's own child, which then execs the command (run)
};

// What the live host read of a process when tracking began (its identity and fault counters then), or
// after an exec (its identity only).
struct ProcessIdentity {
  pid_t pid = 0;
  uint64_t start_time_ns = 0;
  bool new_process = false;
  double first_seen_s = 0;  // when tracking began (new_process)
  std::string comm, exe;
  std::vector<std::string> cmdline;
  uint64_t minflt_at_start = 0, majflt_at_start = 0;
  uint64_t thread_minflt_at_start = 0, thread_majflt_at_start = 0;
};
ProcessIdentity identity_of(const model::Process& p, bool new_process);
void apply_identity(model::Process& p, const ProcessIdentity& id);

// A timeline sample of a process as the live host took it (each interval, and at its exit), with the
// process's kernel figures then.
struct ProcessSample {
  pid_t pid = 0;
  uint64_t start_time_ns = 0;
  model::Sample sample;
  uint64_t rss_peak_bytes = 0, minflt = 0, majflt = 0, faults_user = 0, faults_kernel = 0;
  uint32_t fault_sample_period = 0;
  bool has_kernel_fault_counts = false;
  uint64_t lost_ring_full = 0, lost_map_full = 0;  // the kernel's, for this process
  // The last sample, taken at its exit: how the exit was seen (its kernel event, or the process found gone
  // or reaped first) and the wait status then.
  bool at_exit = false;
  bool exit_event = false;
  int32_t wait_status = 0;
  // Not a sample: the figures of a process still alive at the end of the trace, read then.
  bool figures_only = false;
};
ProcessSample sample_of(const model::Process& p, const model::Sample& s);
// Appends the sample (unless figures_only) and sets p's figures; a last sample taken without its kernel exit
// event marks p exited.
void apply_sample(model::Process& p, const ProcessSample& s);

// p's mappings as the host read them (when tracking began, at each exec), at its boot time now_ns.
struct AddressSpaceSeed {
  pid_t pid = 0;
  uint64_t start_time_ns = 0;
  uint64_t now_ns = 0;
  std::vector<proc::MapEntry> maps;
};

// The ranges the live host found unmapped at a sample that p's model still held (model::AddressSpace::
// unmapped_in), at its boot time now_ns: without munmap's probe (--unmap-probes), how the model learns of
// unmaps. Each range is (start, length).
struct AddressSpaceUnmapped {
  pid_t pid = 0;
  uint64_t start_time_ns = 0;
  uint64_t now_ns = 0;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
};
void apply_unmapped(model::Process& p, const AddressSpaceUnmapped& u);

// What the host and the capabilities noted of a process, as it stands at the end of the trace: its notes,
// holds, the time it ran untraced and why, and its events lost by source.
struct ProcessEndState {
  pid_t pid = 0;
  uint64_t start_time_ns = 0;
  std::vector<std::string> notes;
  uint32_t holds = 0;
  double held_s = 0;
  double untraced_s = 0;        // up to its exit, or the end of the trace
  std::string untraced_reason;  // empty: never untraced
  std::map<std::string, model::EventLoss> lost_by_source;
};
ProcessEndState end_state_of(const model::Process& p, double end_s);
void apply_end_state(model::Process& p, const ProcessEndState& s);

// What the V8 capability knew of a process at the end of the trace, its GCs aside (those are events).
struct V8EndState {
  pid_t pid = 0;
  uint64_t start_time_ns = 0;
  model::V8State v8;  // gcs left empty
};
V8EndState v8_end_state_of(const model::Process& p);
void apply_v8_end_state(model::Process& p, const V8EndState& s);

// What the capabilities built of a process beyond its events and samples, as it stands at the end of the
// trace: its fd table (entries, totals, series, opening stacks and their names), the attribution of its
// resident bytes and its limits, V8's own view (--js-objects) and its stack tables. The fd events are in
// the capture too, but the table also depends on what /proc listed at each sample.
struct CapabilitiesEndState {
  pid_t pid = 0;
  uint64_t start_time_ns = 0;
  model::FdTable fds;
  model::AttributionState attribution;
  model::JsObjectsState js_objects;
  model::StackTable stacks;
};
CapabilitiesEndState capabilities_end_state_of(const model::Process& p);
void apply_capabilities_end_state(model::Process& p, CapabilitiesEndState s);

// What a process's model notes when its exit was seen without the kernel's exit event.
inline constexpr const char* kExitWithoutEvent =
    "exit seen without its kernel event; exit status may be unknown";

// What the live host contributes to the model, as a capture records it for a replay.
using HostAnswer = std::variant<ProcessIdentity, ProcessSample, AddressSpaceSeed, ProcessEndState, V8EndState,
                                CapabilitiesEndState, AddressSpaceUnmapped>;

class TraceBuilder {
 public:
  TraceBuilder(model::Trace& trace, TraceHost& host) : trace_(trace), host_(host) {}

  void apply(const Event& e);
  // A record the decoder could not read (collect/decode.h).
  void malformed(const Malformed& m) { ++malformed_[event_source(m.type)]; }

  // Starts tracking the process (pid, start time) unless it is tracked already.
  model::Process* track(pid_t pid, pid_t ppid, uint64_t start_time_ns, bool attached_late);
  model::Process* track(const TrackStart& t);

  // Events of a pid no live process has.
  uint64_t unknown_process_events() const { return unknown_process_events_; }
  // Malformed records, by loss source.
  const std::map<std::string, uint64_t>& malformed_by_source() const { return malformed_; }

 private:
  void apply_proc(const ProcEvent& e);

  model::Trace& trace_;
  TraceHost& host_;
  uint64_t unknown_process_events_ = 0;
  std::map<std::string, uint64_t> malformed_;
};

// A wait status as the shell reports it: the exit code, or 128 + the signal that killed the process.
int decode_wait_status(int status);

// p's fault counts from its exit event: every thread's whole count, less what its threads had taken before
// tracking began.
void apply_exit_faults(model::Process& p, const ProcEvent& e);

// An address-space call of p: its mappings, its break and the stacks that grew it.
void apply_mm_event(model::Process& p, const MmEvent& e);

// A completed GC of p: its GC history, its heap figure, the stack that triggered it.
void apply_gc_event(const model::Trace& trace, model::Process& p, const GcEvent& e);

}  // namespace memlens::collect
