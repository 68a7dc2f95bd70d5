#include "node/library_search.h"

#include <fmt/format.h>

#include <cstring>
#include <vector>

#include "common/safe_file.h"
#include "elf/elf_file.h"
#include "proc/procfs.h"

namespace memlens::node {

std::optional<std::string> find_needed_library(pid_t pid, const std::string& exe_in_process,
                                               std::string_view name_prefix) {
  auto file = open_in_process_root(pid, exe_in_process, /*no_symlinks=*/false);
  if (!file.ok()) return std::nullopt;
  auto elf = elf::ElfFile::open(file->fd.get(), exe_in_process);
  if (!elf.ok()) return std::nullopt;
  auto dyn = (*elf)->dynamic_info();
  std::string name;
  for (const auto& n : dyn.needed)
    if (n.starts_with(name_prefix)) name = n;
  if (name.empty()) return std::nullopt;
  std::vector<std::string> dirs;
  auto add_list = [&](std::string_view list) {
    while (!list.empty()) {
      size_t colon = list.find(':');
      if (colon != 0) dirs.emplace_back(list.substr(0, colon));
      if (colon == std::string_view::npos) break;
      list.remove_prefix(colon + 1);
    }
  };
  if (auto env = read_text_file(fmt::format("/proc/{}/environ", pid), 1 << 20))
    add_list(proc::environ_value(*env, "LD_LIBRARY_PATH"));
  std::string origin = exe_in_process.substr(0, exe_in_process.rfind('/'));
  for (std::string d : dyn.search_path) {
    for (const char* token : {"$ORIGIN", "${ORIGIN}"})
      if (auto at = d.find(token); at != std::string::npos) d.replace(at, std::strlen(token), origin);
    dirs.push_back(d);
  }
  for (const char* d : {"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/usr/local/lib", "/lib64",
                        "/usr/lib64", "/lib", "/usr/lib"})
    dirs.emplace_back(d);
  for (const auto& d : dirs) {
    if (d.empty() || d.front() != '/') continue;  // a relative entry depends on the loader's cwd: skip it
    std::string path = d + "/" + name;
    if (open_in_process_root(pid, path, /*no_symlinks=*/false).ok()) return path;
  }
  return std::nullopt;
}

}  // namespace memlens::node
