// The kinds of stacks a trace aggregates: the key of Process::stacks, the kind (file stem) of each stack
// profile (<kind>.folded, <kind>.pb.gz) and the name report.json and the HTML report show. One table:
// the collector fills them, the report writers (and through its flame data, the HTML page) read them.
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
// Live JS objects by allocation site, from V8's sampling heap profiler (--js-objects).
inline constexpr char kJsLive[] = "js_live";
}  // namespace stack_kind

struct StackKindInfo {
  std::string_view name;
  std::string_view title;  // what a report calls its stacks (the HTML report's flame graph titles)
};
inline constexpr std::array<StackKindInfo, 6> kStackKinds = {{
    {stack_kind::kMmapGrowth, "Address-space growth (mmap, brk, mremap)"},
    {stack_kind::kPageFaults, "Page faults (first touch of new memory)"},
    {stack_kind::kArrayBuffers, "ArrayBuffer/Buffer backing-store allocations"},
    {stack_kind::kGcTriggers, "What was running when a GC started"},
    {stack_kind::kFdOpens, "File descriptors still open, by opening stack"},
    {stack_kind::kJsLive, "Live JS objects by allocation site (V8 sampling heap profiler, --js-objects)"},
}};

// The title of a stack kind; the kind itself when it is none of the above.
constexpr std::string_view stack_kind_title(std::string_view kind) {
  for (const auto& k : kStackKinds)
    if (k.name == kind) return k.title;
  return kind;
}

}  // namespace memlens::model
