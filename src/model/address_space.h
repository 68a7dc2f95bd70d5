// A process's mappings as an interval map, kept current from mmap/mremap/brk events (and munmap's, when
// probed), seeded from /proc/PID/maps at attach and after exec, and rid of what the process unmapped by
// comparing it with /proc/PID/maps at samples (unmapped_in). A partial munmap splits a mapping, as the
// kernel does.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "proc/procfs.h"

namespace memlens::model {

// What created a mapping, as far as memlens could tell; attribution refines it with the process's
// resident figures.
enum class Origin : uint8_t {
  kUnknown,
  kSeeded,  // present when memlens first read /proc/PID/maps
  kMmap,    // an mmap call seen while tracing
  kBrk,     // the brk heap
  kMremap,
};

struct Mapping {
  uint64_t start = 0;
  uint64_t end = 0;    // exclusive
  uint32_t prot = 0;   // PROT_* bits
  uint32_t flags = 0;  // MAP_* bits when known
  bool anonymous = true;
  std::string path;  // file path or pseudo name ("[heap]", "[stack]")
  uint64_t file_offset = 0;
  Origin origin = Origin::kUnknown;
  int32_t stack_id = -1;    // user stack of the call that created it, -1 when unknown
  double stack_weight = 1;  // with a sampled stack: how many bytes each of its bytes stands for
  uint64_t caller_ip = 0;   // return address of the mmap call that created it, 0 when unknown
  uint64_t created_ns = 0;

  uint64_t size() const { return end - start; }
};

struct MappingTotals {
  uint64_t anon_bytes = 0;  // virtual size of anonymous mappings
  uint64_t file_bytes = 0;  // virtual size of file-backed mappings
  uint64_t count = 0;
};

class AddressSpace {
 public:
  // Replaces everything with the mappings the kernel reports.
  void seed(const std::vector<proc::MapEntry>& maps, uint64_t now_ns);
  // A new mapping [start, start+len) replaces whatever overlapped it (MAP_FIXED semantics).
  void map(Mapping m);
  void unmap(uint64_t start, uint64_t len);
  // mremap: the pages of [old, old+old_len) now live at [new_addr, new_addr+new_len).
  void remap(uint64_t old_addr, uint64_t old_len, uint64_t new_addr, uint64_t new_len);
  // brk moved the end of the heap to new_end. Returns the bytes the heap grew by (0 if it shrank).
  uint64_t set_brk(uint64_t new_end, uint64_t now_ns);

  // The ranges this model holds that maps (a read of /proc/PID/maps, sorted by address) does not: what the
  // process unmapped since the model learned of them, merged and in address order, (start, length) each,
  // for take_out(). The brk heap is left out: brk is always probed, and its event comes at the call's entry,
  // before the kernel has moved the break.
  std::vector<std::pair<uint64_t, uint64_t>> unmapped_in(const std::vector<proc::MapEntry>& maps) const;
  // Unmaps those ranges; the mappings still there keep their stacks and callers. What was taken out is
  // kept for one sample interval: an mremap that moved a mapping before /proc was read, and whose event
  // comes after, still finds where its pages came from (remap); a much later mremap of a range the model
  // never had does not inherit a long-gone mapping's stack.
  void take_out(const std::vector<std::pair<uint64_t, uint64_t>>& ranges);
  // A sample was taken: what the previous interval's take_out kept is forgotten (the same point live and
  // in a replay, so both keep the same).
  void on_sample();

  MappingTotals totals() const;
  const Mapping* find(uint64_t addr) const;
  std::vector<Mapping> mappings() const;
  size_t size() const { return by_start_.size(); }

 private:
  // Cuts the mappings that straddle `at` in two, so [.., at) and [at, ..) are separate entries.
  void split_at(uint64_t at);
  // The brk heap's entry (the first "[heap]" mapping by address), found once and checked on use: a brk
  // event does not walk every mapping. heap_known_ false: not looked for since the mappings changed in a
  // way that may have made one (a seed, a map of a heap range, a brk below the heap that removed it).
  std::map<uint64_t, Mapping>::iterator heap();
  std::map<uint64_t, Mapping> by_start_;
  std::optional<uint64_t> heap_start_;
  bool heap_known_ = false;
  std::vector<Mapping> taken_out_;  // by the last take_out
  bool taken_out_this_interval_ = false;
};

}  // namespace memlens::model
