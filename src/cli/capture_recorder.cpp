#include "cli/capture_recorder.h"

#include <utility>

#include "collect/capture_records.h"
#include "common/clock.h"
#include "common/json_text.h"
#include "report/json_report.h"

namespace memlens::cli {

Result<std::unique_ptr<CaptureRecorder>> CaptureRecorder::create(const std::string& path, uint64_t max_bytes,
                                                                 nlohmann::json options) {
  collect::CaptureWriterOptions wo;
  wo.max_bytes = max_bytes;
  wo.memlens_version = MEMLENS_VERSION;
  auto writer = collect::CaptureWriter::create(path, wo);
  if (!writer) return writer.error();
  return std::unique_ptr<CaptureRecorder>(new CaptureRecorder(path, std::move(*writer), std::move(options)));
}

void CaptureRecorder::note(const Status& s) {
  if (!s && !first_error_) first_error_ = s.error();
}

void CaptureRecorder::event(const collect::Event& e) {
  note(writer_.add(collect::event_record_type(e), collect::encode_event(e), collect::RecordClass::kEvent));
}

void CaptureRecorder::host_answer(const collect::HostAnswer& a) {
  note(writer_.add(collect::host_answer_record_type(a), collect::encode_host_answer(a)));
}

void CaptureRecorder::track_start(const collect::TrackStart& t) {
  note(writer_.add(collect::kRecordTrackStart, collect::encode_track_start(t)));
}

nlohmann::json run_metadata(const model::TraceInfo& info, const nlohmann::json& options) {
  nlohmann::json j;
  j["memlens_version"] = MEMLENS_VERSION;
  j["command"] = info.command;
  if (info.attached_pid) j["attached_pid"] = *info.attached_pid;
  j["host_wide"] = info.host_wide;
  j["started_at"] = info.started_at;
  j["started_boot_ns"] = info.started_boot_ns;
  j["started_unix_ns"] = info.started_unix_ns;
  j["interval_s"] = info.interval_s;
  j["kernel"] = info.kernel;
  j["holding"] = info.holding;
  j["holding_fork"] = info.holding_fork;
  j["options"] = options;
  return j;
}

nlohmann::json trace_end_metadata(const model::TraceInfo& info) {
  nlohmann::json j;
  j["duration_s"] = info.duration_s;
  j["stop_reason"] = info.stop_reason;
  j["probes_attached"] = info.probes_attached;
  j["probes_skipped"] = nlohmann::json::array();
  for (const auto& s : info.probes_skipped)
    j["probes_skipped"].push_back({{"name", s.name}, {"reason", s.reason}});
  j["loss_by_source"] = nlohmann::json::object();
  for (const auto& [source, l] : info.loss_by_source)
    for (const auto& [cause, n] : l.by_cause()) j["loss_by_source"][source][cause] = n;
  j["stacks_lost"] = info.stacks_lost;
  j["events_received"] = info.events_received;
  if (info.unwind.enabled) {
    const auto& u = info.unwind;
    nlohmann::json failed = nlohmann::json::array();
    for (const auto& f : u.failed) failed.push_back({{"file", f.file}, {"reason", f.reason}});
    j["unwind"] = {{"budget_bytes", u.budget_bytes},    {"used_bytes", u.used_bytes}, {"files", u.files},
                   {"compile_ms", u.compile_ms},        {"failed", failed},           {"walks", u.walks},
                   {"prepared_files", u.prepared_files}};
  }
  if (info.host_wide) {
    nlohmann::json missed = nlohmann::json::array();
    for (const auto& m : info.missed_processes)
      missed.push_back({{"pid", m.pid}, {"exe", m.exe}, {"at_s", m.at_s}, {"reason", m.reason}});
    j["discovery"] = {{"source", info.discovery},
                      {"node_started", info.node_started},
                      {"overruns", info.discovery_overruns},
                      {"unclassified", info.discovery_unclassified},
                      {"missed", missed}};
  }
  return j;
}

void CaptureRecorder::sample(model::Trace& trace) {
  if (!run_written_) {
    run_written_ = true;
    note(writer_.add(collect::kRecordRun, json_text(run_metadata(trace.info, options_))));
  }
  double now = trace.seconds_since_start(boot_ns());
  if (last_snapshot_s_ < 0 || now - last_snapshot_s_ >= kSnapshotEveryS) {
    last_snapshot_s_ = now;
    // The trace as if it ended now, for the time of the report; the live trace goes on unchanged.
    double duration = std::exchange(trace.info.duration_s, now);
    std::string reason = std::exchange(trace.info.stop_reason, kSnapshotStopReason);
    nlohmann::json report = report::build_report(trace, {});
    trace.info.duration_s = duration;
    trace.info.stop_reason = std::move(reason);
    report["profiles"] = report::profiles_summary({});
    // Expendable once the size bound stops events: the end of the trace writes the final report.
    note(writer_.add(collect::kRecordReportSnapshot, json_text(report), collect::RecordClass::kEvent));
  }
  note(writer_.flush());
}

Status CaptureRecorder::finish(const model::TraceInfo& info,
                               const std::vector<symbolize::StackProfile>& profiles) {
  if (!run_written_) {
    run_written_ = true;
    note(writer_.add(collect::kRecordRun, json_text(run_metadata(info, options_))));
  }
  note(writer_.add(collect::kRecordTraceEnd, json_text(trace_end_metadata(info))));
  for (const auto& p : profiles)
    note(writer_.add(collect::kRecordStackProfile, collect::encode_stack_profile(p)));
  note(writer_.close());
  if (first_error_) return *first_error_;
  return {};
}

}  // namespace memlens::cli
