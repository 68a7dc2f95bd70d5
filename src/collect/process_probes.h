// The uprobes memlens attaches to one tracked process: the C library's address-space wrappers (mmap,
// mremap, brk; munmap and madvise when asked). They are attached for that process only, so other processes on
// the host never pay for them. Destroying a ProcessProbes detaches them.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "collect/bpf_session.h"

namespace memlens::collect {

struct MappedObject {
  std::string path_in_process;  // as /proc/PID/maps shows it
  std::string host_path;        // the same file reached from memlens: /proc/PID/root/<path>
  uint64_t device = 0;          // (dev, inode) from the maps line: identity across exec
  uint64_t inode = 0;
  bool operator==(const MappedObject& o) const { return device == o.device && inode == o.inode; }
};

// The C library mapped into pid (glibc's libc.so.6 or musl's libc), from /proc/PID/maps.
Result<MappedObject> find_libc(pid_t pid);

class ProcessProbes {
 public:
  const MappedObject& libc() const { return libc_; }
  const std::vector<ProbeStatus>& statuses() const { return statuses_; }
  size_t attached_count() const { return links_.size(); }
  // The links, for BpfSession::retire (detaching them here would stall the caller).
  std::vector<UprobeLink> take_links() { return std::move(links_); }

 private:
  friend Result<ProcessProbes> attach_process_probes(BpfSession& session, pid_t pid, const MappedObject& libc,
                                                     bool unmaps);
  MappedObject libc_;
  std::vector<UprobeLink> links_;
  std::vector<ProbeStatus> statuses_;
};

// Attaches the address-space probes to pid on the given C library: mmap, mremap and brk, and with unmaps
// munmap and madvise. Fails only when none attaches.
Result<ProcessProbes> attach_process_probes(BpfSession& session, pid_t pid, const MappedObject& libc,
                                            bool unmaps);

}  // namespace memlens::collect
