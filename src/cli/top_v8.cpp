#include "cli/top_v8.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <set>

#include "analyze/top_verdict.h"
#include "common/clock.h"
#include "common/units.h"
#include "proc/procfs.h"

namespace memlens::cli {

namespace {

// A verdict needs minutes, not hours: older points are dropped.
constexpr double kHistoryS = 600;
constexpr size_t kMaxHistoryPoints = 600;

double boot_s() {
  return static_cast<double>(boot_ns()) / 1e9;
}

template <typename T>
void trim_history(std::deque<T>& points, double now_s) {
  while (!points.empty() && (points.size() > kMaxHistoryPoints || points.front().t_s < now_s - kHistoryS))
    points.pop_front();
}

// JIT code: V8's code space is anonymous executable memory (node's own code is file-backed). Its resident
// pages from the maps and the pagemap: reading smaps would walk every mapping (about 4 ms for a node).
std::optional<uint64_t> anonymous_executable_rss(pid_t pid) {
  auto maps = proc::read_maps(pid);
  if (!maps) return std::nullopt;
  uint64_t bytes = 0;
  for (const auto& m : *maps) {
    if (!m.exec || !(m.path.empty() || m.path.starts_with("[anon:"))) continue;
    auto r = proc::resident_bytes(pid, m.start, m.end);
    if (!r) return std::nullopt;
    bytes += *r;
  }
  return bytes;
}

}  // namespace

TopV8Columns::TopV8Columns(uint32_t max_processes) : max_(max_processes) {
  boot0_s_ = last_s_ = boot_s();
  if (max_ == 0) {
    unavailable_ = "--v8-max 0";
    return;
  }
  auto p = collect::V8GcProbes::open_and_load();
  if (p)
    probes_ = std::move(*p);
  else
    unavailable_ = p.error().describe();
}

void TopV8Columns::update(const std::vector<host::TopRow>& rows) {
  double now = boot_s();
  double interval = now - last_s_;
  std::map<pid_t, std::vector<collect::GcSeen>> gcs;
  if (probes_) gcs = probes_->take_gcs();
  std::set<pid_t> shown;
  for (const auto& r : rows) {
    pid_t pid = r.process.pid;
    shown.insert(pid);
    auto it = procs_.find(pid);
    if (it != procs_.end() && it->second.start_time_ticks != r.process.start_time_ticks) {
      if (probes_) probes_->detach(pid);  // the pid now names another process
      procs_.erase(it);
      it = procs_.end();
    }
    bool fresh = it == procs_.end();
    auto& st = procs_[pid];
    if (fresh) {
      st.start_time_ticks = r.process.start_time_ticks;
      if (!probes_) {
        st.why_not = unavailable_;
      } else if (probes_->attached_count() >= max_) {
        st.why_not = fmt::format("at most {} processes are probed (--v8-max)", max_);
      } else if (auto a = probes_->attach(pid); a) {
        st.probed = true;
      } else {
        st.why_not = a.error().describe();
      }
    }
    st.rss.push_back({now - boot0_s_, static_cast<double>(r.rss_bytes)});
    trim_history(st.rss, now - boot0_s_);
    if (!st.probed) continue;
    st.code = anonymous_executable_rss(pid);
    st.heap_committed = probes_->heap_committed(pid);
    st.array_buffers = probes_->array_buffer_bytes(pid, now);
    double paused = 0;
    for (const auto& g : gcs[pid]) {
      paused += g.seconds;
      if (!g.heap_used_after_bytes) continue;
      st.heap_used_after_gc = g.heap_used_after_bytes;
      st.gcs.push_back({g.end_s - boot0_s_, static_cast<double>(*g.heap_used_after_bytes), g.full});
    }
    trim_history(st.gcs, now - boot0_s_);
    // The first update attaches: its interval is not one the probes watched.
    if (!fresh && interval > 0) st.gc_share = std::clamp(paused / interval, 0.0, 1.0);
  }
  for (auto it = procs_.begin(); it != procs_.end();) {
    if (shown.count(it->first)) {
      ++it;
      continue;
    }
    if (probes_) probes_->detach(it->first);
    it = procs_.erase(it);
  }
  last_s_ = now;
}

TopV8Cells TopV8Columns::cells(const host::TopRow& row) const {
  TopV8Cells c;
  auto it = procs_.find(row.process.pid);
  if (it == procs_.end()) return c;
  const auto& st = it->second;
  std::vector<analyze::SeriesPoint> rss(st.rss.begin(), st.rss.end());
  std::vector<analyze::GcPoint> gcs(st.gcs.begin(), st.gcs.end());
  c.verdict = analyze::top_verdict(rss, gcs);
  auto bytes = [](std::optional<uint64_t> v) { return v ? format_bytes(static_cast<double>(*v)) : "-"; };
  if (st.heap_used_after_gc) c.heap_used = bytes(st.heap_used_after_gc);
  c.heap_committed = bytes(st.heap_committed);
  c.array_buffers = bytes(st.array_buffers);
  c.code = bytes(st.code);
  // Anonymous resident memory that is none of the above: native allocations. V8's heap counts by its used
  // bytes (live objects are resident; its committed pages need not be), ArrayBuffers by their size.
  if (st.heap_used_after_gc) {
    uint64_t known = *st.heap_used_after_gc + st.array_buffers.value_or(0) + st.code.value_or(0);
    c.native = bytes(row.anon_bytes > known ? row.anon_bytes - known : 0);
  }
  if (st.gc_share) c.gc_share = fmt::format("{:.1f}", 100 * *st.gc_share);
  return c;
}

std::string TopV8Columns::header() const {
  size_t probed = 0;
  std::vector<std::string> not_probed;
  for (const auto& [pid, st] : procs_) {
    if (st.probed)
      ++probed;
    else
      not_probed.push_back(fmt::format("{} ({})", pid, st.why_not));
  }
  std::string out = fmt::format("V8 GC probes: {} processes", probed);
  if (probes_) out += fmt::format(", GC events lost {}", probes_->lost());
  if (!not_probed.empty()) {
    out += fmt::format(
        "; not probed: {}",
        fmt::join(not_probed.begin(), not_probed.begin() + std::min<size_t>(not_probed.size(), 5), ", "));
    if (not_probed.size() > 5) out += fmt::format(" and {} more", not_probed.size() - 5);
  }
  return out + "\n";
}

}  // namespace memlens::cli
