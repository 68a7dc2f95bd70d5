// Symbolization of a process's addresses, in blazesym's two steps: normalize (which mapping holds the
// address, and at which offset of which file) then symbolize (ELF symbols of that file, or V8's perf map
// for JIT code). Every address gives a Frame; one that cannot be named keeps its module and offset.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/result.h"
#include "common/safe_file.h"
#include "proc/procfs.h"
#include "symbolize/frame.h"
#include "symbolize/module.h"
#include "symbolize/perf_map.h"

namespace memlens::symbolize {

// Where an address lies in a process's mappings.
struct Normalized {
  enum class Kind : uint8_t {
    kFile,       // a file mapping: file_offset is the offset in that file
    kAnonymous,  // anonymous memory (JIT code lives here): file_offset is the offset in the mapping
    kPseudo,     // [vdso], [heap], [stack], ...: file_offset is the offset in the mapping
    kUnmapped,   // no mapping covers the address
  };
  Kind kind = Kind::kUnmapped;
  int map_index = -1;  // index into the maps given to normalize()
  uint64_t file_offset = 0;
};

// maps sorted by start, as /proc/PID/maps lists them.
Normalized normalize(const std::vector<proc::MapEntry>& maps, uint64_t address);

struct ProcessSymbolizerOptions {
  bool use_perf_map = true;
  PerfMapOptions perf_map;
  std::shared_ptr<ModuleCache> cache;  // null: ModuleCache::shared()
};

struct ProcessSymbolizerStats {
  uint64_t addresses = 0;
  uint64_t native = 0, js = 0, unknown = 0;
  uint64_t maps_refreshes = 0;
  uint64_t module_failures = 0;  // modules that could not be opened or read (their frames stay unnamed)
};

// One per traced process, not thread-safe (modules themselves are shared through a thread-safe cache).
// It snapshots the process's maps when created; module symbols are loaded on first need (or all at once
// with preload()) and kept, so addresses of a process that has exited can still be named. Module files
// are opened inside /proc/PID/root with the paths the process sees, so containers work.
class ProcessSymbolizer {
 public:
  // Reads the live process's maps (and its perf map, when present and options.use_perf_map).
  static Result<std::unique_ptr<ProcessSymbolizer>> create(pid_t pid, ProcessSymbolizerOptions options = {});
  // From maps recorded earlier (a capture file): modules are opened through /proc/PID/root while that
  // process lives, else on the host when the file there is the same (device and inode).
  static std::unique_ptr<ProcessSymbolizer> from_maps(pid_t pid, std::vector<proc::MapEntry> maps,
                                                      ProcessSymbolizerOptions options = {});

  // Re-reads /proc/PID/maps (libraries loaded since). Fails, keeping the old snapshot, once the process
  // is gone or its pid belongs to another process.
  Status refresh_maps();
  // The same from maps the caller read of this process just now.
  Status use_maps(std::vector<proc::MapEntry> maps);
  // Reads what V8 appended to the perf map since the last call.
  Status refresh_perf_map();
  // Loads the symbols of every executable file mapping now; returns how many modules are loaded.
  size_t preload();

  // One frame per address, in order. Addresses are used as given: for return addresses of non-leaf frames
  // pass address - 1 so a call at the very end of a function is not named after the next one.
  std::vector<Frame> symbolize(const std::vector<uint64_t>& addresses);

  pid_t pid() const { return pid_; }
  const std::vector<proc::MapEntry>& maps() const { return maps_; }
  // Empty when a perf map was read; otherwise why there are no JS names, in words for the user.
  const std::string& perf_map_problem() const { return perf_map_problem_; }
  // The process has no perf map file at all (node started without --perf-basic-prof): not a broken one.
  bool perf_map_absent() const { return perf_map_absent_; }
  const PerfMap* perf_map() const { return perf_map_ ? &perf_map_->map() : nullptr; }
  const ProcessSymbolizerStats& stats() const { return stats_; }
  // Heap bytes of this process's state (maps, perf map), not counting the shared modules.
  size_t memory_bytes() const;

 private:
  struct Batch {  // one refresh of the maps and of the perf map at most per batch, on a miss
    bool maps_refreshed = false;
    bool perf_map_refreshed = false;
  };
  ProcessSymbolizer(pid_t pid, ProcessSymbolizerOptions options);
  Frame symbolize_address(uint64_t address, Batch& batch);
  bool same_process_alive() const;
  const Module* module_for(size_t map_index);
  void init_perf_map();

  pid_t pid_;
  uint64_t start_time_ns_ = 0;  // identity of the process; 0 when unknown
  // The same process, held from create(): while it has not exited, it is alive without reading /proc
  // (the liveness is asked at every refresh). Empty when it could not be opened.
  UniqueFd pidfd_;
  ProcessSymbolizerOptions options_;
  std::vector<proc::MapEntry> maps_;
  // Keyed by "path\ninode": the same file mapped several times (one per segment) is loaded once.
  std::unordered_map<std::string, std::shared_ptr<const Module>> modules_;
  std::unordered_map<std::string, std::string> module_errors_;
  std::unique_ptr<PerfMapReader> perf_map_;
  std::string perf_map_problem_;
  bool perf_map_absent_ = false;
  ProcessSymbolizerStats stats_;
};

}  // namespace memlens::symbolize
