// What V8's own view (the inspector, `--js-objects`) told about one process: whether the inspector could
// be opened and why not, the live heap by allocation site over time (V8's sampling heap profiler), the
// full GCs memlens asked for and how long each paused the app, and other clients seen on the inspector.
//
// Everything arrives as a JsObjectsEvent, the one type the inspector collector produces and apply()
// folds into the model, so that a capture file can record and replay the same stream.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <variant>
#include <vector>

namespace memlens::model {

// A JS frame as V8 names it. Lines and columns are 1-based (the protocol's are 0-based); 0 when unknown.
struct JsFrame {
  std::string function;  // "" for anonymous functions; "(root)", "(V8 API)", "(program)" for V8's own
  std::string url;       // script URL or path
  uint32_t line = 0;
  uint32_t column = 0;
  auto operator<=>(const JsFrame&) const = default;
};
using JsStack = std::vector<JsFrame>;  // root first, the allocating function last

// One allocation site's live objects in one profile.
struct JsLiveSite {
  JsStack stack;
  uint64_t bytes = 0;    // V8's estimate of the live bytes allocated here (sampled, scaled)
  uint64_t objects = 0;  // live sampled allocations, scaled the same way
};

// ---- events --------------------------------------------------------------------------------------------

// The inspector's state changed. state: "open" (memlens is profiling), "unavailable" (refused or failed:
// reason says why), "closed" (memlens closed what it opened, or left a pre-existing one alone).
struct JsInspectorStatus {
  double t_s = 0;
  std::string state;
  std::string reason;
  std::string address;  // host:port of the inspector (when found)
  bool opened_by_memlens = false;
  std::string handler;  // what the SIGUSR1 check found ("node_inspector", "app_listener", ...)
};

// One sampling-heap-profile read: every site with live sampled objects at t_s.
struct JsLiveProfile {
  double t_s = 0;
  uint64_t sampling_interval_bytes = 0;
  std::vector<JsLiveSite> sites;
};

// A full GC memlens asked V8 for (HeapProfiler.collectGarbage), with the pause it caused as memlens saw it
// (request to answer; the GC probes see the GC itself as a full GC).
struct JsForcedGc {
  double t_s = 0;
  double pause_ms = 0;
  std::string reason;
  bool ok = true;
  std::string error;
};

struct JsForcedGcTotals {
  uint64_t count = 0;
  uint64_t failed = 0;
  double pause_total_ms = 0;
  double pause_max_ms = 0;
  void add(const JsForcedGc& g);
};

// Another client connected to the inspector while memlens had it open.
struct JsOtherClient {
  double t_s = 0;
  std::string peer;  // address:port
};

// One heap snapshot memlens took (HeapProfiler.takeHeapSnapshot), or refused to take. V8 runs a full GC
// and writes the snapshot on the app's thread: pause_ms is the time from the request to the last chunk.
struct JsHeapSnapshot {
  double t_s = 0;
  std::string reason;  // "baseline", "growth judged", "trace end"
  bool ok = false;
  bool refused = false;  // not taken: too little free memory (error gives the figures)
  std::string error;
  double pause_ms = 0;
  uint64_t json_bytes = 0;  // snapshot text streamed (never held whole)
  uint64_t nodes = 0;
  uint64_t edges = 0;
  uint64_t heap_used_bytes = 0;           // V8's heap used just before (Runtime.getHeapUsage)
  uint64_t parsed_bytes = 0;              // memlens's compact arrays for this snapshot
  uint64_t memlens_rss_before_bytes = 0;  // memlens's RSS just before
  uint64_t memlens_peak_rss_bytes = 0;    // memlens's peak RSS while it read the snapshot
  int64_t cgroup_free_bytes = -1;         // the target's memory cgroup: limit - usage (-1: no limit)
  int64_t host_free_bytes = -1;           // MemAvailable
  // The target's RSS just before and its highest while V8 wrote the snapshot (sampled every 50 ms; 0 when
  // unreadable): what a snapshot of this heap costs the target.
  uint64_t target_rss_before_bytes = 0;
  uint64_t target_rss_peak_bytes = 0;
  std::string file;        // --save-snapshots: the file written (empty: none)
  std::string file_error;  // --save-snapshots: why no file was written
};

// One group of objects (constructor name for objects, function name for closures, else "(type)") that
// grew between two snapshots.
struct JsHeapGroup {
  std::string type;  // V8's node type: "object", "closure", "string", ...
  std::string name;
  uint64_t count = 0;  // in the later snapshot
  uint64_t bytes = 0;  // self size, in the later snapshot
  int64_t count_delta = 0;
  int64_t bytes_delta = 0;
  uint64_t new_objects = 0;  // ids absent from the earlier snapshot
  uint64_t new_bytes = 0;
  std::vector<std::string> retainer_path;  // edge labels from a GC root to a representative new object
  std::string location;                    // closures: script:line where the snapshot gives it
  // Self sizes of every object that only this group's objects keep reachable (the group's own included):
  // what freeing the whole group would free. -1 when not computed (see JsHeapDiff::retained_note).
  int64_t retained_bytes = -1;
};

// A collection (Map, Set, Array, object used as a map, an emitter's listener array) present in both
// snapshots whose entry count grew.
struct JsGrowingCollection {
  std::string type;
  std::string name;
  uint64_t id = 0;  // V8's heap object id
  uint64_t entries_before = 0;
  uint64_t entries_after = 0;
  std::vector<std::string> retainer_path;
};

struct JsHeapDiff {
  double t_s = 0;
  double from_t_s = 0;
  std::vector<JsHeapGroup> groups;  // by bytes delta, largest first
  std::string retained_note;        // why some groups have no retained size ("" when all have one)
  std::vector<JsGrowingCollection> collections;
};

using JsObjectsEvent =
    std::variant<JsInspectorStatus, JsLiveProfile, JsForcedGc, JsOtherClient, JsHeapSnapshot, JsHeapDiff>;

// ---- state ---------------------------------------------------------------------------------------------

struct JsLivePoint {
  double t_s = 0;
  uint64_t bytes = 0;
  uint64_t objects = 0;
};

struct JsObjectsState {
  bool requested = false;  // --js-objects was given for this process
  std::string mode;        // "full" or "sampling"
  std::string state;       // last JsInspectorStatus::state; "" before the first
  std::string reason;
  std::string address;
  bool opened_by_memlens = false;
  std::string handler;
  std::vector<JsInspectorStatus> history;

  // Interned stacks and, per stack id, its live bytes at each profile (a site missing from a profile has
  // none live then: a point of 0 is stored once it had been seen).
  std::vector<JsStack> stacks;
  std::map<JsStack, uint32_t> stack_ids;
  std::vector<std::vector<JsLivePoint>> series;  // by stack id
  std::vector<double> profile_times;             // t_s of the profiles applied (thinned as the series are)
  uint64_t sampling_interval_bytes = 0;
  uint64_t profiles = 0;
  // The last profile, whole: what js_live.folded/.pb.gz show.
  std::vector<std::pair<uint32_t, JsLivePoint>> last;
  uint64_t points_dropped = 0;  // thinned out of long series to bound memory (counted, never silent)

  // Every forced GC is counted; the latest kMaxForcedGcsListed are kept one by one (one every few seconds
  // for as long as memlens runs would grow without bound).
  JsForcedGcTotals forced_gc_totals;
  std::vector<JsForcedGc> forced_gcs;
  // The first kMaxOtherClientsListed other clients, one by one, and how many there were in all.
  std::vector<JsOtherClient> other_clients;
  uint64_t other_clients_total = 0;
  std::vector<JsHeapSnapshot> snapshots;
  std::optional<JsHeapDiff> diff;  // the latest
};

// Folds one event into the state.
void apply(JsObjectsState& s, const JsObjectsEvent& e);

// At most this many points per site: longer series are thinned by dropping every other point.
constexpr size_t kMaxJsLivePointsPerSite = 512;
constexpr size_t kMaxForcedGcsListed = 256;
constexpr size_t kMaxOtherClientsListed = 64;

}  // namespace memlens::model
