// `memlens record`: what a trace writes to its capture (docs/capture-format.md) besides the report files:
// the decoded event stream as it arrives with what the live host answered beside it, the run's metadata,
// a snapshot of the analysed trace now and then (what a capture cut short reports), and at the end the
// trace's end and the named stack profiles; `memlens report` rebuilds the trace from them.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "collect/capture_file.h"
#include "collect/decode.h"
#include "collect/trace_builder.h"
#include "common/result.h"
#include "model/trace.h"
#include "symbolize/stack_profile.h"

namespace memlens::cli {

// The stop reason of a snapshot: what a report of a capture cut short says of its end.
inline constexpr const char* kSnapshotStopReason = "recording cut short after this point";

class CaptureRecorder {
 public:
  // A snapshot of the analysed trace is taken at the first sample and then at most this often: a capture
  // cut short loses at most this much of the trace's end.
  static constexpr double kSnapshotEveryS = 5.0;

  // Creates the capture file (refused when it exists: never overwritten).
  // options: how the trace was asked for (the run metadata record keeps them).
  static Result<std::unique_ptr<CaptureRecorder>> create(const std::string& path, uint64_t max_bytes,
                                                         nlohmann::json options);

  void event(const collect::Event& e);
  // What the live host contributed to the model (a process's identity, a sample).
  void host_answer(const collect::HostAnswer& a);
  // A process memlens started tracking by itself (the root; attach: its descendants then).
  void track_start(const collect::TrackStart& t);
  // After each interval's sample: the run's metadata (once), a snapshot when due, and a flush, so that a
  // killed memlens loses at most one interval.
  void sample(model::Trace& trace);
  // The trace's end and its named stack profiles, then the end record (the processes' end states came
  // before, from the tracer). The first write error of the trace, if any.
  Status finish(const model::TraceInfo& info, const std::vector<symbolize::StackProfile>& profiles);

  const std::string& path() const { return path_; }
  // Records the size bound (--max-size) dropped so far, by class.
  uint64_t events_dropped() const { return writer_.events_dropped(); }
  uint64_t others_dropped() const { return writer_.others_dropped(); }
  uint64_t oversize_dropped() const { return writer_.oversize_dropped(); }

 private:
  CaptureRecorder(std::string path, collect::CaptureWriter writer, nlohmann::json options)
      : path_(std::move(path)), writer_(std::move(writer)), options_(std::move(options)) {}
  void note(const Status& s);

  std::string path_;
  collect::CaptureWriter writer_;
  nlohmann::json options_;
  bool run_written_ = false;
  double last_snapshot_s_ = -1;
  std::optional<Error> first_error_;
};

// The run's metadata record: what was traced, how, by which memlens on which kernel.
nlohmann::json run_metadata(const model::TraceInfo& info, const nlohmann::json& options);
// The trace-end record: how long the trace ran, why it stopped, its probes and its losses.
nlohmann::json trace_end_metadata(const model::TraceInfo& info);

}  // namespace memlens::cli
