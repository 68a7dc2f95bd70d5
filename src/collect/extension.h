// A tracing capability beyond the core (V8 probes, fd tracking): it attaches its own per-process probes,
// consumes its own event types, and adds its figures to samples and to the model. The tracer calls these
// hooks; an extension never drives the loop itself.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "collect/bpf_session.h"
#include "collect/decode.h"
#include "model/process.h"
#include "model/trace.h"

namespace memlens::collect {

// How often on_tick runs: often enough to read a process that lives a fraction of a second, seldom enough
// to cost nothing.
inline constexpr uint64_t kTickNs = 200'000'000;

class TraceExtension {
 public:
  virtual ~TraceExtension() = default;
  virtual std::string name() const = 0;

  // memlens started tracking p (root, forked child), or p exec'd a new image (after_exec): attach what
  // this extension needs for it. Failures are recorded in the trace's skipped probes, never fatal.
  virtual void on_track(model::Trace& trace, model::Process& p, bool after_exec) = 0;
  // Process pid, which memlens holds before its exec (memlens run), will run the file at path (as memlens
  // sees it: pid shares memlens's root): do the work that depends only on that file now, while nothing
  // waits on it, rather than at the exec, where it would compete with the command's start for the CPU.
  virtual void prepare_exec(pid_t, const std::string&) {}
  // p's first address-space call after an exec was seen: the dynamic loader is done, every library the
  // new image needs is mapped (a libnode.so that was not there at the exec event).
  virtual void on_image_loaded(model::Trace&, model::Process&) {}
  // p exited, or tracking stopped: detach its probes.
  virtual void on_untrack(model::Process& p) = 0;

  // Whether this extension consumes this decoded event (collect/decode.h).
  virtual bool handles(const Event&) const { return false; }
  // Applies it; false when it is malformed (a kind this build does not know), counted by the tracer.
  virtual bool on_event(model::Trace&, model::Process&, const Event&) { return true; }

  // Fills this extension's figures of sample s (taken now for p).
  virtual void on_sample(model::Process& p, model::Sample& s) = 0;
  // Every kTickNs, for each live process, between samples: for what must be
  // read while a process lives, even one that exits before its first sample.
  virtual void on_tick(model::Process&) {}
  // End of trace: final figures while the processes that live are still readable.
  virtual void on_finish(model::Trace& trace) = 0;
};

}  // namespace memlens::collect
