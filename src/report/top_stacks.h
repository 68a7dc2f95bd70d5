// The stacks a verdict names: for each category of one process, its heaviest stacks from the profiles of
// the trace, rendered in a line each. A verdict that says what grows then also says which code grows it.
#pragma once

#include <string>
#include <vector>

#include "analyze/verdicts.h"
#include "report/verdict_section.h"
#include "symbolize/stack_profile.h"

namespace memlens::report {

// Which profile speaks for a category, and which of its stacks:
//   js_heap        gc_triggers (what was allocating when V8 had to collect), by GCs triggered; only the
//                  stacks with JS frames when there are any (a GC run from a V8 task has the event loop's);
//   array_buffers  array_buffers (sampled backing-store allocations), by bytes;
//   native_heap    mmap_growth stacks that pass through malloc, by bytes still mapped (else mapped);
//   rss, other_anon  page_faults (first touch of memory, sampled), by bytes; without fault sampling (its
//                  default), mmap_growth as for native_heap but over every stack: what mapped the memory;
//   fds            fd_opens (fds still open, by opening stack), by count;
//   sockets        fd_opens stacks that opened a socket (socket, accept, accept4, socketpair), by count.
// Other categories (code, stacks, file_mapped) get none: no profile follows them.
struct TopStackSource {
  std::string kind;  // profile kind; empty: none
  size_t value_index = 0;
};
// has_fault_stacks: the process has page-fault stacks (--fault-sample-period above 0).
TopStackSource top_stack_source(analyze::Category c, bool has_fault_stacks = true);

// One line for one stack: its weight, then its innermost JS frame and up to four callers ("←"), and the
// innermost frame where that is not JS (the allocator or libc function the stack ends in):
//   "94.1 MB  handler [js] ← runRequest [js] ← listOnTimeout [js]  (in
//   node::NodeArrayBufferAllocator::Allocate)"
// Without JS frames: the innermost five frames.
std::string render_top_stack(const symbolize::Stack& stack, int64_t value, bool bytes);

// At most `limit` lines per category for process pid, heaviest first; equal renderings are merged.
TopStacksFn top_stacks_for(int pid, const std::vector<symbolize::StackProfile>& profiles, size_t limit = 5);

}  // namespace memlens::report
