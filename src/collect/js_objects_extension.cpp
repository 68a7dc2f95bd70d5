#include "collect/js_objects_extension.h"

#include <unistd.h>

#include <algorithm>

#include "common/clock.h"
#include "host/cgroup.h"
#include "inspector/collector.h"
#include "model/attribution.h"

namespace memlens::collect {

bool js_growth_unconfirmed(const model::V8State& v8, double t_s) {
  std::optional<double> base;
  double last_full_t = -1e300;
  std::optional<double> latest;
  for (const auto& g : v8.gcs) {
    if (!g.heap_used_after_bytes) continue;
    double after = static_cast<double>(*g.heap_used_after_bytes);
    if (g.full()) {
      base = after;
      last_full_t = g.t_s;
    } else if (last_full_t < -1e299) {
      base = base ? std::min(*base, after) : after;
    }
    latest = after;
  }
  if (!base || !latest) return false;
  if (t_s - last_full_t < kForcedGcAfterFullS) return false;
  return *latest - *base >= kForcedGcGrowthBytes;
}

namespace {

class JsObjectsExtension final : public TraceExtension {
 public:
  explicit JsObjectsExtension(const JsObjectsOptions& opts) : opts_(opts) {}
  std::string name() const override { return "js_objects"; }

  void on_track(model::Trace& trace, model::Process& p, bool /*after_exec*/) override {
    if (collector_ || done_) return;
    if (p.before_command_exec || !model::looks_like_node(p.exe)) return;
    // The traced root only: the attached pid, or the command memlens started.
    bool root = trace.info.attached_pid ? *trace.info.attached_pid == p.pid() : p.ppid() == getpid();
    if (!root) return;
    key_ = p.key();
    p.js_objects.requested = true;
    p.js_objects.mode = opts_.mode == "sampling" ? "sampling" : "full";
    inspector::CollectorOptions co;
    co.sampling_only = opts_.mode == "sampling";
    co.force = opts_.mode == "force";
    co.wait_for_handler_s = opts_.run_mode ? 15.0 : 0.0;
    co.max_snapshots = opts_.max_snapshots;
    co.snapshot_dir = opts_.snapshot_dir;
    uint64_t started = trace.info.started_boot_ns;
    co.now_s = [started]() { return (static_cast<double>(boot_ns()) - static_cast<double>(started)) / 1e9; };
    pid_t pid = p.pid();
    co.room = [pid]() {
      inspector::SnapshotRoom r;
      if (auto cg = host::memory_cgroup_of(pid); cg && cg->limit_bytes && cg->usage_bytes)
        r.cgroup_free_bytes = static_cast<int64_t>(*cg->limit_bytes) - static_cast<int64_t>(*cg->usage_bytes);
      if (auto h = host::host_memory()) r.host_free_bytes = static_cast<int64_t>(h->available_bytes);
      return r;
    };
    collector_ = std::make_unique<inspector::JsObjectsCollector>(pid, co);
  }

  void on_untrack(model::Process& p) override {
    if (!collector_ || p.key() != key_) return;
    // The target is gone: end the session (a waiting exit was already let go by the collector).
    collector_->stop();
    fold(p);
    collector_.reset();
    done_ = true;
  }

  void on_tick(model::Process& p) override {
    if (collector_ && p.key() == key_) fold(p);
  }

  void on_sample(model::Process& p, model::Sample& s) override {
    if (!collector_ || p.key() != key_) return;
    fold(p);
    if (collector_->open() && p.v8.probed && js_growth_unconfirmed(p.v8, s.t_s))
      collector_->request_full_gc("heap used after GC rose with no full GC to confirm it");
  }

  void on_finish(model::Trace& trace) override {
    if (!collector_) return;
    collector_->stop();
    if (auto* p = trace.processes.find(key_)) fold(*p);
    collector_.reset();
    done_ = true;
  }

 private:
  void fold(model::Process& p) {
    for (auto& e : collector_->drain()) model::apply(p.js_objects, e);
  }

  JsObjectsOptions opts_;
  std::unique_ptr<inspector::JsObjectsCollector> collector_;
  model::ProcessKey key_;
  bool done_ = false;
};

}  // namespace

std::unique_ptr<TraceExtension> make_js_objects_extension(const JsObjectsOptions& opts) {
  return std::make_unique<JsObjectsExtension>(opts);
}

}  // namespace memlens::collect
