// The `--js-objects` collector: a source beside the BPF ones. For one node process it opens V8's inspector
// safely (signal_check.h; never a signal that would reach the app), runs V8's sampling heap profiler,
// reads the live heap by allocation site every few seconds, watches for other clients, and closes what it
// opened however the trace ends (watchdog.h).
//
// V8 runs a full GC before every sampling-profile read (its inspector starts the profiler with
// kSamplingForceGC): every read is a pause memlens causes, so reads are paced to a pause budget and each
// one is reported as a forced GC with its pause. A full GC asked for (a JS heap growth to confirm) is an
// early read; never in sampling mode, which reads the profile once, when the trace ends. It produces
// model::JsObjectsEvent values only; the caller folds them into the model.
//
// One worker thread does the protocol; the caller's thread only drains events and posts requests, so the
// tracer's loop never waits for the target.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "inspector/snapshot_room.h"
#include "model/js_objects.h"

namespace memlens::inspector {

// Free memory around the target, for the check before a heap snapshot (-1: no limit / unknown).
struct SnapshotRoom {
  int64_t cgroup_free_bytes = -1;  // the target's memory cgroup: effective limit - usage
  int64_t host_free_bytes = -1;    // MemAvailable
};

struct CollectorOptions {
  bool sampling_only = false;  // --js-objects=sampling: no forced GCs (and, later, no snapshots)
  bool force = false;          // --js-objects=force: an unknown SIGUSR1 check does not refuse
  // run: the process may still be starting, its SIGUSR1 handler not yet installed (SIG_DFL): wait this
  // long for node's handler before giving up. attach: 0.
  double wait_for_handler_s = 0;
  // V8 runs a full GC before each sampling-profile read: reads come every profile_min_interval_s at most,
  // and further apart when the last one paused the app longer than pause_budget of the interval allows
  // (up to profile_max_interval_s).
  double profile_min_interval_s = 3.0;
  double profile_max_interval_s = 30.0;
  double pause_budget = 0.02;
  // 128 KiB: V8's default of 32 KiB slowed an allocation-heavy workload by about 25% (make bench); at
  // 128 KiB a site growing by a few MB still gives tens of samples.
  uint64_t sampling_interval_bytes = 131072;
  double min_forced_gc_gap_s = 12.0;
  std::function<double()> now_s;  // trace time, callable from any thread
  // Heap snapshots (full mode only): a baseline this long after the inspector opened, one more when a JS
  // heap growth is judged (request_full_gc, or the growth below) and one when the trace ends (not when the
  // target exits); at most max_snapshots. Each needs the room snapshot_cost estimates free in the target's
  // cgroup and on the host (room()).
  bool snapshots = true;
  double snapshot_baseline_after_s = 5.0;
  int max_snapshots = 3;
  // Where each snapshot's text is written as it streams (heap-PID-N.heapsnapshot, mode 0600, renamed into
  // place when whole); empty: nowhere.
  std::string snapshot_dir;
  SnapshotCostModel snapshot_cost;
  // memlens's own memory for a snapshot (reading it, then summarizing or diffing it), as a share of V8's
  // heap used: up to about 0.91 for a heap of small objects (252 MiB heap, 6.5 M objects: +230 MiB), less
  // for larger objects; the host must hold this too.
  double snapshot_reader_factor = 1.0;
  // The growth (V8's heap used after a profile read's full GC, over the baseline's) that is judged worth a
  // snapshot: at least this many bytes and this share of the baseline.
  double snapshot_growth_bytes = 8.0 * 1024 * 1024;
  double snapshot_growth_ratio = 0.1;
  std::function<SnapshotRoom()> room;
};

class JsObjectsCollector {
 public:
  JsObjectsCollector(pid_t pid, CollectorOptions opts);
  ~JsObjectsCollector();  // stop()
  JsObjectsCollector(const JsObjectsCollector&) = delete;
  JsObjectsCollector& operator=(const JsObjectsCollector&) = delete;

  // Events produced since the last call, in order.
  std::vector<model::JsObjectsEvent> drain();
  // Asks for one full GC; false when refused now (sampling mode, not open, one pending, or too soon).
  bool request_full_gc(const std::string& reason);
  // Trace time of the last forced GC asked for (or nullopt).
  std::optional<double> last_forced_gc_s() const;
  bool open() const { return open_; }
  // Closes the inspector (when memlens opened it) and ends the worker; bounded by a few seconds.
  void stop();

 private:
  void run();
  void emit(model::JsObjectsEvent e);
  void unavailable(std::string reason, std::string handler = "");
  double now() const { return opts_.now_s ? opts_.now_s() : 0; }
  bool wait_stop(double seconds);

  pid_t pid_;
  CollectorOptions opts_;
  std::atomic<bool> open_{false};
  std::atomic<bool> stop_{false};
  std::atomic<bool> target_exiting_{false};
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::vector<model::JsObjectsEvent> events_;
  std::optional<std::string> gc_request_;
  std::optional<double> last_gc_s_;
  std::thread worker_;
};

// The sites with live objects in a HeapProfiler.getSamplingProfile answer ({"profile": {...}}).
model::JsLiveProfile parse_sampling_profile(const nlohmann::json& result, double t_s,
                                            uint64_t sampling_interval_bytes);

}  // namespace memlens::inspector
