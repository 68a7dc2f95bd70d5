// Attribution: which category every resident byte of a process belongs to. The kernel's per-mapping
// resident figures (smaps's Rss, read through PAGEMAP_SCAN or smaps) say how much of each mapping is in
// memory; the model's mappings say who created each one (the return address of the mmap call, its flags);
// what neither tells is guessed from the mapping's shape (size, alignment, guard pages). The rules and their
// limits are in docs/attribution.md.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "model/address_space.h"
#include "proc/procfs.h"

namespace memlens::model {

enum class Category : uint8_t { js_heap, array_buffers, native_heap, code, stacks, file_mapped, other_anon };
inline constexpr size_t kAttributionCategoryCount = 7;
inline constexpr std::array<Category, kAttributionCategoryCount> kAttributionCategories = {
    Category::js_heap, Category::array_buffers, Category::native_heap, Category::code,
    Category::stacks,  Category::file_mapped,   Category::other_anon};
std::string_view category_name(Category c);  // "js_heap", ... (report.json names)

// How a mapping's category was decided, from the strongest evidence to the weakest.
enum class Basis : uint8_t {
  kKernel,     // the kernel's own facts: file-backed, executable, [heap], [stack]
  kCaller,     // who called mmap (return address in libc, in the V8 binary, elsewhere) or MAP_STACK
  kHeuristic,  // shape of a mapping memlens did not see created (attach, before tracing): alignment, guards
  kFallback,   // nothing known: other_anon
};
inline constexpr size_t kBasisCount = 4;
std::string_view basis_name(Basis b);  // "kernel", "caller", "heuristic", "fallback"

struct AddressRange {
  uint64_t start = 0, end = 0;
  bool contains(uint64_t a) const { return a >= start && a < end; }
};

// Where the code that calls mmap lives: the C library (malloc's arenas and direct mmaps, pthread stacks)
// and the binary or libnode.so that holds V8 (its page allocator).
struct CodeRanges {
  std::vector<AddressRange> libc;
  std::vector<AddressRange> v8_host;
  bool in_libc(uint64_t ip) const;
  bool in_v8_host(uint64_t ip) const;
  // From the process's mappings. exe: /proc/PID/exe as the process sees it. The executable counts as a
  // V8 host when v8_host_exe is true (a node binary); libnode.so always does.
  static CodeRanges from_maps(const std::vector<proc::MapEntry>& maps, const std::string& exe,
                              bool v8_host_exe);
};

// True when exe (or its basename) looks like a node binary: "node", "nodejs", "node20", ...
bool looks_like_node(const std::string& exe);

struct Breakdown {
  std::array<uint64_t, kAttributionCategoryCount> bytes{};
  std::array<uint64_t, kBasisCount> bytes_by_basis{};
  uint64_t smaps_rss_bytes = 0;             // sum of Rss over all mappings (what the categories add up to)
  uint64_t native_heap_resident_bytes = 0;  // malloc memory before array buffers were taken out of it
  // Virtual size of the read-write V8 heap pages and of V8's code space (anonymous executable pages),
  // resident or not: what V8 has committed, the figure heapTotal (process.memoryUsage()) counts, next
  // to js_heap's resident bytes (code space's resident pages are in `code`). Pages whose creation memlens
  // did not see (attach) count only where resident: then it is a lower bound.
  uint64_t js_heap_mapped_bytes = 0;
  uint64_t mappings = 0;  // smaps entries read

  uint64_t& operator[](Category c) { return bytes[static_cast<size_t>(c)]; }
  uint64_t operator[](Category c) const { return bytes[static_cast<size_t>(c)]; }
  uint64_t total() const;
};

struct AttributionInput {
  const std::vector<proc::SmapsEntry>* smaps = nullptr;  // sorted by address, as the kernel lists them
  const AddressSpace* model = nullptr;                   // may be null: heuristics only
  CodeRanges code;
  bool v8_host = false;  // the process runs V8: anonymous pages of unknown origin may be V8 heap pages
  // Live ArrayBuffer backing-store bytes (V8 probes); array_buffers stays 0 without them.
  std::optional<uint64_t> array_buffer_live_bytes;
};

// The category of one anonymous, non-executable piece of memory whose creator is known from the model.
// nullopt when the model mapping carries no evidence (seeded, or caller unknown).
std::optional<Category> classify_by_caller(const Mapping& m, const CodeRanges& code, bool v8_host);

// The category of an anonymous, non-executable smaps entry (index i of smaps) from its shape alone.
Category classify_by_shape(const std::vector<proc::SmapsEntry>& smaps, size_t i, bool v8_host);

Breakdown attribute(const AttributionInput& in);

// The breakdown set against the kernel's RSS at (about) the same moment: unexplained = rss - categories.
struct Reconciled {
  Breakdown breakdown;
  uint64_t rss_bytes = 0;
  uint64_t unexplained_bytes = 0;
  // When the categories exceed the RSS (the resident read and the RSS counters at different moments), the
  // excess: unexplained is then 0 and this says by how much the categories overshoot.
  uint64_t overshoot_bytes = 0;
};
Reconciled reconcile(const Breakdown& b, uint64_t rss_bytes);

// Limits a verdict can project against, read while the process lives.
struct ProcessLimits {
  std::optional<uint64_t> cgroup_memory_max_bytes;  // the effective limit of its memory cgroup (v1 or v2):
                                                    // the lowest up the hierarchy
  std::string cgroup_path;
  std::string cgroup_version;           // "v1" or "v2" ("" when none)
  std::string cgroup_limit_set_at;      // the cgroup whose limit is the effective one (itself or an ancestor)
  std::optional<uint64_t> nofile_soft;  // RLIMIT_NOFILE
  // What the memory limit is measured against, read at each sample while the process runs (the last
  // reading is kept): the whole usage of the cgroup that holds the effective limit, every process in it;
  // and the host's memory, the limit where no cgroup sets one.
  std::optional<uint64_t> cgroup_usage_bytes;
  std::optional<uint64_t> host_memory_bytes;            // MemTotal
  std::optional<uint64_t> host_memory_available_bytes;  // MemAvailable
  double memory_read_at_s = 0;                          // trace time of that reading
};
// Parsers for the limit sources (text as the kernel writes it).
std::optional<uint64_t> parse_nofile_soft_limit(std::string_view proc_pid_limits);  // "Max open files"

// The kernel's OOM killer ended the process: its exit was a SIGKILL while an OOM-kill counter that covers
// it rose (its memory cgroup's, or the host's for a kill without a cgroup limit).
struct OomKill {
  double at_s = 0;                      // trace time of the exit
  std::string scope;                    // "cgroup v1 /docker/ab12", or "host" (no cgroup limit was reached)
  std::optional<uint64_t> limit_bytes;  // the limit it ran into, where one is set
  // The category that grew most between the first and the last breakdown memlens took, and by how much.
  std::string grew_most;
  int64_t grew_most_bytes = 0;
  // What decided that the OOM killer killed it: "kernel" (its oom:mark_victim named the process) or
  // "counters" (an OOM-kill counter covering the process rose while it died of a SIGKILL).
  std::string decided_by;
  // Whether a counter's rise showed the scope. The kernel's mark alone does not say which limit was hit:
  // then the scope is the process's cgroup when it has a memory limit, else the host.
  bool scope_counted = true;
};

// OOM-kill counters memlens compares at a process's exit.
struct OomCounters {
  std::optional<uint64_t> cgroup;  // memory.oom_control / memory.events oom_kill of its memory cgroup
  std::optional<uint64_t> host;    // /proc/vmstat oom_kill
  bool operator==(const OomCounters&) const = default;
};

// Which counter says that a process that ended with SIGKILL was OOM-killed, from the counters of its
// baseline and after its exit: its memory cgroup's when it can be read (the kernel counts every OOM kill,
// the host-wide ones too, in the victim's own cgroup), the host's only when the cgroup's cannot (it counts
// the kills of every process of the host).
enum class OomKillSeenBy { kNone, kCgroup, kHost };
OomKillSeenBy oom_kill_seen_by(const OomCounters& before, const OomCounters& after);

// The counters a process's SIGKILL is judged against, kept from sample to sample. The OOM killer counts
// its kill a moment before it sends its SIGKILL (mm/oom_kill.c), so a reading may already hold the kill of
// a process that does not look dying yet: a reading becomes the baseline one sample later, and only if
// the process was not dying then (had the reading held its kill, the SIGKILL would have been sent long
// before). A victim still tearing down its memory is dying however long that takes, and its baseline
// stays from before its kill.
class OomCounterBaseline {
 public:
  explicit OomCounterBaseline(OomCounters first = {}) : baseline_(first) {}
  // One sample's reading. `dying` is asked only when a reading differs from the baseline: most samples
  // see no OOM kill anywhere, and the look at the process costs a read of its status and of every
  // thread's stat. False when it was found dying: nothing moved, the reading is not kept, and the caller
  // keeps its other figures from before the kill too (the cgroup's usage).
  template <typename DyingCheck>
  bool observe(const OomCounters& now, DyingCheck&& dying) {
    bool moved = (pending_ && *pending_ != baseline_) || now != baseline_;
    if (moved && dying()) return false;
    if (pending_) baseline_ = *pending_;
    pending_ = now;
    return true;
  }
  const OomCounters& baseline() const { return baseline_; }

 private:
  OomCounters baseline_;
  std::optional<OomCounters> pending_;
};

// What attribution keeps per process (in model::Process::attribution).
struct AttributionState {
  std::optional<Reconciled> last;  // the latest measurement
  double last_at_s = 0;            // trace time of that measurement
  double last_process_age_s = 0;   // seconds since the process started, at that measurement
  bool final_read = false;         // `last` was taken at the end of the trace (or just before exit)
  uint64_t reads = 0;
  uint64_t reads_skipped_unchanged = 0;  // due reads left out: the resident figures had not moved
  uint64_t read_failures = 0;
  double read_ms_total = 0;
  double read_ms_max = 0;
  double interval_s = 0;  // current interval between resident reads (adapts to their cost)
  // The resident bytes of the mappings came from maps and PAGEMAP_SCAN (proc::read_resident), not smaps.
  bool read_by_scan = false;
  ProcessLimits limits;
  // The OOM-kill counters of a sample that a later sample found the process alive and not dying after: they
  // hold no kill of it (the kernel counts an OOM kill a moment before it sends its SIGKILL).
  OomCounters oom_counters_before;
  std::optional<OomKill> oom_kill;
};

}  // namespace memlens::model
