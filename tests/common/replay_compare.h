// A capture's event stream applied again through the trace builder with the replay host (collect/replay),
// checked against the live trace's own report.json, written by the same report code: what the events and
// the host's recorded answers decide (processes, parents, identities, exits, mappings, address-space calls,
// GCs, RSS and fault figures, every timeline sample, notes, losses, untraced time, holds, V8's GCs and
// ArrayBuffers, and from the capabilities' end state the fd table, the breakdown and V8's inspector view)
// must be what the live trace had; and of the trace, what it ran, how long and why it stopped, its probes,
// losses, holds and unwind tables.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "collect/replay.h"
#include "report/json_report.h"

namespace memlens::testing {

inline void expect_replay_rebuilds_live(const std::string& capture_path, const nlohmann::json& live) {
  auto replayed = collect::replay_events(capture_path);
  ASSERT_TRUE(replayed) << replayed.error().describe();
  EXPECT_TRUE(replayed->status.complete);
  EXPECT_EQ(replayed->malformed_records, 0u);
  EXPECT_EQ(replayed->unknown_process_samples, 0u);
  EXPECT_GT(replayed->events, 0u);
  auto rebuilt_trace = report::build_report(*replayed->trace);
  for (const char* key : {"command", "attached_pid", "started_at", "duration_s", "interval_s", "kernel",
                          "stop_reason", "probes", "loss", "holds", "events_received"})
    EXPECT_EQ(rebuilt_trace.value(key, nlohmann::json()), live.value(key, nlohmann::json())) << key;
  if (replayed->capability_end_states)
    for (const char* key : {"unwind", "discovery"})
      EXPECT_EQ(rebuilt_trace.value(key, nlohmann::json()), live.value(key, nlohmann::json())) << key;
  const auto& procs = replayed->trace->processes.all();
  ASSERT_EQ(procs.size(), live["processes"].size());
  for (size_t i = 0; i < procs.size(); ++i) {
    auto rebuilt = report::process_json(*procs[i], {}, 0, report::unmaps_probed(replayed->trace->info));
    const auto& l = live["processes"][i];
    // Reports of earlier memlens, which always probed munmap and madvise, do not say so.
    if (l.contains("events") && !l["events"].contains("unmaps_probed"))
      rebuilt["events"].erase("unmaps_probed");
    SCOPED_TRACE(procs[i]->pid());
    for (const char* key : {"pid",          "ppid",    "start_time_ns", "first_seen_s",   "comm",
                            "exe",          "cmdline", "exit_status",   "exited_at_s",    "mappings",
                            "events",       "rss",     "rss_bytes",     "rss_peak_bytes", "page_faults",
                            "timeline",     "notes",   "loss",          "hold",           "gc",
                            "array_buffers"})
      EXPECT_EQ(rebuilt.value(key, nlohmann::json()), l.value(key, nlohmann::json())) << key;
    uint64_t live_gcs = l.contains("gc") && !l["gc"].is_null() ? l["gc"]["count"].get<uint64_t>() : 0;
    EXPECT_EQ(procs[i]->v8.gcs.size(), live_gcs);
    // What the capabilities built, where the capture holds their end state (captures of earlier memlens
    // do not: their reports come from the analysed trace they hold).
    if (replayed->capability_end_states)
      for (const char* key : {"fds", "breakdown", "js_objects", "oom_kill"})
        EXPECT_EQ(rebuilt.value(key, nlohmann::json()), l.value(key, nlohmann::json())) << key;
  }
}

}  // namespace memlens::testing
