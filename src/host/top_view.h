// The figures of `memlens top`: every Node process of the host, sampled from /proc and its memory
// cgroup at each refresh, with its growth over the last minute and the time until its cgroup's limit at
// that rate. No probe is attached: a viewer costs the host what reading /proc costs.
#pragma once

#include <sys/types.h>

#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "host/node_processes.h"
#include "host/process_events.h"
#include "model/attribution.h"

namespace memlens::host {

struct TopRow {
  NodeProcess process;
  uint64_t rss_bytes = 0, anon_bytes = 0, file_bytes = 0;
  std::optional<double> growth_bytes_per_s;  // RSS, over up to the last minute; nullopt before 2 samples
  std::optional<uint64_t> limit_bytes;       // effective memory limit (cgroup), else none
  std::string limit_source;                  // "cgroup v1 /a", "cgroup v2 /a", "" when none
  std::optional<uint64_t> cgroup_usage_bytes;
  std::optional<double> seconds_to_limit;  // when growing and limited: (limit - cgroup usage) / growth
  std::optional<uint64_t> oom_kills;       // in its cgroup
  model::OomCounters oom_kills_before;     // what its SIGKILL would be judged against (its cgroup's, host's)
  uint32_t fds = 0, sockets = 0;
};

// A Node process the OOM killer ended while the view ran, with its last figures.
struct OomKillSeen {
  TopRow last;      // its row at the refresh before the kill
  double at_s = 0;  // the view's clock
};

// Which Node processes a host-wide view or trace keeps.
struct TopFilter {
  std::optional<pid_t> pid;
  std::string container;  // id prefix
  std::string cgroup;     // substring of the cgroup path
  bool matches(const NodeProcess& p) const;
  bool empty() const { return !pid && container.empty() && cgroup.empty(); }
};

enum class TopSort { kRss, kGrowth, kPid, kTimeToLimit, kFds };
std::optional<TopSort> parse_top_sort(const std::string& column);  // "rss", "growth", "pid", "limit", "fds"

struct HostFigures {
  uint64_t mem_total_bytes = 0, mem_available_bytes = 0;
  size_t node_now = 0, node_started = 0, node_exited = 0;  // started/exited since the view began
  // Where started/exited come from: the kernel's process events (every one), or the refreshes' scans
  // (a process that lives less than one refresh is missed), with why.
  std::string lifecycle_source;
  uint64_t lifecycle_events_lost = 0;   // kernel messages dropped (socket overrun)
  uint64_t lifecycle_unclassified = 0;  // programs that ended before their executable could be read
};

class TopView {
 public:
  explicit TopView(TopFilter filter);
  // Samples every Node process now (t_s: the caller's clock, in seconds).
  void refresh(double t_s);
  std::vector<TopRow> rows(TopSort sort) const;
  const HostFigures& host() const { return host_; }
  const std::vector<OomKillSeen>& oom_kills() const { return oom_kills_; }  // oldest first, the last few

 private:
  struct History {
    std::deque<std::pair<double, uint64_t>> rss;  // (t, bytes), the last minute
    model::OomCounterBaseline oom_kills;
  };
  void note_oom_kills(double t_s, const std::vector<TopRow>& now);
  static constexpr size_t kOomKillsKept = 5;

  TopFilter filter_;
  NodeProcessFinder finder_;
  std::unique_ptr<NodeLifecycleListener> lifecycle_;
  std::map<std::pair<pid_t, uint64_t>, History> history_;
  std::vector<TopRow> rows_;
  std::vector<OomKillSeen> oom_kills_;
  HostFigures host_;
  bool first_ = true;
};

}  // namespace memlens::host
