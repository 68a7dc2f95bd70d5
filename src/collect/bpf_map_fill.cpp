#include "collect/bpf_map_fill.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <vector>

#include "memlens.skel.h"

namespace memlens::collect {

std::vector<MapFill> bpf_map_fill(BpfSession& session) {
  std::vector<MapFill> out;
  memlens_bpf* skel = session.skeleton();
  if (!skel) return out;
  bpf_map* map = nullptr;
  bpf_object__for_each_map(map, skel->obj) {
    auto type = bpf_map__type(map);
    if (type != BPF_MAP_TYPE_HASH && type != BPF_MAP_TYPE_LRU_HASH && type != BPF_MAP_TYPE_STACK_TRACE)
      continue;
    int fd = bpf_map__fd(map);
    if (fd < 0) continue;
    MapFill f;
    f.name = bpf_map__name(map);
    f.capacity = bpf_map__max_entries(map);
    std::vector<unsigned char> key(bpf_map__key_size(map)), next(key.size());
    const void* prev = nullptr;
    while (f.entries <= f.capacity && bpf_map_get_next_key(fd, prev, next.data()) == 0) {
      ++f.entries;
      key.swap(next);
      prev = key.data();
    }
    out.push_back(std::move(f));
  }
  return out;
}

}  // namespace memlens::collect
