#include "collect/bpf_map_fill.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <set>
#include <string>
#include <vector>

#include "memlens.skel.h"

namespace memlens::collect {

std::vector<MapFill> bpf_map_fill(BpfSession& session) {
  std::vector<MapFill> out;
  std::set<std::string> seen;  // a map the objects share is listed once
  for (bpf_object* obj : session.objects()) {
    bpf_map* map = nullptr;
    bpf_object__for_each_map(map, obj) {
      auto type = bpf_map__type(map);
      if (type != BPF_MAP_TYPE_HASH && type != BPF_MAP_TYPE_LRU_HASH && type != BPF_MAP_TYPE_STACK_TRACE)
        continue;
      if (!seen.insert(bpf_map__name(map)).second) continue;
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
  }
  return out;
}

size_t prune_stacks(BpfSession& session, const std::set<int32_t>& keep) {
  memlens_bpf* skel = session.skeleton();
  if (!skel) return 0;
  int fd = bpf_map__fd(skel->maps.ml_stacks);
  std::vector<uint32_t> drop;
  uint32_t key = 0, next = 0;
  const void* prev = nullptr;
  while (bpf_map_get_next_key(fd, prev, &next) == 0) {
    if (!keep.count(static_cast<int32_t>(next))) drop.push_back(next);
    key = next;
    prev = &key;
  }
  // A stack's JS frames (its SharedFunctionInfo addresses) are kept under the same id: they go with it.
  int js_fd = bpf_map__fd(skel->maps.ml_js_frames);
  size_t n = 0;
  for (uint32_t id : drop) {
    n += bpf_map_delete_elem(fd, &id) == 0;
    (void)bpf_map_delete_elem(js_fd, &id);
  }
  return n;
}

}  // namespace memlens::collect
