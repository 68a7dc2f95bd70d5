// Uprobes memlens attaches to one process at a time, and the link that keeps each attached.
//
// Where the kernel has uprobe_multi links (Linux 6.6+), every uprobe is one: detaching it waits for one
// set of grace periods, and several detach at once. The older perf-event uprobes detach one after the
// other under a kernel-wide mutex (about 0.1 s each here: the 60 probes of one node process took 6 s to
// remove); they remain the fallback. Either way, dropping a link detaches it, and long-lived owners hand
// links to BpfSession::retire instead so that the drain loop never waits.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/result.h"

struct bpf_link;
struct bpf_object;
struct bpf_program;

namespace memlens::collect {

class UprobeLink {
 public:
  UprobeLink() = default;
  explicit UprobeLink(bpf_link* l) : link_(l) {}
  static UprobeLink from_fd(int link_fd);  // a link made with BPF_LINK_CREATE, owned from here on
  UprobeLink(UprobeLink&& o) noexcept : link_(o.link_), fd_(o.fd_) {
    o.link_ = nullptr;
    o.fd_ = -1;
  }
  UprobeLink& operator=(UprobeLink&& o) noexcept;
  UprobeLink(const UprobeLink&) = delete;
  UprobeLink& operator=(const UprobeLink&) = delete;
  ~UprobeLink();

 private:
  void reset();
  bpf_link* link_ = nullptr;
  int fd_ = -1;
};

// Whether this kernel takes uprobe_multi links (decided once, from the kernel release).
bool uprobe_multi_supported();

// Before the object is loaded: marks its uprobe programs for uprobe_multi links where the kernel has them
// (a program is loaded for one kind of link or the other).
void prepare_uprobe_programs(bpf_object* obj);

// Attaches prog as a uprobe (or uretprobe) on func_name in binary_path, for process pid only; or at
// file_offset when func_name is empty. The program reads `cookie` with bpf_get_attach_cookie().
Result<UprobeLink> attach_uprobe(bpf_program* prog, pid_t pid, const std::string& binary_path,
                                 const std::string& func_name, uint64_t file_offset, bool retprobe,
                                 uint64_t cookie = 0);

// prog at every one of offsets (file offsets in binary_path), for pid only, in one uprobe_multi link (Linux
// 6.6+): one attach, and one detach (one grace period) for all of them, where one link per probe costs
// each. cookies[i] goes with offsets[i]. Fails, attaching nothing, where the kernel has no uprobe_multi
// or refuses one of the offsets: the caller then attaches them one by one.
Result<UprobeLink> attach_uprobes_at(bpf_program* prog, pid_t pid, const std::string& binary_path,
                                     const std::vector<uint64_t>& offsets,
                                     const std::vector<uint64_t>& cookies, bool retprobe);

}  // namespace memlens::collect
