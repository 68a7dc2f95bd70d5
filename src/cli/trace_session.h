// What `run` and `attach` share: create the tracer, loop until a stop condition, finish, then write the
// report files and print the summary.
#pragma once

#include <sys/types.h>

#include <functional>
#include <memory>

#include "cli/capture_recorder.h"
#include "cli/commands.h"
#include "collect/stacks_extension.h"
#include "collect/tracer.h"
#include "model/trace.h"

namespace memlens::cli {

class TraceSession {
 public:
  explicit TraceSession(const TraceOptions& opts);
  // Loads BPF and attaches the kernel probes; prints the error and returns an exit code on failure.
  int start();
  int track_root(pid_t pid, bool attached_late);

  // Loops until the root exits, the duration passes, or a signal. `poll_child` (run mode) reaps the
  // child and returns true once it has exited; `on_signal` (run mode) forwards the signal.
  void loop(const std::function<bool()>& poll_child, const std::function<void(int)>& on_signal);

  // Finishes the trace, writes the report files, prints the summary. Returns kExitOk or kExitOutput.
  int finish_and_report();

  model::Trace& trace() { return trace_; }
  collect::Tracer& tracer() { return *tracer_; }
  collect::StacksExtension* stacks() { return stacks_; }  // null without stack capture

 private:
  TraceOptions opts_;
  model::Trace trace_;
  std::unique_ptr<collect::Tracer> tracer_;
  collect::StacksExtension* stacks_ = nullptr;  // owned by the tracer
  std::unique_ptr<CaptureRecorder> recorder_;   // record: the capture being written
};

// Writes the report files (stack profiles, report.json, report.html) into out_dir (none when empty) and
// prints the summary unless quiet; `live` and `report` both end here. kExitOk or kExitOutput.
int write_report_files(const std::string& out_dir, const nlohmann::json& report,
                       const std::vector<symbolize::StackProfile>& profiles, bool quiet);

// A trace lowers memlens's own oom_score_adj (the OOM killer must not pick the tracer); a command it
// starts gets back the score memlens inherited. Async-signal-safe, for the child between fork and exec.
void restore_inherited_oom_score();

}  // namespace memlens::cli
