// How full memlens's own BPF maps are (the hash and stack maps whose entries come and go with the traced
// processes): an agent that runs for days shows that they do not fill up.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "collect/bpf_session.h"

namespace memlens::collect {

struct MapFill {
  std::string name;
  uint64_t entries = 0;
  uint64_t capacity = 0;
};

// Deletes from the shared user-stack table (ml_stacks) every stack id not in keep: a long-running trace
// drops the stacks only processes that ended referred to, so the table does not fill up over days (a full
// table loses new stacks). Returns how many were deleted.
size_t prune_stacks(BpfSession& session, const std::set<int32_t>& keep);

// Counts the entries of every hash, LRU hash and stack-trace map of the session (walks their keys).
std::vector<MapFill> bpf_map_fill(BpfSession& session);

}  // namespace memlens::collect
