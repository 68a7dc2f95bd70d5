// Where a process's heap-figure probes read V8's heap used (node/probe_plan: AttachPoint::value_base), as
// the V8 BPF objects (tracer and `top`) want it: in the process's ml_v8_counters, with the program that
// reads a slot rather than %rax.
#pragma once

#include "memlens/abi.h"
#include "node/probe_plan.h"

namespace memlens::collect {

// Whether the GC end probe reads the heap figures (node::HeapFiguresInTracer): the heap_used sites are then
// not attached.
inline bool heap_figures_at_gc_end(const node::ProbePlan& plan) {
  return plan.heap_figures_in_tracer.has_value();
}

// A process's counters before its probes attach: zero, and where the heap figures are read: in the GC's
// tracer at its end, or else the slot of each heap-figure site that reads one (index 0 before the GC, 1
// after).
inline ml_v8_counters initial_v8_counters(const node::ProbePlan& plan) {
  ml_v8_counters c{};
  if (const auto& t = plan.heap_figures_in_tracer) {
    c.heap_tracer_offset = t->tracer_offset;
    c.heap_slot_disp[0] = t->before_disp;
    c.heap_slot_disp[1] = t->after_disp;
    return c;
  }
  const node::ProbePurpose purposes[] = {node::ProbePurpose::heap_used_before,
                                         node::ProbePurpose::heap_used_after};
  for (int i = 0; i < 2; ++i) {
    const auto* site = plan.find(purposes[i]);
    if (!site || !site->found() || !site->points.front().value_base) continue;
    c.heap_slot_base[i] = *site->points.front().value_base;
    c.heap_slot_disp[i] = site->points.front().value_disp;
  }
  return c;
}

// The program for one point of a site: for a heap figure, the slot reader where the point has a slot
// (every point of a site agrees), else the one reading %rax; for any other purpose, `other`.
template <typename Progs>
bpf_program* program_for_point(const Progs& progs, node::ProbePurpose purpose, const node::AttachPoint& point,
                               bpf_program* other) {
  if (purpose == node::ProbePurpose::heap_used_before)
    return point.value_base ? progs.ml_v8_heap_before_slot : progs.ml_v8_heap_before;
  if (purpose == node::ProbePurpose::heap_used_after)
    return point.value_base ? progs.ml_v8_heap_after_slot : progs.ml_v8_heap_after;
  return other;
}

}  // namespace memlens::collect
