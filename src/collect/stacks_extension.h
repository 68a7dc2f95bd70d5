// Turns the stack ids that processes accumulated (model::Process::stacks, filled by the core and by other
// capabilities) into symbolized stack profiles. Symbols are read while a process lives: its maps and V8's
// perf map are kept current (once its image is loaded, then a few times a second while it makes
// address-space calls), and its stacks are symbolized the moment it exits or the trace ends.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "collect/extension.h"
#include "collect/unwind_tables.h"
#include "symbolize/stack_profile.h"
#include "symbolize/symbolizer.h"

namespace memlens::collect {

class StacksExtension : public TraceExtension {
 public:
  explicit StacksExtension(BpfSession& session) : session_(session), unwind_(session) {}
  std::string name() const override { return "stacks"; }
  void on_track(model::Trace& trace, model::Process& p, bool after_exec) override;
  void on_untrack(model::Process& p) override;
  void on_image_loaded(model::Trace& trace, model::Process& p) override;
  void on_sample(model::Process& p, model::Sample& s) override;
  void on_tick(model::Process& p) override;
  void on_finish(model::Trace& trace) override;

  // One profile per stack kind, every process's stacks in it (samples carry their pid). Valid after the
  // trace finished.
  std::vector<symbolize::StackProfile> profiles(const model::Trace& trace) const;

 private:
  struct Tracked {
    std::unique_ptr<symbolize::ProcessSymbolizer> symbolizer;
    uint64_t events_at_refresh = 0;
  };
  void refresh(model::Process& p, bool force_maps);
  void finalize(model::Process& p);
  symbolize::Stack symbolize_stack(symbolize::ProcessSymbolizer* sym, int32_t stack_id);

  BpfSession& session_;
  UnwindTables unwind_;  // what the kernel unwinds the stacks with
  std::map<pid_t, Tracked> tracked_;
  // kind -> samples, accumulated as processes finish.
  std::map<std::string, std::vector<symbolize::StackSample>> samples_;
  std::vector<std::string> notes_;
};

}  // namespace memlens::collect
