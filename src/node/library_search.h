// Where the dynamic loader will find a library an executable needs, before it has mapped it.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace memlens::node {

// The path, inside pid's root, of the first DT_NEEDED library of the executable exe_in_process whose name
// starts with name_prefix ("libnode.so"), looked for where the loader looks: LD_LIBRARY_PATH (from the
// process's environment), the executable's RUNPATH (or RPATH, $ORIGIN expanded), then the default
// directories of a multiarch Debian system. nullopt when the executable needs none or it is nowhere.
std::optional<std::string> find_needed_library(pid_t pid, const std::string& exe_in_process,
                                               std::string_view name_prefix);

// The same search for one DT_NEEDED name of an object already read: object_search_path is its RUNPATH
// (or RPATH), library_path the process's LD_LIBRARY_PATH (ld_library_path()).
std::optional<std::string> find_library(pid_t pid, const std::string& object_in_process,
                                        const std::vector<std::string>& object_search_path,
                                        std::string_view library_path, std::string_view name);
// pid's LD_LIBRARY_PATH ("" when unset or unreadable).
std::string ld_library_path(pid_t pid);

}  // namespace memlens::node
