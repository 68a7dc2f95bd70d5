#include "collect/process_probes.h"

#include <fmt/format.h>

#include <map>
#include <mutex>

#include "collect/wrapper_sites.h"
#include "elf/elf_file.h"
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

// Per C library file (device, inode) and function: read once, every tracked process shares it.
const OneHitSites& one_hit_sites(const MappedObject& libc, const char* func) {
  static std::mutex mu;
  static std::map<std::string, std::map<std::string, OneHitSites>> cache;
  std::lock_guard<std::mutex> lock(mu);
  std::string key = fmt::format("{}:{}", libc.device, libc.inode);
  auto it = cache.find(key);
  if (it == cache.end()) {
    it = cache.emplace(key, std::map<std::string, OneHitSites>{}).first;
    if (auto elf = elf::ElfFile::open_path(libc.host_path))
      for (const char* f : {"mmap", "madvise"})
        if (auto w = locate_wrapper(**elf, f)) it->second[f] = one_hit_sites(*w);
  }
  return it->second[func];
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

Result<ProcessProbes> attach_process_probes(BpfSession& session, pid_t pid, const MappedObject& libc,
                                            bool unmaps) {
  auto* p = &session.skeleton()->progs;
  struct Want {
    const char* func;
    bpf_program* enter;
    bpf_program* exit;
    bpf_program* one_hit;  // at the branches after the syscall, where the wrapper's shape allows it
  };
  // Each probe hit is a breakpoint trap in the traced process: return probes only where the result is
  // needed (the address mmap and mremap chose), and one hit after the syscall where the wrapper allows it
  // (collect/wrapper_sites.h: an emulated branch instead of a single-stepped first instruction). munmap
  // and brk stay at their entry: a munmap reported after the fact could come after another thread's
  // mmap of the same addresses. mprotect is not probed: V8 calls it for every page it commits, and what
  // it changes shows in the kernel's RSS counters anyway. munmap and madvise only when asked: they give
  // memory back, which the kernel's counters and /proc/PID/maps show, and an allocating Node process
  // makes more of them than of all the others (docs/probes.md).
  const Want wants[] = {
      {"mmap", p->ml_mmap_enter, p->ml_mmap_exit, p->ml_mmap_done},
      {"mremap", p->ml_mremap_enter, p->ml_mremap_exit, nullptr},
      {"munmap", p->ml_munmap_enter, nullptr, nullptr},
      {"brk", p->ml_brk_enter, nullptr, nullptr},
      {"madvise", p->ml_madvise_enter, nullptr, p->ml_madvise_done},
  };
  ProcessProbes probes;
  probes.libc_ = libc;
  for (const auto& w : wants) {
    bool frees = std::string_view(w.func) == "munmap" || std::string_view(w.func) == "madvise";
    if (frees && !unmaps) continue;
    std::string name = fmt::format("libc:{}", w.func);
    if (w.one_hit) {
      const OneHitSites& sites = one_hit_sites(libc, w.func);
      size_t before = probes.links_.size();
      bool all = !sites.empty();
      for (const auto& [offset, stack_bytes] : sites) {
        auto link = attach_uprobe(w.one_hit, pid, libc.host_path, "", offset, false, stack_bytes);
        if (!link) {
          all = false;
          break;
        }
        probes.links_.push_back(std::move(*link));
      }
      if (all) {
        probes.statuses_.push_back({name, true, ""});
        continue;
      }
      probes.links_.resize(before);  // some site refused: the entry (and return) probes instead
    }
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
    return make_error(fmt::format("no address-space probe could be attached to pid {} ({}): {}", pid,
                                  libc.host_path,
                                  probes.statuses_.empty() ? "" : probes.statuses_.front().reason));
  return probes;
}

}  // namespace memlens::collect
