// V8's perf map (/tmp/perf-<pid>.map, written by node --perf-basic-prof[-only-functions]): one line per
// piece of JIT code, `START SIZE name` with START and SIZE in hex without 0x and a name that may contain
// spaces. The file is written by the traced process, so the parser trusts nothing in it: malformed,
// overflowing and overlong lines are skipped and counted, long names cut, and the reader opens it as a root
// tool must (inside /proc/PID/root, no symlinks, regular file, owned by root or the target) and does a
// bounded amount of work per refresh whatever the file holds.
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
  uint64_t lines = 0;        // lines seen (empty ones included; an overlong one when skipping starts)
  uint64_t entries = 0;      // lines accepted
  uint64_t malformed = 0;    // lines skipped: bad hex, missing fields, zero size, start+size overflowing
  uint64_t overflowing = 0;  // of which start+size does not fit in 64 bits
  uint64_t names_cut = 0;    // names longer than the bound, kept cut to it
  uint64_t too_long = 0;     // lines longer than PerfMap::kMaxLineBytes, skipped without being kept
  uint64_t bytes = 0;        // bytes read from the file (PerfMapReader), over every version of it
  uint64_t replaced = 0;     // times the file was replaced or shrank and was read again from its start
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
  // No line V8 writes comes near this; a longer one is hostile or corrupt and is skipped to its newline.
  static constexpr size_t kMaxLineBytes = 64 << 10;

  // Parses the complete lines of text (up to its last '\n'; with final, also a last line without one).
  // Returns the number of bytes consumed, so a caller reading a growing file keeps the partial tail.
  size_t parse(std::string_view text, bool final = false);

  // Streaming form of parse for a file read in chunks of any size: a partial last line is kept (at most
  // kMaxLineBytes of it) until the rest arrives; a line that outgrows the bound is dropped and the bytes
  // up to its newline are skipped as they come, so memory and work stay proportional to the chunk.
  void feed(std::string_view chunk);
  // Forgets a partial line (the file it came from was replaced); entries already parsed stay.
  void restart_stream();

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
  void parse_one(std::string_view line);
  void rebuild_index() const;

  std::vector<Entry> entries_;  // file order
  std::string names_;
  PerfMapStats stats_;
  mutable std::vector<Segment> index_;
  mutable bool index_dirty_ = false;
  std::string partial_;    // the start of a line whose newline has not been fed yet
  bool skipping_ = false;  // inside a line longer than kMaxLineBytes: drop bytes up to its newline
};

struct PerfMapOptions {
  size_t max_bytes = 64 << 20;     // bound on how much is read in total, over every version of the file
  size_t refresh_bytes = 4 << 20;  // bound on how much one refresh reads; the next resumes there
};

// Reads a process's perf map incrementally: each refresh() reads at most options.refresh_bytes of what
// was appended since the last one, so a huge or garbage file costs a bounded amount per refresh. A file
// replaced by another one (a new inode) or shrunk below what was read is read again from its start; the
// names learned from the old one stay, as later lines, the new file's entries win where they overlap.
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
  uint64_t offset_ = 0;      // bytes of the current file read so far
  uint64_t read_total_ = 0;  // bytes read over every version of the file, against options_.max_bytes
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
