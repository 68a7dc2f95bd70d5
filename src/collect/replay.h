// A capture's event stream applied again, through the same TraceBuilder a live trace uses, with a host that
// answers from the capture instead of /proc and probes (docs/capture-format.md, "Replay"). The capture holds
// the events and where memlens started tracking; what else the live host contributes (identity, maps,
// samples, the capabilities' state) is not in it yet, so the trace rebuilt here holds what the events
// decide: the processes and their parents, exits, address-space calls and their stacks, GCs, fds.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "collect/capture_file.h"
#include "collect/trace_builder.h"
#include "common/result.h"
#include "model/trace.h"

namespace memlens::collect {

// Answers the trace builder from a capture: trace time is the time of the event being applied, and the
// only figures a process gets are those its events carry.
class ReplayHost : public TraceHost {
 public:
  explicit ReplayHost(const model::Trace& trace) : trace_(trace) {}
  // The boot time of what is being applied (an event, a process tracked).
  void at(uint64_t ts_ns) { now_ns_ = ts_ns; }

  double now_s() const override { return trace_.seconds_since_start(now_ns_); }
  void read_new_process(model::Process&) override {}
  void refresh_identity(model::Process&) override {}
  pid_t parent_of(pid_t) override { return 0; }
  void seed_address_space(model::Process&) override {}
  void attach_probes(model::Process&) override {}
  void exec_probes(model::Process&, double) override {}
  void finish_hold(model::Process&, const ProcEvent&, double) override {}
  void image_loaded(model::Process&) override {}
  void exited(model::Process& p, int wait_status, double t_s) override;
  // ArrayBuffer window notices: the V8 capability's window state is not rebuilt.
  bool capability_event(model::Process&, const Event&) override { return true; }

 private:
  const model::Trace& trace_;
  uint64_t now_ns_ = 0;
};

struct ReplayedEvents {
  std::unique_ptr<model::Trace> trace;
  CaptureReadStatus status;
  uint64_t events = 0;
  uint64_t unknown_process_events = 0;  // events of a pid no live process has
  uint64_t malformed_records = 0;       // event or tracking records that could not be read
};

// Reads the capture at path a chunk at a time (twice: the run's start time first) and applies its events.
// Errors: those of reading the capture (scan_capture_file).
Result<ReplayedEvents> replay_events(const std::string& path);

}  // namespace memlens::collect
