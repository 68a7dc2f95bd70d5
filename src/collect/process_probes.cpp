#include "collect/process_probes.h"

#include <fmt/format.h>

#include "memlens.skel.h"
#include "proc/procfs.h"

namespace memlens::collect {

namespace {

bool looks_like_libc(const std::string& path) {
  auto slash = path.rfind('/');
  std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  return base == "libc.so.6" || base.rfind("libc-", 0) == 0 || base.rfind("libc.musl", 0) == 0 ||
         base.rfind("ld-musl", 0) == 0;
}

}  // namespace

Result<MappedObject> find_libc(pid_t pid) {
  auto maps = proc::read_maps(pid);
  if (!maps) return maps.error();
  for (const auto& m : *maps) {
    if (!m.is_file() || !looks_like_libc(m.path) || m.deleted()) continue;
    MappedObject o;
    o.path_in_process = m.path;
    o.host_path = fmt::format("/proc/{}/root{}", pid, m.path);
    o.device = (static_cast<uint64_t>(m.dev_major) << 20) | m.dev_minor;
    o.inode = m.inode;
    return o;
  }
  return make_error(fmt::format("process {} has no C library mapped (statically linked?)", pid), ENOENT);
}

Result<ProcessProbes> attach_process_probes(BpfSession& session, pid_t pid, const MappedObject& libc) {
  auto* p = &session.skeleton()->progs;
  struct Want {
    const char* func;
    bpf_program* enter;
    bpf_program* exit;
  };
  // Each probe hit is a breakpoint trap in the traced process: return probes only where the result is
  // needed (the address mmap and mremap chose). mprotect is not probed: V8 calls it for every page it
  // commits, and what it changes shows in the kernel's RSS counters anyway.
  const Want wants[] = {
      {"mmap", p->ml_mmap_enter, p->ml_mmap_exit},
      {"mremap", p->ml_mremap_enter, p->ml_mremap_exit},
      {"munmap", p->ml_munmap_enter, nullptr},
      {"brk", p->ml_brk_enter, nullptr},
      {"madvise", p->ml_madvise_enter, nullptr},
  };
  ProcessProbes probes;
  probes.libc_ = libc;
  for (const auto& w : wants) {
    std::string name = fmt::format("libc:{}", w.func);
    // The return probe first: an entry without its return would leave arguments waiting forever.
    if (w.exit) {
      auto ret = attach_uprobe(w.exit, pid, libc.host_path, w.func, 0, true);
      if (!ret) {
        probes.statuses_.push_back({name, false, ret.error().describe()});
        continue;
      }
      probes.links_.push_back(std::move(*ret));
    }
    auto ent = attach_uprobe(w.enter, pid, libc.host_path, w.func, 0, false);
    if (!ent) {
      if (w.exit) probes.links_.pop_back();
      probes.statuses_.push_back({name, false, ent.error().describe()});
      continue;
    }
    probes.links_.push_back(std::move(*ent));
    probes.statuses_.push_back({name, true, ""});
  }
  if (probes.links_.empty())
    return make_error(fmt::format("no address-space probe could be attached to pid {} ({}): {}", pid, libc.host_path,
                                  probes.statuses_.empty() ? "" : probes.statuses_.front().reason));
  return probes;
}

}  // namespace memlens::collect
