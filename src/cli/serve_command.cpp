// memlens serve: traces every Node process of the host until stopped and answers Prometheus (/metrics),
// pprof tools (/debug/pprof/<kind>?pid=) and people (/, /report.html?pid=) over HTTP. docs/serve.md.
//
// Threads: the tracing thread owns the model. At each sample it renders what /metrics and / show into an
// immutable snapshot and swaps it in under a mutex; HTTP handlers (cpp-httplib's pool, with read and write
// timeouts) only copy that pointer. Profiles and reports need the model: a handler queues a job that the
// tracing thread runs between two polls (about every 100 ms) and waits for its answer, never holding the
// tracer. Memory stays bounded: an exited process is dropped from the model at the next sample, and the
// histories of long-lived ones are capped.
#include <fmt/format.h>
#include <httplib.h>
#include <malloc.h>
#include <sys/resource.h>
#include <unistd.h>

#include <array>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <thread>

#include "analyze/verdicts.h"
#include "cli/commands.h"
#include "cli/host_wide.h"
#include "cli/signals.h"
#include "cli/trace_session.h"
#include "collect/bpf_map_fill.h"
#include "common/clock.h"
#include "common/json_text.h"
#include "common/safe_file.h"
#include "host/cgroup.h"
#include "host/node_processes.h"
#include "model/stack_kinds.h"
#include "proc/procfs.h"
#include "report/html.h"
#include "report/json_report.h"
#include "report/pprof.h"
#include "report/prometheus.h"
#include "report/verdict_section.h"

namespace memlens::cli {

namespace {

// What a long-running trace keeps of a live process's history.
constexpr size_t kTimelineSamples = 3600;  // an hour at the default interval: the verdicts' window
constexpr size_t kGcEventsKept = 4096;
constexpr size_t kFdSeriesKept = 3600;
constexpr size_t kNotesKept = 32;
constexpr size_t kMissedKept = 100;
constexpr size_t kSkippedKept = 100;
constexpr double kVerdictEveryS = 10;
// Copies of each process's stack weights, for profiles of the last N seconds.
constexpr double kStackCopyEveryS = 10;
constexpr size_t kStackCopies = 61;
constexpr int kMaxWindowS = 600;
constexpr double kPruneEveryS = 60;
constexpr double kTrimEveryS = 5;
constexpr auto kJobWait = std::chrono::seconds(20);
const std::vector<double> kGcBoundsS = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                        0.05,   0.1,   0.25,   0.5,   1,    2.5};

struct GcHistogram {
  std::vector<uint64_t> buckets = std::vector<uint64_t>(kGcBoundsS.size());  // cumulative, per bound
  double sum_s = 0;
  uint64_t count = 0;
};

// serve's own figures of one process; dropped with it.
struct ProcessState {
  std::string command, container;
  std::map<std::string, GcHistogram> gc;  // by GC kind
  size_t gcs_counted = 0;                 // p.v8.gcs[0, gcs_counted) are in gc
  std::vector<analyze::Verdict> verdicts;
  double verdicts_at_s = -1e18;
  std::deque<std::pair<double, model::StackTable>> stack_copies;
  double copied_at_s = -1e18;
  bool counted_unexported = false;
};

struct Listed {
  pid_t pid = 0;
  std::string command, container;
  uint64_t rss_bytes = 0;
  std::vector<std::string> kinds;
};

// What /metrics and / show, rendered at one sample; never changed once published.
struct Snapshot {
  std::string metrics;
  std::vector<Listed> processes;
  uint64_t unexported = 0;
};

// A request that needs the model, run on the tracing thread.
struct Job {
  std::function<void(Job&)> work;
  int status = 500;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  std::mutex m;
  std::condition_variable cv;
  bool done = false;
  void finish() {
    std::lock_guard l(m);
    done = true;
    cv.notify_all();
  }
};

std::string html_escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '&':
        out += "&amp;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string container_of(pid_t pid) {
  auto text = read_text_file(fmt::format("/proc/{}/cgroup", pid), 64 << 10);
  if (!text) return "";
  auto m = host::parse_proc_cgroup(*text);
  std::optional<host::ContainerRef> c;
  if (m.memory_v1) c = host::container_from_cgroup_path(*m.memory_v1);
  if (!c && m.unified) c = host::container_from_cgroup_path(*m.unified);
  return c ? c->short_id() : "";
}

template <typename T>
void keep_last(std::vector<T>& v, size_t n) {
  // Erased in batches: the cost of a trim is spread over n additions.
  if (v.size() > n + n / 4) v.erase(v.begin(), v.end() - static_cast<std::ptrdiff_t>(n));
}

class Agent {
 public:
  Agent(TraceSession& session, const ServeOptions& opts) : session_(session), opts_(opts) {
    started_unix_s_ = static_cast<double>(time(nullptr));
  }

  // Tracing thread: after each sample.
  void on_sample() {
    model::Trace& trace = session_.trace();
    double now_s = trace.seconds_since_start(boot_ns());
    if (drop_exited(trace) && now_s - trimmed_at_s_ >= kTrimEveryS) {
      // The models of processes that ended were freed: give the pages back rather than keep the peak.
      malloc_trim(0);
      trimmed_at_s_ = now_s;
    }
    trim_info(trace.info);
    auto snap = std::make_shared<Snapshot>();
    report::PromExposition out;
    declare(out);
    size_t exported = 0;
    std::map<std::string, std::pair<std::optional<uint64_t>, std::optional<uint64_t>>> cgroups;
    for (auto* p : trace.processes.live()) {
      ProcessState& st = state_of(*p);
      trim_process(*p, st);
      count_gcs(*p, st);
      copy_stacks(*p, st, now_s);
      if (exported >= opts_.max_processes) {
        if (!st.counted_unexported) ++unexported_total_;
        st.counted_unexported = true;
        continue;
      }
      ++exported;
      if (now_s - st.verdicts_at_s >= kVerdictEveryS) {
        st.verdicts = analyze::analyze(report::analysis_input(*p));
        st.verdicts_at_s = now_s;
      }
      process_metrics(out, *p, st);
      auto& cg = cgroups[st.container];
      if (!cg.first) cg.first = p->attribution.limits.cgroup_memory_max_bytes;
      if (!cg.second) cg.second = p->attribution.limits.cgroup_usage_bytes;
      Listed l{p->pid(), st.command, st.container, p->rss.total(), {}};
      for (const auto& [kind, stacks] : p->stacks)
        if (!stacks.empty()) l.kinds.push_back(kind);
      snap->processes.push_back(std::move(l));
    }
    for (const auto& [container, cg] : cgroups) {
      if (cg.first) out.sample("memlens_cgroup_memory_limit_bytes", {{"container", container}}, *cg.first);
      if (cg.second) out.sample("memlens_cgroup_memory_usage_bytes", {{"container", container}}, *cg.second);
    }
    // 0 for every container with a traced process until a kill is seen: a counter that appears only at its
    // first increment hides that increment from increase() and rate(), and so from the alert rules.
    std::map<std::string, uint64_t> kills = oom_kills_;
    for (const auto& [container, cg] : cgroups) kills.try_emplace(container, 0);
    for (const auto& [container, n] : kills)
      out.sample("memlens_oom_kills_total", {{"container", container}}, n);
    if (now_s - pruned_at_s_ >= kPruneEveryS) prune_stacks(trace, now_s);
    health_metrics(out, trace, now_s);
    own_metrics(out);
    snap->metrics = out.text();
    snap->unexported = unexported_total_;
    std::lock_guard l(snapshot_mutex_);
    snapshot_ = std::move(snap);
  }

  // Tracing thread: runs the queued jobs.
  void run_jobs() {
    std::deque<std::shared_ptr<Job>> jobs;
    {
      std::lock_guard l(jobs_mutex_);
      jobs.swap(jobs_);
    }
    for (auto& j : jobs) {
      j->work(*j);
      j->finish();
    }
  }

  // HTTP threads.
  std::shared_ptr<const Snapshot> snapshot() {
    std::lock_guard l(snapshot_mutex_);
    return snapshot_;
  }

  // Queues work for the tracing thread and waits for it (false: it did not run in time, or memlens stops).
  std::shared_ptr<Job> run_on_tracer(std::function<void(Job&)> work) {
    auto job = std::make_shared<Job>();
    job->work = std::move(work);
    {
      std::lock_guard l(jobs_mutex_);
      if (stopping_) {
        job->status = 503;
        job->body = "memlens is stopping\n";
        return job;
      }
      jobs_.push_back(job);
    }
    std::unique_lock l(job->m);
    if (!job->cv.wait_for(l, kJobWait, [&] { return job->done; })) {
      auto late = std::make_shared<Job>();
      late->status = 503;
      late->body = "memlens did not answer in time (the tracer is busy); retry\n";
      return late;
    }
    return job;
  }

  // At the stop: pending jobs are answered, no new one is taken.
  void stop_jobs() {
    std::deque<std::shared_ptr<Job>> jobs;
    {
      std::lock_guard l(jobs_mutex_);
      stopping_ = true;
      jobs.swap(jobs_);
    }
    for (auto& j : jobs) {
      j->status = 503;
      j->body = "memlens is stopping\n";
      j->finish();
    }
  }

  // Jobs (tracing thread).
  void report_job(Job& job, pid_t pid, bool html);
  void pprof_job(Job& job, pid_t pid, const std::string& kind, std::optional<int> seconds);

 private:
  ProcessState& state_of(const model::Process& p) {
    auto [it, added] = states_.try_emplace(p.key());
    if (added || it->second.command.empty()) {
      it->second.command = host::short_command(p.cmdline, 60);
      if (added) it->second.container = container_of(p.pid());
    }
    return it->second;
  }

  // An exited process leaves the model at the next sample: its series disappear from that scrape on.
  // How many processes it dropped.
  size_t drop_exited(model::Trace& trace) {
    std::vector<model::ProcessKey> gone;
    for (const auto& p : trace.processes.all())
      if (!p->alive()) gone.push_back(p->key());
    for (const auto& key : gone) {
      model::Process* p = trace.processes.find(key);
      auto st = states_.find(key);
      std::string container = st != states_.end() ? st->second.container : "";
      if (p->attribution.oom_kill) ++oom_kills_[container];
      if (p->untraced.any()) ++forgotten_untraced_;
      for (const auto& [source, l] : p->lost_by_source)
        if (source != "kernel") forgotten_lost_ += l;  // the kernel's per-process figures are in its totals
      if (auto* stacks = session_.stacks()) stacks->forget(p->pid());
      if (st != states_.end()) states_.erase(st);
      trace.processes.forget(key);
      ++forgotten_;
    }
    return gone.size();
  }

  // The stack table keeps only the stacks live processes refer to (every stack of theirs is in p.stacks,
  // in a mapping or an open fd once the kernel's fault stacks are collected).
  void prune_stacks(model::Trace& trace, double now_s) {
    pruned_at_s_ = now_s;
    auto* stacks = session_.stacks();
    if (!stacks) return;
    std::set<int32_t> keep;
    for (auto* p : trace.processes.live()) {
      stacks->collect_kernel_stacks(*p);
      for (const auto& [kind, by_stack] : p->stacks)
        for (const auto& [id, w] : by_stack) keep.insert(id);
      for (const auto& m : p->address_space.mappings())
        if (m.stack_id >= 0) keep.insert(m.stack_id);
      for (const auto& [fd, e] : p->fds.entries())
        if (e.stack_id >= 0) keep.insert(e.stack_id);
    }
    stacks_pruned_ += collect::prune_stacks(session_.tracer().session(), keep);
  }

  void trim_info(model::TraceInfo& info) {
    if (info.missed_processes.size() > kMissedKept * 2) {
      size_t n = info.missed_processes.size() - kMissedKept;
      missed_dropped_ += n;
      info.missed_processes.erase(info.missed_processes.begin(),
                                  info.missed_processes.begin() + static_cast<std::ptrdiff_t>(n));
    }
    keep_last(info.probes_skipped, kSkippedKept);
  }

  void trim_process(model::Process& p, ProcessState& st) {
    // serve keeps the newest GCs itself, after counting them: the model's own thinning would remove GCs
    // before they are counted.
    p.v8.thin_gcs = false;
    keep_last(p.timeline, kTimelineSamples);
    keep_last(p.fds.fds_series, kFdSeriesKept);
    keep_last(p.fds.sockets_series, kFdSeriesKept);
    keep_last(p.notes, kNotesKept);
    size_t before = p.v8.gcs.size();
    count_gcs(p, st);
    keep_last(p.v8.gcs, kGcEventsKept);
    st.gcs_counted -= before - p.v8.gcs.size();
  }

  void count_gcs(const model::Process& p, ProcessState& st) {
    for (; st.gcs_counted < p.v8.gcs.size(); ++st.gcs_counted) {
      const auto& g = p.v8.gcs[st.gcs_counted];
      auto& h = st.gc[model::gc_kind_name(g.kind)];
      double s = g.pause_ms / 1000;
      for (size_t i = 0; i < kGcBoundsS.size(); ++i)
        if (s <= kGcBoundsS[i]) ++h.buckets[i];
      h.sum_s += s;
      ++h.count;
    }
  }

  void copy_stacks(model::Process& p, ProcessState& st, double now_s) {
    if (now_s - st.copied_at_s < kStackCopyEveryS) return;
    st.copied_at_s = now_s;
    if (auto* stacks = session_.stacks()) stacks->collect_kernel_stacks(p);
    st.stack_copies.emplace_back(now_s, p.stacks);
    while (st.stack_copies.size() > kStackCopies) st.stack_copies.pop_front();
  }

  // Every family /metrics can show: name, type, help (docs/metrics.md says what each means).
  static void declare(report::PromExposition& out) {
    static constexpr std::array<std::array<const char*, 3>, 29> kFamilies = {{
        {{"memlens_process_resident_memory_bytes", "gauge",
          "Resident set size of the traced process (VmRSS: anon + file + shmem)"}},
        {{"memlens_process_memory_bytes", "gauge",
          "Resident bytes of the traced process by category; the categories sum to its RSS"}},
        {{"memlens_nodejs_heap_used_after_gc_bytes", "gauge", "V8 heap used after the last GC"}},
        {{"memlens_nodejs_heap_committed_bytes", "gauge",
          "V8 heap pages mapped (heapTotal); resident pages only for pages mapped before memlens attached"}},
        {{"memlens_nodejs_gc_duration_seconds", "histogram",
          "GC pauses by kind, since memlens saw the process"}},
        {{"memlens_process_open_fds", "gauge", "Open file descriptors of the traced process"}},
        {{"memlens_process_open_sockets", "gauge", "Open sockets of the traced process"}},
        {{"memlens_verdict", "gauge",
          "1 for the category's current growth verdict kind, 0 for the other kinds (docs/verdicts.md)"}},
        {{"memlens_growth_bytes_per_second", "gauge",
          "Fitted growth rate of a memory category (bytes per second) behind its verdict"}},
        {{"memlens_seconds_to_limit", "gauge",
          "Projected seconds until the memory limit is reached, for a growing category"}},
        {{"memlens_cgroup_memory_limit_bytes", "gauge", "Effective memory limit of the memory cgroup"}},
        {{"memlens_cgroup_memory_usage_bytes", "gauge", "Whole usage of the memory cgroup"}},
        {{"memlens_oom_kills_total", "counter", "OOM kills of traced processes memlens saw"}},
        {{"memlens_events_total", "counter", "Events memlens received from the kernel"}},
        {{"memlens_events_lost_total", "counter", "Events memlens lost, by cause (docs/report-schema.md)"}},
        {{"memlens_untraced_processes_total", "counter",
          "Node processes that ran untraced: partly (probes late or failed) or missed (ended first)"}},
        {{"memlens_unexported_processes_total", "counter",
          "Traced processes left out of the metrics by --max-processes"}},
        {{"memlens_traced_processes", "gauge", "Processes memlens traces now"}},
        {{"memlens_processes_total", "counter", "Processes memlens has traced since it started"}},
        {{"memlens_bpf_map_entries", "gauge", "Entries in memlens's own BPF maps"}},
        {{"memlens_bpf_map_capacity", "gauge", "Capacity of memlens's own BPF maps"}},
        {{"memlens_stacks_pruned_total", "counter",
          "Stacks dropped from the stack table because only ended processes referred to them"}},
        {{"memlens_build_info", "gauge", "memlens's version"}},
        {{"process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds."}},
        {{"process_resident_memory_bytes", "gauge", "Resident memory size in bytes."}},
        {{"process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes."}},
        {{"process_open_fds", "gauge", "Number of open file descriptors."}},
        {{"process_max_fds", "gauge", "Maximum number of open file descriptors."}},
        {{"process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds."}},
    }};
    for (const auto& [name, type, help] : kFamilies) out.family(name, type, help);
  }

  void process_metrics(report::PromExposition& out, const model::Process& p, const ProcessState& st) {
    report::MetricLabels base = {
        {"pid", std::to_string(p.pid())}, {"command", st.command}, {"container", st.container}};
    auto with = [&](std::initializer_list<std::pair<std::string, std::string>> more) {
      report::MetricLabels l = base;
      l.insert(l.end(), more.begin(), more.end());
      return l;
    };
    uint64_t rss = p.rss.total();
    out.sample("memlens_process_resident_memory_bytes", base, rss);
    if (const auto& last = p.attribution.last) {
      // The latest breakdown set against the RSS exported with it: unexplained is what the categories
      // (the resident read up to 30 s before, while the resident figures stayed within 1 MiB or 0.5% of them:
      // docs/attribution.md) do not account for.
      model::Reconciled r = model::reconcile(last->breakdown, rss);
      for (auto c : model::kAttributionCategories)
        out.sample("memlens_process_memory_bytes", with({{"category", std::string(model::category_name(c))}}),
                   r.breakdown[c]);
      out.sample("memlens_process_memory_bytes", with({{"category", "unexplained"}}), r.unexplained_bytes);
      if (last->breakdown.js_heap_mapped_bytes)
        out.sample("memlens_nodejs_heap_committed_bytes", base, last->breakdown.js_heap_mapped_bytes);
    }
    if (p.v8.heap_used_bytes)
      out.sample("memlens_nodejs_heap_used_after_gc_bytes", base, *p.v8.heap_used_bytes);
    for (const auto& [kind, h] : st.gc)
      out.histogram("memlens_nodejs_gc_duration_seconds", with({{"kind", kind}}), kGcBoundsS, h.buckets,
                    h.sum_s, h.count);
    out.sample("memlens_process_open_fds", base, p.fds.open_count());
    out.sample("memlens_process_open_sockets", base, p.fds.sockets_open());
    static constexpr analyze::VerdictKind kKinds[] = {
        analyze::VerdictKind::leak_suspected, analyze::VerdictKind::growth_unconfirmed,
        analyze::VerdictKind::growth_then_plateau, analyze::VerdictKind::retained_not_leak,
        analyze::VerdictKind::stable};
    for (const auto& v : st.verdicts) {
      std::string category(analyze::category_name(v.category));
      for (auto k : kKinds)
        out.sample("memlens_verdict",
                   with({{"category", category}, {"kind", std::string(analyze::kind_name(k))}}),
                   v.kind == k ? 1 : 0);
      if (!analyze::is_count_category(v.category))
        out.sample("memlens_growth_bytes_per_second", with({{"category", category}}), v.rate_per_s);
      if (v.seconds_to_limit)
        out.sample("memlens_seconds_to_limit", with({{"category", category}}), *v.seconds_to_limit);
    }
  }

  void health_metrics(report::PromExposition& out, const model::Trace& trace, double now_s) {
    out.sample("memlens_events_total", {}, trace.info.events_received);
    model::EventLoss lost = trace.events_lost();
    lost += forgotten_lost_;
    for (const auto& p : trace.processes.all())
      for (const auto& [source, l] : p->lost_by_source)
        if (source != "kernel") lost += l;
    for (const auto& [cause, n] : lost.by_cause())
      out.sample("memlens_events_lost_total", {{"cause", cause}}, n);
    out.sample("memlens_untraced_processes_total", {{"how", "partly"}},
               trace.untraced(now_s).processes + forgotten_untraced_);
    out.sample("memlens_untraced_processes_total", {{"how", "missed"}},
               trace.info.missed_processes.size() + missed_dropped_);
    out.sample("memlens_unexported_processes_total", {}, unexported_total_);
    out.sample("memlens_traced_processes", {}, trace.processes.all().size());
    out.sample("memlens_processes_total", {}, trace.processes.all().size() + forgotten_);
    if (now_s - maps_read_at_s_ >= 10) {  // walking the maps' keys costs: every 10 s
      maps_ = collect::bpf_map_fill(session_.tracer().session());
      maps_read_at_s_ = now_s;
    }
    for (const auto& m : maps_) {
      out.sample("memlens_bpf_map_entries", {{"map", m.name}}, m.entries);
      out.sample("memlens_bpf_map_capacity", {{"map", m.name}}, m.capacity);
    }
    out.sample("memlens_stacks_pruned_total", {}, stacks_pruned_);
    out.sample("memlens_build_info", {{"version", MEMLENS_VERSION}}, 1);
  }

  void own_metrics(report::PromExposition& out) {
    pid_t self = getpid();
    if (auto st = proc::read_stat(self))
      out.sample(
          "process_cpu_seconds_total", {},
          static_cast<double>(st->utime_ticks + st->stime_ticks) / static_cast<double>(sysconf(_SC_CLK_TCK)));
    std::ifstream statm("/proc/self/statm");
    uint64_t size_pages = 0, rss_pages = 0;
    if (statm >> size_pages >> rss_pages) {
      double page = static_cast<double>(sysconf(_SC_PAGESIZE));
      out.sample("process_resident_memory_bytes", {}, static_cast<double>(rss_pages) * page);
      out.sample("process_virtual_memory_bytes", {}, static_cast<double>(size_pages) * page);
    }
    std::error_code ec;
    size_t fds = 0;
    for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec);
         !ec && it != std::filesystem::directory_iterator(); it.increment(ec))
      ++fds;
    out.sample("process_open_fds", {}, fds);
    rlimit rl{};
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
      out.sample("process_max_fds", {}, static_cast<double>(rl.rlim_cur));
    out.sample("process_start_time_seconds", {}, started_unix_s_);
  }

  TraceSession& session_;
  ServeOptions opts_;
  double started_unix_s_ = 0;
  std::map<model::ProcessKey, ProcessState> states_;
  std::map<std::string, uint64_t> oom_kills_;
  model::EventLoss forgotten_lost_;
  uint64_t forgotten_untraced_ = 0, forgotten_ = 0, missed_dropped_ = 0, unexported_total_ = 0;
  std::vector<collect::MapFill> maps_;
  double maps_read_at_s_ = -1e18;
  double pruned_at_s_ = 0;
  double trimmed_at_s_ = -1e18;
  uint64_t stacks_pruned_ = 0;

  std::mutex snapshot_mutex_;
  std::shared_ptr<const Snapshot> snapshot_ = std::make_shared<Snapshot>();
  std::mutex jobs_mutex_;
  std::deque<std::shared_ptr<Job>> jobs_;
  bool stopping_ = false;
};

void not_found(Job& job, std::string text) {
  job.status = 404;
  job.body = std::move(text);
}

void Agent::report_job(Job& job, pid_t pid, bool html) {
  model::Trace& trace = session_.trace();
  model::Process* p = trace.processes.find_live(pid);
  if (!p) return not_found(job, fmt::format("no traced Node process with pid {} (the list is at /)\n", pid));
  double now_s = trace.seconds_since_start(boot_ns());
  // The report of this process alone, as a trace that ended now would write it.
  model::Trace one;
  one.info = trace.info;
  one.info.duration_s = now_s;
  one.info.stop_reason = "report of the state now (memlens serve goes on)";
  std::vector<symbolize::StackProfile> profiles;
  if (auto* stacks = session_.stacks()) profiles = stacks->live_profiles(one, *p);
  one.processes.add(p->key(), p->ppid()) = *p;
  nlohmann::json report = report::build_report(one, profiles);
  report["profiles"] = report::profiles_summary(profiles);
  job.status = 200;
  if (html) {
    job.content_type = "text/html; charset=utf-8";
    job.body = report::render_html(report, profiles);
  } else {
    job.content_type = "application/json";
    job.body = json_text(report, 2);
  }
}

void Agent::pprof_job(Job& job, pid_t pid, const std::string& kind, std::optional<int> seconds) {
  model::Trace& trace = session_.trace();
  model::Process* p = trace.processes.find_live(pid);
  if (!p) return not_found(job, fmt::format("no traced Node process with pid {} (the list is at /)\n", pid));
  auto* stacks = session_.stacks();
  if (!stacks) return not_found(job, "stack capture is off\n");
  double now_s = trace.seconds_since_start(boot_ns());
  const model::StackTable* since = nullptr;
  double from_s = p->first_seen_s;
  if (seconds && now_s - *seconds > p->first_seen_s) {
    // The latest copy at least N seconds old: the window is N seconds, up to one copy interval more.
    auto it = states_.find(p->key());
    if (it != states_.end())
      for (const auto& [t, table] : it->second.stack_copies)
        if (t <= now_s - *seconds) {
          since = &table;
          from_s = t;
        }
    // Copies start when serve first handles the process, a moment after it was first seen: a process
    // seen less than one copy interval before the window's start gets its whole profile (a window up to
    // one copy interval more, as with a copy).
    if (!since && p->first_seen_s < now_s - *seconds - kStackCopyEveryS) {
      job.status = 400;
      job.body = fmt::format("pid {}: no copy of its stacks {} s old is kept (at most {} s)\n", pid, *seconds,
                             kMaxWindowS);
      return;
    }
  }
  model::Trace window;
  window.info.started_unix_ns = trace.info.started_unix_ns;
  for (auto& prof : stacks->live_profiles(window, *p, since)) {
    if (prof.kind != kind) continue;
    prof.time_ns = trace.info.started_unix_ns + static_cast<int64_t>(from_s * 1e9);
    prof.duration_ns = static_cast<int64_t>((now_s - from_s) * 1e9);
    auto body = report::encode_pprof(prof);
    if (!body) {
      job.status = 500;
      job.body = body.error().describe() + "\n";
      return;
    }
    job.status = 200;
    job.content_type = "application/octet-stream";
    job.body = std::move(*body);
    return;
  }
  not_found(job, fmt::format("pid {} has no {} stacks (yet); its profiles are listed at /\n", pid, kind));
}

std::string index_page(const Snapshot& snap) {
  std::string rows;
  for (const auto& p : snap.processes) {
    std::string links = fmt::format(
        "<a href=\"/report.html?pid={0}\">report.html</a> <a href=\"/report.json?pid={0}\">report.json</a>",
        p.pid);
    for (const auto& k : p.kinds)
      links += fmt::format(" <a href=\"/debug/pprof/{0}?pid={1}\">{0}</a>", html_escape(k), p.pid);
    rows += fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.1f} MiB</td><td>{}</td></tr>\n", p.pid,
                        html_escape(p.command), html_escape(p.container), p.rss_bytes / 1048576.0, links);
  }
  return fmt::format(
      "<!doctype html><html><head><meta charset=\"utf-8\"><title>memlens serve</title></head><body>\n"
      "<h1>memlens serve</h1><p><a href=\"/metrics\">/metrics</a> &middot; {} traced Node processes{}</p>\n"
      "<table border=\"1\" cellpadding=\"4\"><tr><th>pid</th><th>command</th><th>container</th><th>RSS</th>"
      "<th>reports and profiles (pprof, gzip; &amp;seconds=N for the last N "
      "s)</th></tr>\n{}</table></body></html>\n",
      snap.processes.size(),
      snap.unexported ? fmt::format(" ({} left out by --max-processes)", snap.unexported) : "", rows);
}

struct ListenAddress {
  std::string host;
  int port = 0;
};

std::optional<ListenAddress> parse_listen(const std::string& s) {
  ListenAddress a;
  std::string port;
  if (!s.empty() && s[0] == '[') {
    auto close = s.find("]:");
    if (close == std::string::npos) return std::nullopt;
    a.host = s.substr(1, close - 1);
    port = s.substr(close + 2);
  } else {
    auto colon = s.rfind(':');
    if (colon == std::string::npos || s.find(':') != colon) return std::nullopt;
    a.host = s.substr(0, colon);
    port = s.substr(colon + 1);
  }
  if (a.host.empty() || port.empty() || port.size() > 5 ||
      port.find_first_not_of("0123456789") != std::string::npos)
    return std::nullopt;
  a.port = std::stoi(port);
  if (a.port < 1 || a.port > 65535) return std::nullopt;
  return a;
}

bool is_loopback(const std::string& host) {
  return host == "localhost" || host.rfind("127.", 0) == 0 || host == "::1";
}

std::optional<pid_t> pid_param(const httplib::Request& req, httplib::Response& res) {
  std::string v = req.get_param_value("pid");
  if (v.empty() || v.size() > 9 || v.find_first_not_of("0123456789") != std::string::npos ||
      std::stol(v) <= 0) {
    res.status = 400;
    res.set_content(v.empty() ? "give the process: ?pid=PID (the list is at /)\n"
                              : fmt::format("pid must be a positive whole number, not '{}'\n", v),
                    "text/plain; charset=utf-8");
    return std::nullopt;
  }
  return static_cast<pid_t>(std::stol(v));
}

void answer(httplib::Response& res, const Job& job) {
  res.status = job.status;
  res.set_content(job.body, job.content_type);
}

}  // namespace

int serve_command(const ServeOptions& opts) {
  auto addr = parse_listen(opts.listen);
  if (!addr) {
    fmt::print(stderr,
               "memlens serve: --listen '{}' is not ADDRESS:PORT\n  remedy: e.g. --listen 127.0.0.1:9464\n",
               opts.listen);
    return kExitUsage;
  }
  httplib::Server http;
  http.set_read_timeout(5, 0);
  http.set_write_timeout(5, 0);
  http.set_keep_alive_timeout(5);
  http.set_payload_max_length(64 << 10);
  if (!http.bind_to_port(addr->host, addr->port)) {
    fmt::print(
        stderr,
        "memlens serve: cannot listen on {}: {}\n  remedy: choose another --listen address or port (is "
        "another memlens serve running?)\n",
        opts.listen, strerror(errno));
    return kExitUsage;
  }
  if (!is_loopback(addr->host))
    fmt::print(
        stderr,
        "memlens serve: WARNING: listening on {} beyond loopback: whoever reaches it reads the command "
        "lines, reports and memory profiles of this host's Node processes; there is no authentication "
        "(docs/serve.md)\n",
        opts.listen);

  install_stop_handlers();
  TraceOptions to;
  to.quiet = true;
  to.interval_s = opts.interval_s;
  to.fault_sample_period = opts.fault_sample_period;
  to.verbose = opts.verbose;
  TraceSession session(to);
  if (int rc = session.start(); rc != kExitOk) return rc;
  Agent agent(session, opts);

  http.Get("/metrics", [&](const httplib::Request&, httplib::Response& res) {
    res.set_content(agent.snapshot()->metrics, report::kPromContentType);
  });
  http.Get("/", [&](const httplib::Request&, httplib::Response& res) {
    res.set_content(index_page(*agent.snapshot()), "text/html; charset=utf-8");
  });
  auto report = [&](bool html) {
    return [&, html](const httplib::Request& req, httplib::Response& res) {
      auto pid = pid_param(req, res);
      if (!pid) return;
      answer(res, *agent.run_on_tracer([&agent, pid, html](Job& j) { agent.report_job(j, *pid, html); }));
    };
  };
  http.Get("/report.json", report(false));
  http.Get("/report.html", report(true));
  http.Get(R"(/debug/pprof/([^/]*))", [&](const httplib::Request& req, httplib::Response& res) {
    std::string kind = req.matches[1];
    bool known = false;
    std::string kinds;
    for (const auto& k : model::kStackKinds) {
      known = known || k.name == kind;
      kinds += (kinds.empty() ? "" : ", ") + std::string(k.name);
    }
    if (!known) {
      res.status = 404;
      res.set_content(fmt::format("unknown profile kind '{}' (kinds: {})\n", kind, kinds),
                      "text/plain; charset=utf-8");
      return;
    }
    auto pid = pid_param(req, res);
    if (!pid) return;
    std::optional<int> seconds;
    if (req.has_param("seconds")) {
      std::string v = req.get_param_value("seconds");
      if (v.empty() || v.size() > 6 || v.find_first_not_of("0123456789") != std::string::npos ||
          std::stoi(v) < 1 || std::stoi(v) > kMaxWindowS) {
        res.status = 400;
        res.set_content(
            fmt::format("seconds must be a whole number from 1 to {}, not '{}'\n", kMaxWindowS, v),
            "text/plain; charset=utf-8");
        return;
      }
      seconds = std::stoi(v);
    }
    answer(res, *agent.run_on_tracer(
                    [&agent, pid, kind, seconds](Job& j) { agent.pprof_job(j, *pid, kind, seconds); }));
  });
  http.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (res.status == 404 && res.body.empty())
      res.set_content(fmt::format("no such page: {} (see / and /metrics)\n", req.path),
                      "text/plain; charset=utf-8");
  });

  session.tracer().on_sample([&](const model::Trace&) { agent.on_sample(); });
  std::thread server([&] { http.listen_after_bind(); });
  fmt::print(stderr, "memlens serve: http://{}/metrics, tracing every Node process{}; Ctrl-C to stop\n",
             opts.listen, opts.filter.empty() ? "" : " that passes the filter");
  trace_host_wide(session, opts.filter, to, [&] { agent.run_jobs(); });
  http.stop();
  server.join();
  agent.stop_jobs();
  session.tracer().on_sample(nullptr);
  int rc = session.finish_and_report();  // no files: detaches every probe
  fmt::print(stderr, "memlens serve: stopped ({}); every probe detached\n", session.trace().info.stop_reason);
  return rc;
}

}  // namespace memlens::cli
