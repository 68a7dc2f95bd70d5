// What the V8 capability reads from a live node process itself: which image it runs (its maps), and the
// byte counters of its ArrayBuffer allocator objects (its memory, with process_vm_readv).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/result.h"

namespace memlens::collect {

// The (device, inode) of every libnode.so mapped into pid; empty when none is (yet).
std::vector<std::pair<uint64_t, uint64_t>> mapped_libnodes(pid_t pid);

// The executable and libnode.so files mapped into pid, by (device, inode): which image runs now. Empty
// when it cannot be read (the process is gone).
std::string image_identity(pid_t pid);

// One NodeArrayBufferAllocator object in a process's memory.
struct V8Allocator {
  uint64_t addr = 0;
  uint64_t vptr = 0;  // its first word when found: a destroyed (freed) allocator no longer has it
};

// Adds the allocator object at addr to allocators, unless known or unreadable.
void add_allocator(pid_t pid, std::vector<V8Allocator>& allocators, uint64_t addr);

// The NodeArrayBufferAllocator objects of pid found without a probe: the 8-byte-aligned words of its [heap]
// (where node allocates its main allocator at start-up) equal to the allocator's vtable pointer, whose
// file offset in the V8 holder (mapped at holder_path, "" for the executable) is vptr_file_offset.
// Empty when none is there (yet); an error when the holder or [heap] is not mapped or not readable.
Result<std::vector<uint64_t>> find_allocators(pid_t pid, const std::string& holder_path,
                                              uint64_t vptr_file_offset);

// Sum of the byte counters (at counter_offset in each object) of the allocators that still exist; the
// others are dropped from the list. nullopt when none can be read (the process is gone: the last figure
// then stays).
std::optional<uint64_t> read_allocator_counters(pid_t pid, std::vector<V8Allocator>& allocators,
                                                uint32_t counter_offset);

}  // namespace memlens::collect
