// Which ELF object of a live process holds V8: the main executable if it does, else a mapped libnode.so,
// else (just after exec) the libnode.so the executable needs, where the loader will find it. Right after
// exec the loader has not mapped it yet; its probes can be attached already, by file, and are in place
// when it is mapped.
#include <fmt/format.h>

#include <optional>
#include <string_view>
#include <vector>

#include "common/safe_file.h"
#include "node/library_search.h"
#include "node/plan_cache.h"
#include "node/probe_plan.h"
#include "proc/procfs.h"

namespace memlens::node {

Result<ProbePlan> plan_for_pid(pid_t pid) {
  auto maps = proc::read_maps(pid);
  if (!maps.ok()) return maps.error();
  auto exe = proc::read_exe(pid);

  // Candidates in order: the executable, then libnode.so objects. Each distinct file once.
  std::vector<const proc::MapEntry*> candidates;
  auto add = [&](const proc::MapEntry& m) {
    for (auto* c : candidates)
      if (c->path == m.path) return;
    candidates.push_back(&m);
  };
  for (const auto& m : *maps)
    if (m.is_file() && exe.ok() && m.path == *exe) add(m);
  for (const auto& m : *maps) {
    if (!m.is_file()) continue;
    std::string_view base = std::string_view(m.path).substr(m.path.rfind('/') + 1);
    if (base.starts_with("libnode.so")) add(m);
  }
  if (candidates.empty())
    return make_error(fmt::format("pid {}: no executable or libnode.so mapping found", pid));

  std::optional<ProbePlan> fallback;
  for (const auto* m : candidates) {
    if (m->deleted()) continue;  // replaced on disk since it was mapped: its symbols may not match
    auto file = open_in_process_root(pid, m->path, /*no_symlinks=*/false);
    if (!file.ok()) continue;
    std::string host_path = fmt::format("/proc/{}/root{}", pid, m->path);
    auto planned = planned_file(file->fd.get(), host_path);
    if (!planned.ok()) continue;
    if (!planned->holds_v8 && fallback) continue;
    planned->plan.path_in_process = m->path;
    if (planned->holds_v8) return std::move(planned->plan);
    // A stripped node executable holds V8 without showing it: keep it unless a libnode.so does.
    if (!fallback) fallback = std::move(planned->plan);
  }
  bool libnode_mapped = false;
  for (const auto* m : candidates)
    libnode_mapped |= std::string_view(m->path).substr(m->path.rfind('/') + 1).starts_with("libnode.so");
  if (!libnode_mapped && exe.ok()) {
    if (auto lib = find_needed_library(pid, *exe, "libnode.so")) {
      std::string host_path = fmt::format("/proc/{}/root{}", pid, *lib);
      if (auto file = open_in_process_root(pid, *lib, /*no_symlinks=*/false); file.ok()) {
        auto planned = planned_file(file->fd.get(), host_path);
        if (planned.ok() && planned->holds_v8) {
          planned->plan.path_in_process = *lib;
          planned->plan.found_before_mapping = true;
          return std::move(planned->plan);
        }
      }
    }
  }
  if (fallback) return std::move(*fallback);
  return make_error(fmt::format("pid {}: could not open the executable or a libnode.so of the process", pid));
}

}  // namespace memlens::node
