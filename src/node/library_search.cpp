#include "node/library_search.h"

#include <fmt/format.h>

#include <cstring>
#include <vector>

#include "common/safe_file.h"
#include "common/text.h"
#include "elf/elf_file.h"
#include "proc/procfs.h"

namespace memlens::node {

std::string ld_library_path(pid_t pid) {
  auto env = read_text_file(fmt::format("/proc/{}/environ", pid), 1 << 20);
  return env ? std::string(proc::environ_value(*env, "LD_LIBRARY_PATH")) : std::string();
}

std::optional<std::string> find_library(pid_t pid, const std::string& object_in_process,
                                        const std::vector<std::string>& object_search_path,
                                        std::string_view library_path, std::string_view name) {
  std::vector<std::string> dirs;
  for (auto dir : split(library_path, ':'))
    if (!dir.empty()) dirs.emplace_back(dir);
  std::string origin = object_in_process.substr(0, object_in_process.rfind('/'));
  for (std::string d : object_search_path) {
    for (const char* token : {"$ORIGIN", "${ORIGIN}"})
      if (auto at = d.find(token); at != std::string::npos) d.replace(at, std::strlen(token), origin);
    dirs.push_back(d);
  }
  for (const char* d : {"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/usr/local/lib", "/lib64",
                        "/usr/lib64", "/lib", "/usr/lib"})
    dirs.emplace_back(d);
  for (const auto& d : dirs) {
    if (d.empty() || d.front() != '/') continue;  // a relative entry depends on the loader's cwd: skip it
    std::string path = d + "/" + std::string(name);
    if (open_in_process_root(pid, path, /*no_symlinks=*/false).ok()) return path;
  }
  return std::nullopt;
}

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
  return find_library(pid, exe_in_process, dyn.search_path, ld_library_path(pid), name);
}

}  // namespace memlens::node
