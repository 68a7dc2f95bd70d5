#include "host/top_view.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <optional>
#include <set>

#include "common/safe_file.h"
#include "proc/procfs.h"

namespace memlens::host {

namespace {

constexpr double kGrowthWindowS = 60;

struct FdCounts {
  uint32_t fds = 0, sockets = 0;
};

FdCounts count_fds(pid_t pid) {
  FdCounts c;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(fmt::format("/proc/{}/fd", pid), ec)) {
    ++c.fds;
    auto target = std::filesystem::read_symlink(e.path(), ec);
    if (!ec && target.native().rfind("socket:", 0) == 0) ++c.sockets;
  }
  return c;
}

}  // namespace

std::optional<TopSort> parse_top_sort(const std::string& column) {
  if (column == "rss") return TopSort::kRss;
  if (column == "growth") return TopSort::kGrowth;
  if (column == "pid") return TopSort::kPid;
  if (column == "limit") return TopSort::kTimeToLimit;
  if (column == "fds") return TopSort::kFds;
  return std::nullopt;
}

TopView::TopView(TopFilter filter) : filter_(std::move(filter)) {
  auto listener = NodeLifecycleListener::start();
  if (listener)
    lifecycle_ = std::move(*listener);
  else
    host_.lifecycle_source = "scans of /proc (" + listener.error().describe() + ")";
}

// A SIGKILL'd Node process whose cgroup (or, where that cannot be read, the host) counted more OOM kills
// than its baseline: the OOM killer's. Its row of the refresh before is what it looked like last. The
// counters are read after the kills are taken: the kernel counts a kill before its SIGKILL, so each kill
// taken is in them.
void TopView::note_oom_kills(double t_s, const std::vector<TopRow>& now) {
  auto killed = lifecycle_->take_killed();
  if (killed.empty()) return;
  std::optional<uint64_t> host_kills = host_oom_kills();
  for (const auto& k : killed) {
    auto before =
        std::find_if(rows_.begin(), rows_.end(), [&](const TopRow& r) { return r.process.pid == k.pid; });
    if (before == rows_.end()) continue;  // not seen by a refresh: nothing to say of it
    model::OomCounters after{std::nullopt, host_kills};
    if (!before->process.cgroup_path.empty())
      after.cgroup =
          oom_kills_in(host_cgroup_mounts().memory_v1.empty() ? "v2" : "v1", before->process.cgroup_path);
    // A cgroup removed with its last process: another process of it listed now read it during the scan.
    for (const auto& r : now)
      if (!after.cgroup && r.process.cgroup_path == before->process.cgroup_path) after.cgroup = r.oom_kills;
    if (model::oom_kill_seen_by(before->oom_kills_before, after) == model::OomKillSeenBy::kNone) continue;
    oom_kills_.push_back({*before, t_s});
    if (oom_kills_.size() > kOomKillsKept) oom_kills_.erase(oom_kills_.begin());
  }
}

bool TopFilter::matches(const NodeProcess& p) const {
  if (pid && p.pid != *pid) return false;
  if (!container.empty() && (!p.container || p.container->id.rfind(container, 0) != 0)) return false;
  if (!cgroup.empty() && p.cgroup_path.find(cgroup) == std::string::npos) return false;
  return true;
}

void TopView::refresh(double t_s) {
  std::vector<TopRow> rows;
  std::set<std::pair<pid_t, uint64_t>> now;
  std::optional<uint64_t> host_kills = host_oom_kills();
  for (auto& p : finder_.scan()) {
    if (!filter_.matches(p)) continue;
    auto status = proc::read_status(p.pid);
    if (!status) continue;  // gone since the scan
    std::pair<pid_t, uint64_t> key{p.pid, p.start_time_ticks};
    now.insert(key);
    TopRow r;
    r.rss_bytes = status->vm_rss;
    r.anon_bytes = status->rss_anon;
    r.file_bytes = status->rss_file + status->rss_shmem;
    auto& h = history_[key];
    h.rss.emplace_back(t_s, r.rss_bytes);
    while (h.rss.size() > 2 && h.rss.front().first < t_s - kGrowthWindowS) h.rss.pop_front();
    if (h.rss.size() >= 2 && h.rss.back().first > h.rss.front().first)
      r.growth_bytes_per_s =
          (static_cast<double>(h.rss.back().second) - static_cast<double>(h.rss.front().second)) /
          (h.rss.back().first - h.rss.front().first);
    if (auto cg = memory_cgroup_of(p.pid)) {
      r.cgroup_usage_bytes = cg->usage_bytes;
      r.oom_kills = cg->oom_kills;
      if (cg->limit_bytes) {
        r.limit_bytes = cg->limit_bytes;
        r.limit_source = fmt::format("cgroup {} {}", cg->version, cg->limit_set_at);
      }
    }
    if (r.limit_bytes && r.growth_bytes_per_s && *r.growth_bytes_per_s > 0) {
      // The whole cgroup's usage counts against its limit, not only this process's RSS.
      uint64_t used = r.cgroup_usage_bytes.value_or(r.rss_bytes);
      r.seconds_to_limit =
          used >= *r.limit_bytes ? 0.0 : static_cast<double>(*r.limit_bytes - used) / *r.growth_bytes_per_s;
    }
    model::OomCounters kills{r.oom_kills, host_kills};
    if (h.rss.size() == 1)
      h.oom_kills = model::OomCounterBaseline(kills);
    else
      h.oom_kills.observe(kills, [&] { return proc::process_dying(p.pid); });
    r.oom_kills_before = h.oom_kills.baseline();
    auto fds = count_fds(p.pid);
    r.fds = fds.fds;
    r.sockets = fds.sockets;
    r.process = std::move(p);
    rows.push_back(std::move(r));
  }
  // Started and exited since the view began: a process seen for the first time after the first refresh
  // started meanwhile; one whose history is no longer in the scan has exited.
  for (const auto& key : now)
    if (!first_ && history_.count(key) && history_[key].rss.size() == 1) ++host_.node_started;
  for (auto it = history_.begin(); it != history_.end();) {
    if (now.count(it->first)) {
      ++it;
      continue;
    }
    ++host_.node_exited;
    it = history_.erase(it);
  }
  if (lifecycle_) note_oom_kills(t_s, rows);
  if (lifecycle_) {
    // The Node processes already running when the view began have their exits counted too. Only those:
    // a process a later scan finds has its exec event on the way, and marking it known first would keep
    // that event from counting its start.
    if (first_)
      for (const auto& r : rows) lifecycle_->track(r.process.pid);
    auto c = lifecycle_->counts();
    host_.node_started = c.started;
    host_.node_exited = c.exited;
    host_.lifecycle_events_lost = c.overruns;
    host_.lifecycle_unclassified = c.unclassified;
    host_.lifecycle_source = "kernel process events";
  }
  first_ = false;
  host_.node_now = rows.size();
  if (auto mem = host_memory()) {
    host_.mem_total_bytes = mem->total_bytes;
    host_.mem_available_bytes = mem->available_bytes;
  }
  rows_ = std::move(rows);
}

std::vector<TopRow> TopView::rows(TopSort sort) const {
  std::vector<TopRow> out = rows_;
  auto growth = [](const TopRow& r) { return r.growth_bytes_per_s.value_or(-1e300); };
  auto to_limit = [](const TopRow& r) { return r.seconds_to_limit.value_or(1e300); };
  std::stable_sort(out.begin(), out.end(), [&](const TopRow& a, const TopRow& b) {
    switch (sort) {
      case TopSort::kRss:
        return a.rss_bytes > b.rss_bytes;
      case TopSort::kGrowth:
        return growth(a) > growth(b);
      case TopSort::kPid:
        return a.process.pid < b.process.pid;
      case TopSort::kTimeToLimit:
        return to_limit(a) < to_limit(b);
      case TopSort::kFds:
        return a.fds > b.fds;
    }
    return false;
  });
  return out;
}

}  // namespace memlens::host
