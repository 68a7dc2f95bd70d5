// The symbol catalogue: which V8 / Node function serves each probe purpose, with the mangled names each
// Node major gives it (newest V8 first), verified against the official binaries (docs/v8-probes.md).
// A new Node major that renames a function is a new entry here and nothing else.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace memlens::node {

// What a probe measures. The register contract of each is fixed here, whatever the Node major:
enum class ProbePurpose {
  gc_start,          // entry of Heap::PerformGarbageCollection: rdi = Heap*, esi = GarbageCollector (kind)
  gc_end,            // return of the same function (pause = end - start on the same thread)
  heap_used_before,  // GCTracer::StartInSafepoint after its call to Heap::SizeOfObjects: the next call, where
                     // the slot V8 stored the bytes in holds them, or the instruction after it: rax = bytes
  heap_used_after,   // the same in GCTracer::StopInSafepoint
  array_buffer_alloc,         // NodeArrayBufferAllocator::Allocate(size_t) entry: rsi = bytes
  array_buffer_alloc_uninit,  // NodeArrayBufferAllocator::AllocateUninitialized(size_t) entry: rsi = bytes
  array_buffer_free,          // NodeArrayBufferAllocator::Free(void*, size_t): rsi = data, rdx = bytes
  array_buffer_realloc,       // NodeArrayBufferAllocator::Reallocate(void*, old, new) (Node <= 18 only):
                              //   rsi = data, rdx = old bytes, rcx = new bytes
  external_memory_adjust,     // v8::Isolate::AdjustAmountOfExternalAllocatedMemory(int64_t): rsi = delta
  external_memory_increase,   // v8::ExternalMemoryAccounter::Increase(Isolate*, size_t) (V8 >= 13): rdx
  external_memory_decrease,   // v8::ExternalMemoryAccounter::Decrease(Isolate*, size_t) (V8 >= 13): rdx
  external_memory_update,     // v8::ExternalMemoryAccounter::Update(Isolate*, int64_t) (V8 >= 13): rdx
  heap_committed,             // return of v8::internal::Heap::CommittedMemory(): rax = bytes (what
                              //   memoryUsage().heapTotal returns); called at each GC's prologue/epilogue
};
inline constexpr ProbePurpose kAllProbePurposes[] = {
    ProbePurpose::gc_start,
    ProbePurpose::gc_end,
    ProbePurpose::heap_used_before,
    ProbePurpose::heap_used_after,
    ProbePurpose::array_buffer_alloc,
    ProbePurpose::array_buffer_alloc_uninit,
    ProbePurpose::array_buffer_free,
    ProbePurpose::array_buffer_realloc,
    ProbePurpose::external_memory_adjust,
    ProbePurpose::external_memory_increase,
    ProbePurpose::external_memory_decrease,
    ProbePurpose::external_memory_update,
    ProbePurpose::heap_committed,
};
std::string_view to_string(ProbePurpose purpose);

// The mangled names tried for each purpose, newest V8 first.
const std::vector<std::string>& symbol_variants(ProbePurpose purpose);

// v8::internal::Heap::SizeOfObjects(), whose call sites in GCTracer::Start/StopInSafepoint are the
// heap_used_before/after probes.
const std::string& size_of_objects_symbol();
// The callers of SizeOfObjects for heap_used_before / heap_used_after (empty for other purposes).
const std::vector<std::string>& size_of_objects_callers(ProbePurpose purpose);

// Every name the catalogue may look up (for ElfFile::prefetch), and the name prefixes that show an object
// holds V8 or Node's allocator.
std::vector<std::string> catalogue_symbol_names();
const std::vector<std::string>& v8_symbol_prefixes();

// The vtable of node::NodeArrayBufferAllocator: an allocator object's first word is its address + 16.
const std::string& array_buffer_allocator_vtable_symbol();

}  // namespace memlens::node
