// The kinds of stacks a trace aggregates: the key of Process::stacks, the kind (file stem) of each stack
// profile (<kind>.folded, <kind>.pb.gz) and the name report.json and the HTML report show. One table:
// the collector fills them, the report writers read them.
#pragma once

#include <array>
#include <string_view>

namespace memlens::model {

namespace stack_kind {
// Address-space growth (mmap, brk, mremap) by the stack that made it; live bytes where still mapped.
inline constexpr char kMmapGrowth[] = "mmap_growth";
// Sampled page faults (first touch of new memory).
inline constexpr char kPageFaults[] = "page_faults";
// ArrayBuffer / Buffer backing stores allocated, by allocating stack.
inline constexpr char kArrayBuffers[] = "array_buffers";
// What was running when a GC started.
inline constexpr char kGcTriggers[] = "gc_triggers";
// File descriptors still open, by opening stack (a count, no bytes).
inline constexpr char kFdOpens[] = "fd_opens";
}  // namespace stack_kind

inline constexpr std::array<std::string_view, 5> kStackKinds = {
    stack_kind::kMmapGrowth, stack_kind::kPageFaults, stack_kind::kArrayBuffers, stack_kind::kGcTriggers,
    stack_kind::kFdOpens};

}  // namespace memlens::model
