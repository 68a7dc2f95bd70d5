#include "collect/attribution_extension.h"

#include <fmt/format.h>
#include <signal.h>
#include <time.h>

#include <algorithm>
#include <map>
#include <optional>
#include <tuple>

#include "common/clock.h"
#include "common/safe_file.h"
#include "host/cgroup.h"
#include "model/attribution.h"
#include "proc/procfs.h"

namespace memlens::collect {

namespace {

// The effective memory limit of the process's cgroup (v1 or v2, the lowest up the hierarchy: any of
// them can OOM-kill it), and its fd limit.
model::ProcessLimits read_limits(pid_t pid) {
  model::ProcessLimits l;
  if (auto cg = host::memory_cgroup_of(pid)) {
    l.cgroup_path = cg->path;
    l.cgroup_memory_max_bytes = cg->limit_bytes;
    l.cgroup_version = cg->version;
    l.cgroup_limit_set_at = cg->limit_set_at;
  }
  if (auto text = read_text_file(fmt::format("/proc/{}/limits", pid), 64 << 10))
    l.nofile_soft = model::parse_nofile_soft_limit(*text);
  return l;
}

// The memory the limit is measured against, now: the limit-holding cgroup's whole usage, the host's.
void read_memory_usage(model::ProcessLimits& l, double t_s) {
  if (l.cgroup_memory_max_bytes && !l.cgroup_limit_set_at.empty())
    l.cgroup_usage_bytes = host::memory_usage_in(l.cgroup_version, l.cgroup_limit_set_at);
  if (auto host = host::host_memory()) {
    l.host_memory_bytes = host->total_bytes;
    l.host_memory_available_bytes = host->available_bytes;
  }
  l.memory_read_at_s = t_s;
}

// The kernel's OOM-kill counters that cover a process: its memory cgroup's (as found when tracking began)
// and the host's. Two small reads, for every sample.
model::OomCounters read_oom_counters(const model::ProcessLimits& limits) {
  model::OomCounters c;
  if (!limits.cgroup_path.empty()) c.cgroup = host::oom_kills_in(limits.cgroup_version, limits.cgroup_path);
  c.host = host::host_oom_kills();
  return c;
}

// The category whose resident bytes grew most between the first and the last sample that had categories.
std::pair<std::string, int64_t> largest_growth(const model::Process& p) {
  const model::Sample* first = nullptr;
  const model::Sample* last = nullptr;
  for (const auto& s : p.timeline)
    if (!s.categories.empty()) {
      if (!first) first = &s;
      last = &s;
    }
  std::pair<std::string, int64_t> best{"", 0};
  if (!first) return best;
  for (const auto& [name, bytes] : last->categories) {
    if (name == "unexplained") continue;
    auto before = first->categories.find(name);
    int64_t grew = static_cast<int64_t>(bytes) -
                   static_cast<int64_t>(before == first->categories.end() ? 0 : before->second);
    if (grew > best.second) best = {name, grew};
  }
  return best;
}

class AttributionExtension final : public TraceExtension {
 public:
  explicit AttributionExtension(const AttributionOptions& opts) : opts_(opts) {}

  std::string name() const override { return "attribution"; }

  void on_track(model::Trace& trace, model::Process& p, bool) override {
    trace_ = &trace;
    p.attribution.limits = read_limits(p.pid());
    p.attribution.oom_counters_before = read_oom_counters(p.attribution.limits);
    oom_baselines_.insert_or_assign(p.key(), model::OomCounterBaseline(p.attribution.oom_counters_before));
    p.attribution.interval_s = opts_.min_interval_s;
    next_read_s_[p.key()] = 0;        // the first sample measures
    figures_at_read_.erase(p.key());  // after an exec, whatever the figures: another program's mappings
  }

  void on_untrack(model::Process& p) override {
    next_read_s_.erase(p.key());
    figures_at_read_.erase(p.key());
    oom_baselines_.erase(p.key());
    if (p.exit_status == 128 + SIGKILL) note_oom_kill(p);
  }

  void on_sample(model::Process& p, model::Sample& s) override {
    auto it = next_read_s_.find(p.key());
    if (it != next_read_s_.end() && s.t_s >= it->second) {
      std::optional<uint64_t> ab = live_array_buffers(p, &s);
      ResidentFigures now{s.rss, ab.value_or(0), p.v8.probed};
      auto& at_read = figures_at_read_[p.key()];
      if (p.attribution.last && s.t_s - p.attribution.last_at_s < opts_.max_interval_s && at_read &&
          unchanged(*at_read, now)) {
        ++p.attribution.reads_skipped_unchanged;
        it->second = s.t_s + p.attribution.interval_s;
      } else if (measure(p, s.t_s, ab)) {
        it->second = s.t_s + p.attribution.interval_s;
        at_read = now;
      }
    }
    fill_sample(p, s);
    if (!p.alive()) return;
    // The baseline an OOM kill is judged against moves only while the process is not dying.
    auto& baseline = oom_baselines_[p.key()];
    if (!baseline.observe(read_oom_counters(p.attribution.limits),
                          [&] { return proc::process_dying(p.pid()); }))
      return;
    p.attribution.oom_counters_before = baseline.baseline();
    read_memory_usage(p.attribution.limits, s.t_s);
  }

  void on_finish(model::Trace& trace) override {
    // The last figures are taken at the very end, so the breakdown matches the RSS the report prints.
    double t = trace.seconds_since_start(boot_ns());
    for (auto* p : trace.processes.live()) {
      std::optional<uint64_t> ab =
          live_array_buffers(*p, p->timeline.empty() ? nullptr : &p->timeline.back());
      if (measure(*p, t, ab)) p->attribution.final_read = true;
    }
  }

 private:
  // A SIGKILL that the kernel marked as the OOM killer's on the exit event, where it marks them; else one
  // with an OOM-kill counter that covers the process risen since its baseline. The counters say which
  // limit it ran into either way. The cgroup is read through the exited process's last known path.
  void note_oom_kill(model::Process& p) {
    auto& st = p.attribution;
    model::OomKillSeenBy seen = model::oom_kill_seen_by(st.oom_counters_before, read_oom_counters(st.limits));
    bool marks = opts_.oom_victims_marked && opts_.oom_victims_marked() && p.oom_victim_marked.has_value();
    if (marks && !*p.oom_victim_marked) return;  // another process's kill raised the counters, if any
    bool counted = seen != model::OomKillSeenBy::kNone;
    if (marks && !counted)
      seen = st.limits.cgroup_memory_max_bytes ? model::OomKillSeenBy::kCgroup : model::OomKillSeenBy::kHost;
    if (seen == model::OomKillSeenBy::kNone) return;
    bool by_cgroup = seen == model::OomKillSeenBy::kCgroup;
    model::OomKill k;
    k.decided_by = marks ? "kernel" : "counters";
    k.scope_counted = counted;
    k.at_s = p.exited_at_s.value_or(trace_ ? trace_->seconds_since_start(boot_ns()) : 0);
    k.scope =
        by_cgroup ? fmt::format("cgroup {} {}", st.limits.cgroup_version, st.limits.cgroup_path) : "host";
    if (by_cgroup) k.limit_bytes = st.limits.cgroup_memory_max_bytes;
    std::tie(k.grew_most, k.grew_most_bytes) = largest_growth(p);
    st.oom_kill = k;
  }

  // What a breakdown is a split of: when none of it moved, neither did the split, to within the tolerance.
  // Bytes can still move between categories at an unchanged RSS (a heap that grew as malloc gave back as
  // much): max_interval_s bounds how long that goes unseen. V8's probes attaching changes how the
  // mappings are read (code ranges, the V8 host), so it is a change too.
  struct ResidentFigures {
    model::RssFigures rss;
    uint64_t array_buffers = 0;
    bool v8_probed = false;
  };

  bool unchanged(const ResidentFigures& then, const ResidentFigures& now) const {
    double tolerance =
        std::max(opts_.unchanged_bytes, opts_.unchanged_share * static_cast<double>(then.rss.total()));
    auto moved = [&](uint64_t a, uint64_t b) {
      return static_cast<double>(a > b ? a - b : b - a) > tolerance;
    };
    return !moved(then.rss.anon_bytes, now.rss.anon_bytes) &&
           !moved(then.rss.file_bytes, now.rss.file_bytes) &&
           !moved(then.rss.shmem_bytes, now.rss.shmem_bytes) &&
           !moved(then.array_buffers, now.array_buffers) && then.v8_probed == now.v8_probed;
  }

  static std::optional<uint64_t> live_array_buffers(const model::Process& p, const model::Sample* s) {
    if (p.v8.array_buffers_probed) return p.v8.array_buffer_live_bytes;
    if (s && s->array_buffers_bytes) return s->array_buffers_bytes;
    return std::nullopt;
  }

  bool measure(model::Process& p, double t_s, std::optional<uint64_t> array_buffers) {
    auto& st = p.attribution;
    double t0 = (monotonic_s() * 1e3);
    // The sample's own read of the maps, when the tracer made one (the look for unmapped ranges).
    const std::vector<proc::MapEntry>* sample_maps = p.maps_at_sample.get();
    auto read = proc::read_resident(p.pid(), sample_maps);
    double ms = (monotonic_s() * 1e3) - t0;
    // A process that has exited (or a zombie, whose maps are empty) keeps its last measurement.
    if (!read || read->entries.empty()) {
      ++st.read_failures;
      return false;
    }
    const std::vector<proc::SmapsEntry>* smaps = &read->entries;
    st.read_by_scan = read->by_scan;
    ++st.reads;
    st.read_ms_total += ms;
    st.read_ms_max = std::max(st.read_ms_max, ms);
    st.interval_s = std::clamp(ms / 1000.0 / opts_.cpu_budget, opts_.min_interval_s, opts_.max_interval_s);

    // A scan of the sample's maps measured exactly those mappings: their code ranges need no copy.
    const std::vector<proc::MapEntry>* maps = read->of_given_maps ? sample_maps : nullptr;
    std::vector<proc::MapEntry> read_maps;
    if (!maps) {
      read_maps.reserve(smaps->size());
      for (const auto& e : *smaps) read_maps.push_back(e.map);
      maps = &read_maps;
    }
    bool node_exe = p.v8.probed || model::looks_like_node(p.exe);
    model::AttributionInput in;
    in.smaps = smaps;
    in.model = &p.address_space;
    in.code = model::CodeRanges::from_maps(*maps, p.exe, node_exe);
    in.v8_host = node_exe || !in.code.v8_host.empty();
    in.array_buffer_live_bytes = array_buffers;
    st.last = model::reconcile(model::attribute(in), p.rss.total());
    st.last_at_s = t_s;
    uint64_t now = boot_ns();
    st.last_process_age_s = p.start_time_ns && now > p.start_time_ns ? (now - p.start_time_ns) / 1e9 : 0;
    return true;
  }

  // Every sample carries the categories of the latest measurement, set against the sample's own RSS: what
  // changed since the measurement shows as unexplained until the next one.
  static void fill_sample(const model::Process& p, model::Sample& s) {
    if (!p.attribution.last) return;
    auto r = model::reconcile(p.attribution.last->breakdown, s.rss.total());
    for (auto c : model::kAttributionCategories)
      s.categories[std::string(model::category_name(c))] = r.breakdown[c];
    s.categories["unexplained"] = r.unexplained_bytes;
  }

  AttributionOptions opts_;
  model::Trace* trace_ = nullptr;
  std::map<model::ProcessKey, double> next_read_s_;
  std::map<model::ProcessKey, std::optional<ResidentFigures>> figures_at_read_;
  std::map<model::ProcessKey, model::OomCounterBaseline> oom_baselines_;
};

}  // namespace

std::unique_ptr<TraceExtension> make_attribution_extension(const AttributionOptions& opts) {
  return std::make_unique<AttributionExtension>(opts);
}

}  // namespace memlens::collect
