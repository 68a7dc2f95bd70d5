// memlens report FILE -o DIR: the report files of a capture (docs/capture-format.md), on any machine. The
// trace is rebuilt from the capture's event stream through the trace builder a live trace uses, with what
// the host and the capabilities recorded of each process, and analysed again; the stacks were named at
// record time. So neither root nor the traced binaries are needed, and two reports of one capture are the
// same bytes. A capture of format 1 reports the analysed trace it holds; one cut short before the end of
// its trace, the last snapshot taken during it.
#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/trace_session.h"
#include "collect/capture_records.h"
#include "collect/replay.h"
#include "common/safe_file.h"
#include "report/json_report.h"

namespace memlens::cli {

namespace {

struct CaptureContents {
  // JSON text, checked as it is read and parsed once at the end: a report is several times larger as a
  // parsed tree than as text, and a capture holds a snapshot every few seconds.
  std::optional<std::string> final_report;  // the end of the trace
  std::optional<std::string> snapshot;      // the last taken during the trace
  std::vector<symbolize::StackProfile> profiles;
  uint64_t unknown_records = 0;    // from a later memlens: skipped
  uint64_t malformed_records = 0;  // skipped
};

// Whether text is a JSON object (without building it).
bool is_json_object(std::string_view text) {
  auto first = text.find_first_not_of(" \t\r\n");
  return first != std::string_view::npos && text[first] == '{' && nlohmann::json::accept(text);
}

// Takes what a report needs from each record as the capture is read, a chunk at a time: a large capture
// costs no more memory than its trace's report and profiles.
void take(CaptureContents& c, uint16_t type, std::string_view payload) {
  switch (type) {
    case collect::kRecordReport:
    case collect::kRecordReportSnapshot: {
      if (!is_json_object(payload))
        ++c.malformed_records;
      else
        (type == collect::kRecordReport ? c.final_report : c.snapshot) = std::string(payload);
      break;
    }
    case collect::kRecordStackProfile: {
      auto p = collect::decode_stack_profile(payload);
      if (p)
        c.profiles.push_back(std::move(*p));
      else
        ++c.malformed_records;
      break;
    }
    case collect::kRecordTrackStart:
    case collect::kRecordTraceEnd:
    case collect::kRecordRun:
      break;
    default:
      // The event stream and the host's answers are replayed (collect::replay_events).
      if (!collect::is_event_record(type) && !collect::is_host_answer_record(type)) ++c.unknown_records;
  }
}

}  // namespace

int report_command(const std::string& capture_path, const std::string& out_dir, bool quiet) {
  CaptureContents c;
  auto status = collect::scan_capture_file(
      capture_path, [&](uint16_t type, std::string_view payload) { take(c, type, payload); });
  if (!status) {
    fmt::print(stderr, "memlens report: {}\n", status.error().describe());
    return kExitCapture;
  }
  const auto& st = *status;
  // Format 2 on: the trace rebuilt from the event stream, once its end was read (a process whose end state
  // could not be read lacks what it held, and the malformed records are counted). Format 1 held the
  // analysed trace. Either cut short: the last snapshot taken during the trace.
  std::optional<collect::ReplayedEvents> replayed;
  uint64_t unknown_process_records = 0;
  if (st.format_version >= 2) {
    auto r = collect::replay_events(capture_path);
    if (!r) {  // read once already: the file changed or went since
      fmt::print(stderr, "memlens report: {}\n", r.error().describe());
      return kExitCapture;
    }
    if (r->trace_end) {
      c.malformed_records += r->malformed_records;  // event and host records the replay could not read
      unknown_process_records = r->unknown_process_samples;
      replayed = std::move(*r);
    }
  }
  bool from_snapshot = !replayed && !c.final_report;
  if (from_snapshot && !c.snapshot) {
    fmt::print(stderr,
               "memlens report: {} holds no trace to report: {}\n  remedy: record again, for at least one "
               "sample interval\n",
               capture_path,
               st.complete
                   ? "its recording ended before the first sample"
                   : "its recording was cut short before the first sample (" + st.stopped_because + ")");
    return kExitCapture;
  }
  nlohmann::json report;
  if (replayed) {
    report = report::build_report(*replayed->trace, c.profiles);
    report["profiles"] = report::profiles_summary(c.profiles);
    replayed.reset();
  } else if (from_snapshot) {
    report = nlohmann::json::parse(*c.snapshot);
    c.profiles.clear();  // the stacks are named only at the end of a trace
  } else {
    report = nlohmann::json::parse(*c.final_report);
  }
  c.snapshot.reset();
  c.final_report.reset();
  // A capture read in full adds nothing: its report is the live trace's, byte for byte. Otherwise the
  // report says what it lacks.
  bool bounded = st.events_dropped || st.others_dropped;  // --max-size dropped records
  bool whole = !from_snapshot && st.complete && st.corrupt_chunks == 0 && c.malformed_records == 0 &&
               !bounded && st.oversize_dropped == 0 && unknown_process_records == 0;
  if (!whole || c.unknown_records) {
    nlohmann::json cap;
    cap["complete"] = st.complete;
    if (!st.complete) cap["cut_short"] = st.stopped_because;
    cap["event_records_dropped_by_size_bound"] = st.events_dropped;
    cap["other_records_dropped_by_size_bound"] = st.others_dropped;
    cap["records_over_chunk_limit_dropped"] = st.oversize_dropped;
    cap["records_of_unknown_processes"] = unknown_process_records;
    cap["reported_from"] = from_snapshot ? "last snapshot taken during the trace" : "end of trace";
    cap["corrupt_chunks"] = st.corrupt_chunks;
    cap["malformed_records"] = c.malformed_records;
    cap["unknown_records"] = c.unknown_records;
    report["capture"] = cap;
    if (!st.complete && from_snapshot)
      fmt::print(stderr,
                 "memlens report: this capture was {}; this report covers the trace up to the last snapshot "
                 "memlens took, without stack profiles\n",
                 st.stopped_because);
    else if (!st.complete)
      fmt::print(stderr, "memlens report: this capture was {}; its end of trace was read before that\n",
                 st.stopped_because);
    else if (from_snapshot)
      fmt::print(stderr,
                 "memlens report: the capture lost its end of trace: this report is its last snapshot\n");
    if (bounded)
      fmt::print(
          stderr,
          "memlens report: the capture's size bound (--max-size) dropped {} event record(s) and {} other "
          "record(s) while recording: the report lacks what they held (figures sampled from /proc are "
          "kept longest)\n",
          st.events_dropped, st.others_dropped);
    if (st.oversize_dropped)
      fmt::print(stderr,
                 "memlens report: {} record(s) larger than a capture chunk holds ({} MiB) were dropped while "
                 "recording: the report lacks what they held (a process's whole fd table or JS heap state)\n",
                 st.oversize_dropped, collect::kMaxChunkBytes >> 20);
    if (unknown_process_records)
      fmt::print(stderr,
                 "memlens report: {} sample or end-state record(s) name a process whose start the capture "
                 "lacks (its events were dropped): skipped\n",
                 unknown_process_records);
    if (st.corrupt_chunks)
      fmt::print(stderr, "memlens report: {} damaged chunk(s) of the capture skipped\n", st.corrupt_chunks);
    if (c.malformed_records)
      fmt::print(stderr, "memlens report: {} malformed record(s) skipped\n", c.malformed_records);
    if (c.unknown_records)
      fmt::print(stderr, "memlens report: {} record(s) of a newer memlens skipped (written by memlens {})\n",
                 c.unknown_records, st.memlens_version);
  }
  if (!out_dir.empty()) {
    if (auto s = prepare_output_directory(out_dir); !s) {
      fmt::print(stderr, "memlens report: {}\n  remedy: choose another -o directory\n", s.error().describe());
      return kExitOutput;
    }
  }
  return write_report_files(out_dir, report, c.profiles, quiet);
}

}  // namespace memlens::cli
