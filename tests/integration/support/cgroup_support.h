// A memory cgroup with a limit, made by a test on whichever hierarchy holds the memory controller (v1
// here, v2 elsewhere) and removed after it, once its processes are gone. With `limit_on_parent`, the limit
// is set on the cgroup and the processes go into a child of it: the limit applies through the hierarchy.
#pragma once

#include <cstdint>
#include <string>

namespace memlens::testing {

class LimitedCgroup {
 public:
  LimitedCgroup(const std::string& name, uint64_t limit_bytes, bool limit_on_parent = false);
  ~LimitedCgroup();
  LimitedCgroup(const LimitedCgroup&) = delete;
  LimitedCgroup& operator=(const LimitedCgroup&) = delete;

  // Where processes go ("echo $$ > dir()/cgroup.procs"): the limited cgroup, or its child.
  const std::string& dir() const { return procs_dir_; }
  // The limited cgroup's path inside its hierarchy ("/name"), as /proc/PID/cgroup names it.
  std::string limited_path() const { return "/" + name_; }
  bool v1() const { return v1_; }
  uint64_t oom_kills() const;
  // The limited cgroup's whole usage, as the kernel counts it (memory.usage_in_bytes, memory.current).
  uint64_t usage_bytes() const;

 private:
  std::string name_;
  std::string dir_;        // the limited cgroup
  std::string procs_dir_;  // where processes go
  bool v1_ = false;
};

}  // namespace memlens::testing
