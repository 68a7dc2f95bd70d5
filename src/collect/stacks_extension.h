// Turns the stack ids that processes accumulated (model::Process::stacks, filled by the core and by other
// capabilities) into symbolized stack profiles. Symbols are read while a process lives: its maps and V8's
// perf map are kept current (once its image is loaded, then as it maps more: see refresh), and its stacks
// are symbolized the moment it exits or the trace ends.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "collect/extension.h"
#include "collect/js_frame_names.h"
#include "collect/unwind_tables.h"
#include "symbolize/stack_profile.h"
#include "symbolize/symbolizer.h"

namespace memlens::collect {

class StacksExtension : public TraceExtension {
 public:
  explicit StacksExtension(BpfSession& session) : session_(session), js_(session), unwind_(session) {}
  std::string name() const override { return "stacks"; }
  void on_track(model::Trace& trace, model::Process& p, bool after_exec) override;
  void prepare_exec(pid_t pid, const std::string& path) override { unwind_.prepare_image(pid, path); }
  void on_untrack(model::Process& p) override;
  void on_image_loaded(model::Trace& trace, model::Process& p) override;
  void on_sample(model::Process& p, model::Sample& s) override;
  void on_tick(model::Process& p) override;
  void on_finish(model::Trace& trace) override;

  // One profile per stack kind, every process's stacks in it (samples carry their pid). Valid after the
  // trace finished.
  std::vector<symbolize::StackProfile> profiles(const model::Trace& trace) const;
  // The stacks of a live process now, one profile per kind (its samples carry its pid), without finishing
  // it; with `since`, only what accrued after that earlier copy of its stacks (live bytes stay current).
  // Every kind the process has stacks of is there, even when nothing accrued since.
  std::vector<symbolize::StackProfile> live_profiles(const model::Trace& trace, model::Process& p,
                                                     const model::StackTable* since = nullptr);
  // Brings the kernel's sampled fault stacks and the live bytes into p.stacks (so a copy of p.stacks is
  // complete up to now).
  void collect_kernel_stacks(model::Process& p);
  // Drops the symbolized stacks of a process that ended (a long-running agent does not keep them).
  void forget(pid_t pid);

 private:
  struct Tracked {
    std::unique_ptr<symbolize::ProcessSymbolizer> symbolizer;
    uint64_t events_at_refresh = 0;
    uint64_t file_mmaps_at_refresh = 0;
    uint64_t vm_size_at_refresh = 0;
    std::chrono::steady_clock::time_point refreshed_at;
    // When its image was loaded after an exec: V8 commits its code space then, and a process may live
    // less than a sample period. None for a process attached to or forked.
    std::optional<std::chrono::steady_clock::time_point> loaded_at;
    // Whether the image's libraries are mapped (a process attached to, or a child of fork, has them;
    // after exec, once the dynamic loader is done). Reading V8's layout from node's symbols takes a while
    // the first time: done before that, it delays the unwind tables of the libraries the loader maps, and
    // the first stacks of the new threads end at their first C library frame.
    bool image_loaded = false;
  };
  enum class Moment { kImageLoaded, kSample, kTick };
  void refresh(model::Process& p, Moment moment);
  void finalize(model::Process& p);
  void symbolize_into(const model::Process& p, const model::StackTable& table,
                      symbolize::ProcessSymbolizer* sym,
                      std::map<std::string, std::vector<symbolize::StackSample>>& out);
  static std::vector<symbolize::StackProfile> build_profiles(
      const model::Trace& trace, const std::map<std::string, std::vector<symbolize::StackSample>>& by_kind,
      bool keep_empty);
  symbolize::Stack symbolize_stack(pid_t pid, symbolize::ProcessSymbolizer* sym, int32_t stack_id);

  BpfSession& session_;
  JsFrameNames js_;      // JS frames named from V8's metadata, for processes without a perf map
  UnwindTables unwind_;  // what the kernel unwinds the stacks with
  std::map<pid_t, Tracked> tracked_;
  // kind -> samples, accumulated as processes finish.
  std::map<std::string, std::vector<symbolize::StackSample>> samples_;
  std::vector<std::string> notes_;
};

}  // namespace memlens::collect
