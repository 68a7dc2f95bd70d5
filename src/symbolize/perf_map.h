// V8's perf map (/tmp/perf-<pid>.map, written by node --perf-basic-prof[-only-functions]): one line per
// piece of JIT code, `START SIZE name` with START and SIZE in hex without 0x and a name that may contain
// spaces. The file is written by the traced process, so the parser trusts nothing in it: malformed,
// overflowing and oversized lines are skipped or cut and counted, and the reader opens it as a root tool
// must (inside /proc/PID/root, no symlinks, regular file, owned by root or the target, bounded size).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace memlens::symbolize {

struct PerfMapStats {
  uint64_t lines = 0;        // complete lines seen (empty ones included)
  uint64_t entries = 0;      // lines accepted
  uint64_t malformed = 0;    // lines skipped: bad hex, missing fields, zero size, start+size overflowing
  uint64_t overflowing = 0;  // of which start+size does not fit in 64 bits
  uint64_t names_cut = 0;    // names longer than the bound, kept cut to it
  bool truncated = false;    // the file was larger than the bound: only its first part was read
};

struct PerfMapSymbol {
  uint64_t start = 0;
  uint64_t size = 0;
  std::string_view name;  // valid until the PerfMap is changed
};

// The parsed entries with "later lines win" lookups. Storage is compact: 24 bytes per entry plus one
// string arena, and a flattened non-overlapping index rebuilt lazily after new lines arrive.
class PerfMap {
 public:
  static constexpr size_t kMaxNameBytes = 4096;

  // Parses the complete lines of text (up to its last '\n'; with final, also a last line without one).
  // Returns the number of bytes consumed, so a caller reading a growing file keeps the partial tail.
  size_t parse(std::string_view text, bool final = false);

  // The entry covering address; where entries overlap, the one that came later in the file.
  std::optional<PerfMapSymbol> lookup(uint64_t address) const;

  size_t size() const { return entries_.size(); }
  const PerfMapStats& stats() const { return stats_; }
  PerfMapStats& mutable_stats() { return stats_; }
  size_t memory_bytes() const;
  void clear();

 private:
  struct Entry {
    uint64_t start;
    uint64_t size;
    uint32_t name_offset;
    uint32_t name_len;
  };
  struct Segment {  // [start, end) owned by entries_[entry]
    uint64_t start;
    uint64_t end;
    uint32_t entry;
  };
  bool parse_line(std::string_view line);
  void rebuild_index() const;

  std::vector<Entry> entries_;  // file order
  std::string names_;
  PerfMapStats stats_;
  mutable std::vector<Segment> index_;
  mutable bool index_dirty_ = false;
};

struct PerfMapOptions {
  size_t max_bytes = 64 << 20;  // bound on how much of the file is read in total
};

// Reads a process's perf map incrementally: each refresh() reads only what was appended since the last
// one, keeping a partial last line for the next time. A file replaced by another one (a new inode) is
// read again from its start.
class PerfMapReader {
 public:
  // The map of process `pid`: /tmp/perf-<nspid>.map inside its root, where nspid is the pid it sees for
  // itself (last field of NSpid in /proc/PID/status); accepted owners are root and the process's uids.
  static Result<PerfMapReader> for_process(pid_t pid, PerfMapOptions options = {});
  // An explicit path as process `pid` sees it, accepting files owned by root or by one of allowed_uids.
  PerfMapReader(pid_t pid, std::string path_in_process, std::vector<uid_t> allowed_uids,
                PerfMapOptions options = {});

  // Reads what was appended. Errors (missing file, refused owner or symlink) say why in words; a refused
  // file is never read.
  Status refresh();

  const PerfMap& map() const { return map_; }
  const std::string& path() const { return path_; }
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_;
  std::string path_;
  std::vector<uid_t> allowed_uids_;
  PerfMapOptions options_;
  PerfMap map_;
  uint64_t consumed_ = 0;  // bytes of the file parsed so far
  uint64_t inode_ = 0, device_ = 0;
};

// From /proc/PID/status text: the pid as the process sees itself (last NSpid field; the pid when the
// kernel has no NSpid line) and its real, effective, saved and filesystem uids.
struct ProcessIdentity {
  pid_t ns_pid = 0;
  std::vector<uid_t> uids;
};
std::optional<ProcessIdentity> parse_process_identity(std::string_view status_text, pid_t pid);

}  // namespace memlens::symbolize
