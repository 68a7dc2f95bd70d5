#include "collect/replay.h"

#include <nlohmann/json.hpp>
#include <optional>
#include <variant>

#include "collect/capture_records.h"
#include "collect/record_json.h"

namespace memlens::collect {

void ReplayHost::exited(model::Process& p, int wait_status, double t_s) {
  // What the live host does with an exit event that the event carries: the status and the time.
  if (!p.alive()) return;
  p.exit_status = decode_wait_status(wait_status);
  p.exited_at_s = t_s;
  p.untraced.end_all(t_s);
}

void ReplayHost::identity(model::Process& p, bool new_process) {
  for (const auto& id : identities_)
    if (id.pid == p.pid() && id.new_process == new_process) {
      apply_identity(p, id);
      return;
    }
}

void ReplayHost::seed_address_space(model::Process& p) {
  for (auto it = seeds_.begin(); it != seeds_.end(); ++it)
    if (it->pid == p.pid()) {
      p.address_space.seed(it->maps, it->now_ns);
      seeds_.erase(it);  // an exec seeds again: each answer once
      return;
    }
}

namespace {

template <typename T>
void take(const nlohmann::json& j, const char* key, T& to) {
  if (auto it = j.find(key); it != j.end()) {
    try {
      to = it->get<T>();
    } catch (const nlohmann::json::exception&) {  // of another type: left as it was
    }
  }
}

// The run record (what was traced, when) and the trace-end record (how it ended), into the trace's info.
bool take_run(std::string_view payload, model::TraceInfo& info) {
  auto j = nlohmann::json::parse(payload, nullptr, false);
  if (!j.is_object() || !safe_numbers(j)) return false;
  take(j, "command", info.command);
  if (j.contains("attached_pid")) take(j, "attached_pid", info.attached_pid.emplace());
  take(j, "host_wide", info.host_wide);
  take(j, "started_at", info.started_at);
  take(j, "started_boot_ns", info.started_boot_ns);
  take(j, "started_unix_ns", info.started_unix_ns);
  take(j, "interval_s", info.interval_s);
  take(j, "kernel", info.kernel);
  take(j, "holding", info.holding);
  take(j, "holding_fork", info.holding_fork);
  return true;
}

// False when the record is not a JSON object or holds a number out of range: nothing taken.
bool take_end(std::string_view payload, model::TraceInfo& info) {
  auto j = nlohmann::json::parse(payload, nullptr, false);
  if (!j.is_object() || !safe_numbers(j)) return false;
  take(j, "duration_s", info.duration_s);
  take(j, "stop_reason", info.stop_reason);
  take(j, "probes_attached", info.probes_attached);
  take(j, "stacks_lost", info.stacks_lost);
  take(j, "events_received", info.events_received);
  if (auto it = j.find("probes_skipped"); it != j.end() && it->is_array())
    for (const auto& s : *it)
      if (s.is_object()) info.probes_skipped.push_back({string_at(s, "name"), string_at(s, "reason")});
  if (auto it = j.find("unwind"); it != j.end() && it->is_object()) {
    auto& u = info.unwind;
    u.enabled = true;
    take(*it, "budget_bytes", u.budget_bytes);
    take(*it, "used_bytes", u.used_bytes);
    take(*it, "files", u.files);
    take(*it, "compile_ms", u.compile_ms);
    take(*it, "prepared_files", u.prepared_files);
    take(*it, "walks", u.walks);
    if (auto f = it->find("failed"); f != it->end() && f->is_array())
      for (const auto& x : *f)
        if (x.is_object()) u.failed.push_back({string_at(x, "file"), string_at(x, "reason")});
  }
  if (auto it = j.find("discovery"); it != j.end() && it->is_object()) {
    take(*it, "source", info.discovery);
    take(*it, "node_started", info.node_started);
    take(*it, "overruns", info.discovery_overruns);
    take(*it, "unclassified", info.discovery_unclassified);
    if (auto m = it->find("missed"); m != it->end() && m->is_array())
      for (const auto& x : *m)
        if (x.is_object()) {
          model::MissedProcess m{0, string_at(x, "exe"), 0, string_at(x, "reason")};
          take(x, "pid", m.pid);
          take(x, "at_s", m.at_s);
          info.missed_processes.push_back(std::move(m));
        }
  }
  if (auto it = j.find("loss_by_source"); it != j.end() && it->is_object())
    for (const auto& [source, l] : it->items()) {
      if (!l.is_object()) continue;
      auto& loss = info.loss_by_source[source];
      take(l, "ring_full", loss.ring_full);
      take(l, "map_full", loss.map_full);
      take(l, "malformed", loss.malformed);
      take(l, "unknown_process", loss.unknown_process);
      take(l, "unpaired", loss.unpaired);
    }
  return true;
}

}  // namespace

Result<ReplayedEvents> replay_events(const std::string& path) {
  ReplayedEvents out;
  out.trace = std::make_unique<model::Trace>();
  model::Trace& trace = *out.trace;
  // Trace time counts from the run's start, which its metadata record (written at the first sample) holds.
  auto first = scan_capture_file(path, [&](uint16_t type, std::string_view payload) {
    if (type == kRecordRun && !take_run(payload, trace.info)) ++out.malformed_records;
  });
  if (!first) return first.error();
  ReplayHost host(trace);
  TraceBuilder builder(trace, host);
  // The host's answers to an event follow it in the capture: an event (or a tracking start) is applied
  // once the records after it are read, at the next event or sample.
  std::optional<std::variant<TrackStart, Event>> pending;
  auto apply_pending = [&]() {
    if (!pending) return;
    if (const auto* t = std::get_if<TrackStart>(&*pending)) {
      host.at(t->ts_ns);
      // The live tracer seeds a process it tracks by itself (the builder seeds those it learns of).
      if (auto* p = builder.track(*t)) host.seed_address_space(*p);
    } else {
      const auto& e = std::get<Event>(*pending);
      host.at(event_ts_ns(e));
      builder.apply(e);
    }
    pending.reset();
    host.clear_answers();
  };
  auto st = scan_capture_file(path, [&](uint16_t type, std::string_view payload) {
    if (type == kRecordTraceEnd) {
      apply_pending();
      if (take_end(payload, trace.info))
        out.trace_end = true;
      else
        ++out.malformed_records;
    } else if (type == kRecordTrackStart) {
      auto t = decode_track_start(payload);
      if (!t) {
        ++out.malformed_records;
        return;
      }
      apply_pending();
      pending = *t;
    } else if (is_event_record(type)) {
      auto e = decode_event_record(type, payload);
      if (!e) {
        ++out.malformed_records;
        return;
      }
      apply_pending();
      ++out.events;
      pending = std::move(*e);
    } else if (is_host_answer_record(type)) {
      auto a = decode_host_answer(type, payload);
      if (!a) {
        ++out.malformed_records;
        return;
      }
      if (auto* id = std::get_if<ProcessIdentity>(&*a)) {
        host.answer(std::move(*id));
        return;
      }
      if (auto* seed = std::get_if<AddressSpaceSeed>(&*a)) {
        host.answer(std::move(*seed));
        return;
      }
      // A sample (and the unmapped ranges found at it) is taken between events (or at an exit, after its
      // event), an end state at the end: what comes before it applies first.
      apply_pending();
      auto* p = std::visit(
          [&](const auto& v) {
            return trace.processes.find({v.pid, model::start_time_ns_to_ticks(v.start_time_ns)});
          },
          *a);
      if (!p)
        ++out.unknown_process_samples;
      else if (const auto* s = std::get_if<ProcessSample>(&*a))
        apply_sample(*p, *s);
      else if (const auto* e = std::get_if<ProcessEndState>(&*a))
        apply_end_state(*p, *e);
      else if (auto* c = std::get_if<CapabilitiesEndState>(&*a)) {
        apply_capabilities_end_state(*p, std::move(*c));
        ++out.capability_end_states;
      } else if (const auto* u = std::get_if<AddressSpaceUnmapped>(&*a))
        apply_unmapped(*p, *u);
      else
        apply_v8_end_state(*p, std::get<V8EndState>(*a));
    }
  });
  if (!st) return st.error();
  apply_pending();
  out.status = std::move(*st);
  out.unknown_process_events = builder.unknown_process_events();
  // What the trace builder counts, it counts again here: the recorded figures give way to the replay's.
  trace.info.loss_by_source["tracer"].unknown_process = builder.unknown_process_events();
  for (const auto& [source, n] : builder.malformed_by_source())
    trace.info.loss_by_source[source].malformed = n;
  return out;
}

}  // namespace memlens::collect
