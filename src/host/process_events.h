// Every exec and exit of the host as the kernel announces them (the proc connector, a netlink socket):
// a host-wide view counts Node processes that live for less than one refresh, which /proc scans miss. No
// probe: the kernel sends these messages only while someone listens, one per exec or exit.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/result.h"

namespace memlens::host {

// Counts of Node processes started (exec'd a Node program) and exited since the listener began.
struct NodeLifecycleCounts {
  uint64_t started = 0;
  uint64_t exited = 0;
  uint64_t overruns = 0;  // times the kernel dropped messages (socket buffer full): counts are lower bounds
  // Programs exec'd that ended before their executable could be read: whether they were Node is not known.
  uint64_t unclassified = 0;
};

// A Node process that died of SIGKILL: the OOM killer's signal (or anyone's: the caller checks the
// cgroup's OOM-kill counter).
struct NodeKilled {
  pid_t pid = 0;
  double at_monotonic_s = 0;
};

// A Node process the kernel announced: its exec of a node binary, or of a program that needs libnode.so
// (DT_NEEDED, read from its executable at the exec, before the loader maps the library).
struct NodeStarted {
  pid_t pid = 0;
  std::string exe;
  double at_monotonic_s = 0;  // when the exec was announced
  bool libnode = false;
};

class NodeLifecycleListener {
 public:
  // Needs CAP_NET_ADMIN (and the kernel's CONFIG_PROC_EVENTS); the error says which failed. With
  // `keep_started`, the Node processes that start are kept for take_started() (a host-wide trace attaches
  // them); without, they are only counted (top).
  static Result<std::unique_ptr<NodeLifecycleListener>> start(bool keep_started = false);
  ~NodeLifecycleListener();
  NodeLifecycleCounts counts() const;
  // A Node process that was running before the listener began: its exit is counted too.
  void track(pid_t pid);
  // The Node processes killed by SIGKILL since the last call.
  std::vector<NodeKilled> take_killed();
  // The Node processes started since the last call (with keep_started), in the order they started.
  std::vector<NodeStarted> take_started();

 private:
  NodeLifecycleListener() = default;
  void run();
  void on_exec(pid_t tgid);
  void on_exit(pid_t tgid, uint32_t exit_code);
  void node_started(pid_t tgid, std::string exe, double at_s, bool libnode);  // with mu_ held

  int sock_ = -1;
  int stop_pipe_[2] = {-1, -1};
  std::thread thread_;
  mutable std::mutex mu_;
  NodeLifecycleCounts counts_;
  std::set<pid_t> live_node_;  // Node processes seen exec'ing, until their exit
  std::vector<NodeKilled> killed_;
  bool keep_started_ = false;
  std::vector<NodeStarted> started_;
};

}  // namespace memlens::host
