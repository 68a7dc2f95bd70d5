// A capture's event stream applied again, through the same TraceBuilder a live trace uses, with a host that
// answers from the capture instead of /proc and probes (docs/capture-format.md, "Replay"). The capture holds
// the events, where memlens started tracking, each process's identity, mappings and timeline samples as the
// host read them, and what the host and the capabilities knew of each process at the end of the trace.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "collect/capture_file.h"
#include "collect/trace_builder.h"
#include "common/result.h"
#include "model/trace.h"

namespace memlens::collect {

// Answers the trace builder from a capture: trace time is the time of the event being applied, a process's
// identity is what the host answered then (the records after the event), and its exit is what the event
// says.
class ReplayHost : public TraceHost {
 public:
  explicit ReplayHost(const model::Trace& trace) : trace_(trace) {}
  // The boot time of what is being applied (an event, a process tracked).
  void at(uint64_t ts_ns) { now_ns_ = ts_ns; }

  double now_s() const override { return trace_.seconds_since_start(now_ns_); }
  // What the host answered for the event or tracking being applied (the records that follow it).
  void answer(ProcessIdentity id) { identities_.push_back(std::move(id)); }
  void answer(AddressSpaceSeed seed) { seeds_.push_back(std::move(seed)); }
  void clear_answers() {
    identities_.clear();
    seeds_.clear();
  }

  void read_new_process(model::Process& p) override { identity(p, true); }
  void refresh_identity(model::Process& p) override { identity(p, false); }
  pid_t parent_of(pid_t) override { return 0; }
  void seed_address_space(model::Process& p) override;
  void attach_probes(model::Process&) override {}
  void exec_probes(model::Process&, double) override {}
  void finish_hold(model::Process&, const ProcEvent&, double) override {}
  void image_loaded(model::Process&) override {}
  void exited(model::Process& p, int wait_status, double t_s) override;
  // ArrayBuffer window notices: the V8 capability's window state is not rebuilt.
  bool capability_event(model::Process&, const Event&) override { return true; }

 private:
  void identity(model::Process& p, bool new_process);

  const model::Trace& trace_;
  uint64_t now_ns_ = 0;
  std::vector<ProcessIdentity> identities_;
  std::vector<AddressSpaceSeed> seeds_;
};

struct ReplayedEvents {
  std::unique_ptr<model::Trace> trace;
  CaptureReadStatus status;
  uint64_t events = 0;
  uint64_t unknown_process_events = 0;   // events of a pid no live process has
  uint64_t malformed_records = 0;        // event, tracking or host records that could not be read
  uint64_t unknown_process_samples = 0;  // samples and end states of a process the replay does not know
  // Processes whose capabilities' end state (record 36) was applied.
  uint64_t capability_end_states = 0;
  bool trace_end = false;  // the trace-end record was read
};

// The trace's info comes from the run record and the trace-end record; the events lost that the trace
// builder counts (of unknown processes, malformed) are its own count of the replayed events.
// Reads the capture at path a chunk at a time (twice: the run's start time first) and applies its events.
// Errors: those of reading the capture (scan_capture_file).
Result<ReplayedEvents> replay_events(const std::string& path);

}  // namespace memlens::collect
