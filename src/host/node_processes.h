// Which processes of the host are Node: a node binary, or a program that maps libnode.so. One place
// decides it for every host-wide view (top, and later the agent and host-wide attach), with what each
// needs to name a process: its pid inside its own namespace, its container, its command.
#pragma once

#include <sys/types.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "host/cgroup.h"

namespace memlens::host {

struct NodeProcess {
  pid_t pid = 0;
  uint64_t start_time_ticks = 0;  // with pid, names one process for its whole life
  pid_t ns_pid = 0;               // the pid inside its own PID namespace (== pid when not in one)
  std::string comm;
  std::string exe;
  std::string command;      // the script or the command line, shortened for a column
  bool libnode = false;     // V8 is in libnode.so, not in the executable
  std::string cgroup_path;  // memory cgroup path ("" when none)
  std::optional<ContainerRef> container;
};

// The executable a process runs, as one look at one file: its path and whether it is Node. A process can
// exec between two reads of /proc/PID/exe (a shell that execs node), and two reads would pair one
// program's path with another program's verdict.
struct Executable {
  std::string path;
  bool is_node = false;        // a node binary, by its name
  bool needs_libnode = false;  // names libnode.so among the libraries it needs (DT_NEEDED)
  dev_t device = 0;            // the file, to tell whether the process still runs it
  ino_t inode = 0;
  bool runs_node() const { return is_node || needs_libnode; }
};

// The executable pid runs now. A program that embeds Node is known from its exec on, before the loader has
// mapped libnode.so. Its DT_NEEDED is decided once per file (device, inode, size, mtime; the last 1024
// files): another exec of a program seen before costs one open, fstat and readlink. A program that loads
// libnode.so with dlopen, or through another library, is not seen here (maps_libnode sees it once mapped).
Result<Executable> read_executable(pid_t pid);

// Whether pid maps libnode.so (a program that loads it later, with dlopen) and still runs exe, the
// executable read before its maps.
bool maps_libnode(pid_t pid, const Executable& exe);

// The Node process pid is now, as a host-wide view lists it; nullopt when it is gone or not Node.
std::optional<NodeProcess> describe_node_process(pid_t pid);

// The command line as a column shows it: node's own options dropped, the script and its arguments kept.
std::string short_command(const std::vector<std::string>& argv, size_t max_chars);

// Finds the Node processes among those running now. Remembers its decision per process (pid and start
// time), so that a refresh reads only new processes' maps.
class NodeProcessFinder {
 public:
  std::vector<NodeProcess> scan();

 private:
  struct Known {
    bool is_node = false;
    std::string exe;
  };
  std::map<std::pair<pid_t, uint64_t>, Known> known_;
};

}  // namespace memlens::host
