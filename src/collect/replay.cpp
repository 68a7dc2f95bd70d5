#include "collect/replay.h"

#include <nlohmann/json.hpp>

#include "collect/capture_records.h"

namespace memlens::collect {

void ReplayHost::exited(model::Process& p, int wait_status, double t_s) {
  // What the live host does with an exit event that the event carries: the status and the time.
  if (!p.alive()) return;
  p.exit_status = decode_wait_status(wait_status);
  p.exited_at_s = t_s;
  p.untraced.end_all(t_s);
}

Result<ReplayedEvents> replay_events(const std::string& path) {
  ReplayedEvents out;
  out.trace = std::make_unique<model::Trace>();
  model::Trace& trace = *out.trace;
  // Trace time counts from the run's start, which its metadata record (written at the first sample) holds.
  auto first = scan_capture_file(path, [&](uint16_t type, std::string_view payload) {
    if (type != kRecordRun) return;
    auto j = nlohmann::json::parse(payload, nullptr, false);
    if (j.is_object() && j.contains("started_boot_ns") && j["started_boot_ns"].is_number_unsigned())
      trace.info.started_boot_ns = j["started_boot_ns"].get<uint64_t>();
  });
  if (!first) return first.error();
  ReplayHost host(trace);
  TraceBuilder builder(trace, host);
  auto st = scan_capture_file(path, [&](uint16_t type, std::string_view payload) {
    if (type == kRecordTrackStart) {
      auto t = decode_track_start(payload);
      if (!t) {
        ++out.malformed_records;
        return;
      }
      host.at(t->ts_ns);
      builder.track(*t);
      return;
    }
    if (!is_event_record(type)) return;
    auto e = decode_event_record(type, payload);
    if (!e) {
      ++out.malformed_records;
      return;
    }
    ++out.events;
    host.at(event_ts_ns(*e));
    builder.apply(*e);
  });
  if (!st) return st.error();
  out.status = std::move(*st);
  out.unknown_process_events = builder.unknown_process_events();
  return out;
}

}  // namespace memlens::collect
