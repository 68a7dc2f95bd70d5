// Applies decoded events (collect/decode.h) to the model: the part of building a trace that needs nothing
// from the live host (no /proc, no probe), so it runs the same on a live trace and on a replay, and can be
// tested with hand-made events. Process lifecycle events, which also attach probes and read /proc, are
// handled by the Tracer.
#pragma once

#include "collect/decode.h"
#include "model/process.h"
#include "model/trace.h"

namespace memlens::collect {

// An address-space call of p: its mappings, its break and the stacks that grew it.
void apply_mm_event(model::Process& p, const MmEvent& e);

// A completed GC of p: its GC history, its heap figure, the stack that triggered it.
void apply_gc_event(const model::Trace& trace, model::Process& p, const GcEvent& e);

}  // namespace memlens::collect
