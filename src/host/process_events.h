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
#include <thread>
#include <vector>

#include "common/result.h"

namespace memlens::host {

// Counts of Node processes started (exec'd a Node program) and exited since the listener began.
struct NodeLifecycleCounts {
  uint64_t started = 0;
  uint64_t exited = 0;
  uint64_t overruns = 0;  // times the kernel dropped messages (socket buffer full): counts are lower bounds
};

// A Node process that died of SIGKILL: the OOM killer's signal (or anyone's: the caller checks the
// cgroup's OOM-kill counter).
struct NodeKilled {
  pid_t pid = 0;
  double at_monotonic_s = 0;
};

class NodeLifecycleListener {
 public:
  // Needs CAP_NET_ADMIN (and the kernel's CONFIG_PROC_EVENTS); the error says which failed.
  static Result<std::unique_ptr<NodeLifecycleListener>> start();
  ~NodeLifecycleListener();
  NodeLifecycleCounts counts() const;
  // A Node process that was running before the listener began: its exit is counted too.
  void track(pid_t pid);
  // The Node processes killed by SIGKILL since the last call.
  std::vector<NodeKilled> take_killed();

 private:
  NodeLifecycleListener() = default;
  void run();
  void on_exec(pid_t tgid);
  void on_exit(pid_t tgid, uint32_t exit_code);

  int sock_ = -1;
  int stop_pipe_[2] = {-1, -1};
  std::thread thread_;
  mutable std::mutex mu_;
  NodeLifecycleCounts counts_;
  std::set<pid_t> live_node_;  // Node processes seen exec'ing, until their exit
  std::vector<NodeKilled> killed_;
};

}  // namespace memlens::host
