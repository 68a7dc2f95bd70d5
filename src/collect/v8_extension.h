// The V8 capability's per-process state and hooks (collect/extensions.h makes it). Its parts: the hooks and
// the figures read at each sample (v8_extension.cpp), the probes planned and attached (v8_probes.cpp), the
// ArrayBuffer sampling windows driven (v8_ab_windows.cpp, their timing in v8_ab_window.h); what a GC event
// means for the model is in trace_builder, the reads of the process's maps and memory in
// v8_process_reads.
#pragma once

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "collect/extension.h"
#include "collect/uprobe_link.h"
#include "collect/v8_ab_window.h"
#include "collect/v8_process_reads.h"
#include "node/probe_plan.h"
#include "v8.skel.h"

namespace memlens::collect {

class V8Extension : public TraceExtension {
 public:
  V8Extension(BpfSession& session, bool alloc_probes)
      : session_(session),
        alloc_probes_(alloc_probes),
        // The BPF programs capture stacks only when the session was loaded with them (rodata).
        stacks_(session.v8()->rodata->capture_stacks) {}
  ~V8Extension() override;

  std::string name() const override { return "v8"; }

  // After exec the process runs another program: the old image's heap, GCs and allocator are gone with it,
  // and figures left in place would be read as the new program's. Which probes are attached is kept: a
  // late-handled exec event finds the new image probed already (below). The timeline keeps what was
  // sampled while the old image ran.
  static void forget_previous_figures(model::Process& p);

  void on_track(model::Trace& trace, model::Process& p, bool after_exec) override;
  // Plans the file's probes: planning reads its whole symbol table (node's: a few hundred thousand
  // symbols). The plan is kept for the exec, and for any other process running the same file.
  void prepare_exec(pid_t, const std::string& path) override { (void)node::plan_for_binary(path); }

  // A libnode.so is mapped by the dynamic loader after the exec event: attach as soon as it is there,
  // before node's start-up collects its first garbage, rather than at the next sample.
  void on_image_loaded(model::Trace& trace, model::Process& p) override;

  void on_untrack(model::Process& p) override;

  // GC events are applied by the trace builder; the window's notices drive this extension's state.
  bool handles(const Event& e) const override { return std::holds_alternative<ArrayBufferNotice>(e); }
  bool on_event(model::Trace&, model::Process& p, const Event& e) override;

  void on_sample(model::Process& p, model::Sample& s) override;

  void on_finish(model::Trace& trace) override;

 private:
  struct PerProcess {
    std::vector<UprobeLink> links;
    bool counters = false;       // an ml_v8_counters entry exists for the pid
    bool found_v8 = false;       // in the current image
    bool ever_found_v8 = false;  // in any image the process ran
    std::string identity;        // image_identity() when planned
    int rechecks_left = 0;
    ml_v8_counters last{};

    // ArrayBuffers.
    bool counting = false;                         // --v8-alloc-probes attached for this image
    std::optional<uint32_t> counter_offset;        // of total_mem_usage_ in the allocator object
    std::vector<node::AttachPoint> window_points;  // Allocate, AllocateUninitialized entries
    std::vector<V8Allocator> allocators;
    std::vector<UprobeLink> window_links;
    // (device, inode) of a libnode.so planned before the loader mapped it, until its mapping confirms it.
    std::optional<std::pair<uint64_t, uint64_t>> unmapped_holder;
    AbWindow window;
  };

  // V8's heap limit, where the process's flags set it (node/heap_limit.h), for the js_heap verdict's
  // projection.
  static void read_heap_limit(model::Process& p);

  // Hands links to the session's reaper: a detach waits for grace periods, the drain loop must not.
  void retire(std::vector<UprobeLink>& links);

  int counters_fd() { return bpf_map__fd(session_.v8()->maps.ml_v8_counters); }
  int windows_fd() { return bpf_map__fd(session_.v8()->maps.ml_v8_ab_windows); }
  int allocators_fd() { return bpf_map__fd(session_.v8()->maps.ml_v8_allocators); }
  int ab_stacks_fd() { return bpf_map__fd(session_.v8()->maps.ml_v8_ab_stacks); }

  // Keys of a per-process map (the pid is the key's first member) that belong to pid.
  template <typename Key>
  std::vector<Key> keys_of(int fd, pid_t pid) {
    std::vector<Key> out;
    Key key{}, next{};
    const Key* prev = nullptr;
    while (bpf_map_get_next_key(fd, prev, &next) == 0) {
      if (next.pid == static_cast<uint32_t>(pid)) out.push_back(next);
      key = next;
      prev = &key;
    }
    return out;
  }

  void forget_window_maps(pid_t pid);

  // Moves the kernel's per-stack allocation sums of p into its array_buffers stacks.
  void take_stacks(model::Process& p);
  void collect_allocators(pid_t pid, PerProcess& st);

  void open_window(model::Trace& trace, model::Process& p, PerProcess& st, uint64_t now);

  void close_window(model::Process& p, PerProcess& st, uint64_t now);

  // Windows find the allocators whose counter is read, or sample stacks (unless every allocation is probed).
  bool windows_useful(const PerProcess& st) const;

  // At each sample: closes a window whose time is over (the kernel reports it only at the next allocation),
  // or opens the next one when it is due.
  void drive_window(model::Process& p, PerProcess& st, uint64_t now);

  void on_notice(model::Process& p, const ArrayBufferNotice& n);

  // Detaches the window, hands the recorded stacks to the model, forgets the allocators (exit, exec).
  void reset_array_buffers(model::Process& p, PerProcess& st);
  void read_array_buffers(model::Process& p, PerProcess& st);

  void forget_counters(pid_t pid);
  void read_counters(model::Process& p, PerProcess& st);

  void update_losses();
  void note_attached(model::Trace& trace, const std::string& name);

  void note_skipped(model::Trace& trace, const std::string& name, const std::string& reason);

  bpf_program* program_for(node::ProbePurpose purpose);

  // Attaches every point of one planned probe; true when all attached. On failure the links already made
  // for it are dropped, so a probe is either complete or absent.
  bool attach_site(model::Trace& trace, pid_t pid, const node::ProbeSite& site, PerProcess& st);
  bool attach_usdt(model::Trace& trace, model::Process& p, const node::ProbePlan& plan, PerProcess& st);

  void attach(model::Trace& trace, model::Process& p, PerProcess& st);

  void attach_array_buffers(model::Trace& trace, model::Process& p, const node::ProbePlan& plan,
                            PerProcess& st);

  BpfSession& session_;
  bool alloc_probes_ = false;
  bool stacks_ = false;
  model::Trace* trace_ = nullptr;
  std::map<pid_t, PerProcess> procs_;
  std::set<model::ProcessKey> noted_;
  uint64_t kernel_unmatched_exited_ = 0, kernel_pending_full_exited_ = 0;
};

}  // namespace memlens::collect
