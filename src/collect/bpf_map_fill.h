// How full memlens's own BPF maps are (the hash and stack maps whose entries come and go with the traced
// processes): an agent that runs for days shows that they do not fill up.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "collect/bpf_session.h"

namespace memlens::collect {

struct MapFill {
  std::string name;
  uint64_t entries = 0;
  uint64_t capacity = 0;
};

// Counts the entries of every hash, LRU hash and stack-trace map of the session (walks their keys).
std::vector<MapFill> bpf_map_fill(BpfSession& session);

}  // namespace memlens::collect
