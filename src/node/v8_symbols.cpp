#include "node/v8_symbols.h"

namespace memlens::node {
namespace {

const std::vector<std::string> kPerformGc = {
    // V8 11.3 (Node 20), 12.4 (Node 22), 13.6 (Node 24)
    "_ZN2v88internal4Heap24PerformGarbageCollectionENS0_16GarbageCollectorENS0_23GarbageCollectionReasonEPKc",
    // V8 10.2 (Node 18): callers inside V8 call a .constprop clone, found with the clone suffixes
    "_ZN2v88internal4Heap24PerformGarbageCollectionENS0_16GarbageCollectorENS0_"
    "23GarbageCollectionReasonEPKcNS_"
    "15GCCallbackFlagsE",
};
const std::vector<std::string> kStartInSafepoint = {
    "_ZN2v88internal8GCTracer16StartInSafepointENS_4base9TimeTicksE",  // V8 12.4, 13.6
    "_ZN2v88internal8GCTracer16StartInSafepointEv",                    // V8 10.2, 11.3
};
const std::vector<std::string> kStopInSafepoint = {
    "_ZN2v88internal8GCTracer15StopInSafepointENS_4base9TimeTicksE",
    "_ZN2v88internal8GCTracer15StopInSafepointEv",
};
const std::string kSizeOfObjects = "_ZN2v88internal4Heap13SizeOfObjectsEv";
const std::vector<std::string> kAbAllocate = {"_ZN4node24NodeArrayBufferAllocator8AllocateEm"};
const std::vector<std::string> kAbAllocateUninit = {
    "_ZN4node24NodeArrayBufferAllocator21AllocateUninitializedEm"};
const std::vector<std::string> kAbFree = {"_ZN4node24NodeArrayBufferAllocator4FreeEPvm"};
const std::vector<std::string> kAbRealloc = {"_ZN4node24NodeArrayBufferAllocator10ReallocateEPvmm"};
const std::vector<std::string> kExternalAdjust = {"_ZN2v87Isolate37AdjustAmountOfExternalAllocatedMemoryEl"};
const std::vector<std::string> kExternalIncrease = {
    "_ZN2v823ExternalMemoryAccounter8IncreaseEPNS_7IsolateEm"};
const std::vector<std::string> kExternalDecrease = {
    "_ZN2v823ExternalMemoryAccounter8DecreaseEPNS_7IsolateEm"};
const std::vector<std::string> kExternalUpdate = {"_ZN2v823ExternalMemoryAccounter6UpdateEPNS_7IsolateEl"};
const std::vector<std::string> kCommittedMemory = {"_ZN2v88internal4Heap15CommittedMemoryEv"};
const std::string kAllocatorVtable = "_ZTVN4node24NodeArrayBufferAllocatorE";

}  // namespace

std::string_view to_string(ProbePurpose purpose) {
  switch (purpose) {
    case ProbePurpose::gc_start:
      return "gc_start";
    case ProbePurpose::gc_end:
      return "gc_end";
    case ProbePurpose::heap_used_before:
      return "heap_used_before";
    case ProbePurpose::heap_used_after:
      return "heap_used_after";
    case ProbePurpose::array_buffer_alloc:
      return "array_buffer_alloc";
    case ProbePurpose::array_buffer_alloc_uninit:
      return "array_buffer_alloc_uninit";
    case ProbePurpose::array_buffer_free:
      return "array_buffer_free";
    case ProbePurpose::array_buffer_realloc:
      return "array_buffer_realloc";
    case ProbePurpose::external_memory_adjust:
      return "external_memory_adjust";
    case ProbePurpose::external_memory_increase:
      return "external_memory_increase";
    case ProbePurpose::external_memory_decrease:
      return "external_memory_decrease";
    case ProbePurpose::external_memory_update:
      return "external_memory_update";
    case ProbePurpose::heap_committed:
      return "heap_committed";
  }
  return "unknown";
}

const std::vector<std::string>& symbol_variants(ProbePurpose purpose) {
  switch (purpose) {
    case ProbePurpose::gc_start:
    case ProbePurpose::gc_end:
      return kPerformGc;
    case ProbePurpose::heap_used_before:
      return kStartInSafepoint;
    case ProbePurpose::heap_used_after:
      return kStopInSafepoint;
    case ProbePurpose::array_buffer_alloc:
      return kAbAllocate;
    case ProbePurpose::array_buffer_alloc_uninit:
      return kAbAllocateUninit;
    case ProbePurpose::array_buffer_free:
      return kAbFree;
    case ProbePurpose::array_buffer_realloc:
      return kAbRealloc;
    case ProbePurpose::external_memory_adjust:
      return kExternalAdjust;
    case ProbePurpose::external_memory_increase:
      return kExternalIncrease;
    case ProbePurpose::external_memory_decrease:
      return kExternalDecrease;
    case ProbePurpose::external_memory_update:
      return kExternalUpdate;
    case ProbePurpose::heap_committed:
      return kCommittedMemory;
  }
  static const std::vector<std::string> none;
  return none;
}

const std::string& size_of_objects_symbol() {
  return kSizeOfObjects;
}

const std::vector<std::string>& size_of_objects_callers(ProbePurpose purpose) {
  static const std::vector<std::string> none;
  if (purpose == ProbePurpose::heap_used_before) return kStartInSafepoint;
  if (purpose == ProbePurpose::heap_used_after) return kStopInSafepoint;
  return none;
}

std::vector<std::string> catalogue_symbol_names() {
  std::vector<std::string> names = {kSizeOfObjects, kAllocatorVtable};
  for (const auto* v : {&kPerformGc, &kStartInSafepoint, &kStopInSafepoint, &kAbAllocate, &kAbAllocateUninit,
                        &kAbFree, &kAbRealloc, &kExternalAdjust, &kExternalIncrease, &kExternalDecrease,
                        &kExternalUpdate, &kCommittedMemory})
    names.insert(names.end(), v->begin(), v->end());
  return names;
}

const std::vector<std::string>& v8_symbol_prefixes() {
  static const std::vector<std::string> prefixes = {"_ZN2v88internal4Heap", "_ZN2v88internal8GCTracer",
                                                    "_ZN4node24NodeArrayBufferAllocator", "_ZN2v87Isolate"};
  return prefixes;
}

const std::string& array_buffer_allocator_vtable_symbol() {
  return kAllocatorVtable;
}

}  // namespace memlens::node
