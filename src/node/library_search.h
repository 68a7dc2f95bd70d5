// Where the dynamic loader will find a library an executable needs, before it has mapped it.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>

namespace memlens::node {

// The path, inside pid's root, of the first DT_NEEDED library of the executable exe_in_process whose name
// starts with name_prefix ("libnode.so"), looked for where the loader looks: LD_LIBRARY_PATH (from the
// process's environment), the executable's RUNPATH (or RPATH, $ORIGIN expanded), then the default
// directories of a multiarch Debian system. nullopt when the executable needs none or it is nowhere.
std::optional<std::string> find_needed_library(pid_t pid, const std::string& exe_in_process,
                                               std::string_view name_prefix);

}  // namespace memlens::node
