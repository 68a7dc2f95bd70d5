// Finds where to attach V8/Node probes in a node executable or a libnode.so: which ELF object of a process
// holds V8, which mangled symbol of which table serves each purpose, and the file offset libbpf attaches
// at. What each probe reads (registers, units) and the evidence per Node major: docs/v8-probes.md.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace memlens::elf {
class ElfFile;
}

namespace memlens::node {

// What a probe measures. The register contract of each is fixed here, whatever the Node major:
enum class ProbePurpose {
  gc_start,          // entry of Heap::PerformGarbageCollection: rdi = Heap*, esi = GarbageCollector (kind)
  gc_end,            // return of the same function (pause = end - start on the same thread)
  heap_used_before,  // instruction after GCTracer::StartInSafepoint's call to Heap::SizeOfObjects: rax =
                     // bytes
  heap_used_after,   // instruction after GCTracer::StopInSafepoint's call to Heap::SizeOfObjects: rax = bytes
  array_buffer_alloc,         // NodeArrayBufferAllocator::Allocate(size_t) entry: rsi = bytes
  array_buffer_alloc_uninit,  // NodeArrayBufferAllocator::AllocateUninitialized(size_t) entry: rsi = bytes
  array_buffer_free,          // NodeArrayBufferAllocator::Free(void*, size_t): rsi = data, rdx = bytes
  array_buffer_realloc,       // NodeArrayBufferAllocator::Reallocate(void*, old, new) (Node <= 18 only):
                              //   rsi = data, rdx = old bytes, rcx = new bytes
  external_memory_adjust,     // v8::Isolate::AdjustAmountOfExternalAllocatedMemory(int64_t): rsi = delta
  external_memory_increase,   // v8::ExternalMemoryAccounter::Increase(Isolate*, size_t) (V8 >= 13): rdx
  external_memory_decrease,   // v8::ExternalMemoryAccounter::Decrease(Isolate*, size_t) (V8 >= 13): rdx
  external_memory_update,     // v8::ExternalMemoryAccounter::Update(Isolate*, int64_t) (V8 >= 13): rdx
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
};
std::string_view to_string(ProbePurpose purpose);

// V8's GarbageCollector enum, the value of esi at gc_start (same numbering in V8 10.2 to 13.6).
enum class GcKind : uint32_t { scavenge = 0, mark_compact = 1, minor_mark_compact = 2 };
std::string_view to_string(GcKind kind);  // "scavenge", "mark_compact", "minor_mark_compact", "unknown"
std::string_view gc_kind_name(uint32_t collector);

enum class SymbolTable { dynsym, symtab };

// One place to attach: libbpf's bpf_program__attach_uprobe_opts(prog, pid, path, file_offset, opts) with
// opts.func_name = NULL and opts.retprobe = retprobe.
struct AttachPoint {
  std::string host_path;          // a path libbpf can open on this host (/proc/PID/root/... for a pid)
  uint64_t file_offset = 0;       // where the breakpoint goes
  std::string symbol;             // mangled name of the function holding file_offset
  uint64_t offset_in_symbol = 0;  // 0 = function entry; else an instruction inside it (see why_inside)
  SymbolTable table = SymbolTable::dynsym;
  bool retprobe = false;
  std::string why_inside;  // why the point is not the function entry, "" when it is
};

struct ProbeSite {
  ProbePurpose purpose{};
  std::vector<AttachPoint> points;  // empty when skipped; several when V8 has clones of one function
  std::string skip_reason;          // why points is empty ("" when found)
  bool optional = false;            // absent on some majors by design (not worth a warning)
  bool found() const { return !points.empty(); }
};

// A USDT probe from a SHT_NOTE "stapsdt" note (type 3), addresses adjusted for prelink with .stapsdt.base.
struct UsdtProbe {
  std::string provider, name, args;
  uint64_t pc = 0;  // vaddr of the probe's nop
  uint64_t pc_file_offset = 0;
  uint64_t semaphore = 0;  // vaddr of the semaphore, 0 when the probe has none
  std::optional<uint64_t> semaphore_file_offset;
  bool has_semaphore() const { return semaphore != 0; }
};

struct ProbePlan {
  std::string host_path;           // the ELF object holding V8, as libbpf can open it
  std::string path_in_process;     // its path as the process sees it ("" when planned from a binary path)
  bool is_shared_library = false;  // libnode.so rather than the node executable
  // A libnode.so the executable needs but the dynamic loader had not mapped yet (just after exec): found
  // where the loader will look for it. The probes attach to its file and are in place when it is mapped.
  bool found_before_mapping = false;
  bool has_symtab = false, has_dynsym = false;
  bool stripped = false;  // no .symtab and V8's internal symbols absent from .dynsym
  std::string build_id;
  std::string node_version;       // "v20.20.2" when found cheaply in .rodata, else ""
  std::vector<ProbeSite> probes;  // one per ProbePurpose, in kAllProbePurposes order
  std::vector<UsdtProbe> usdt;    // node:gc__start / node:gc__done (and any other stapsdt notes)
  // Where NodeArrayBufferAllocator keeps its byte counter (total_mem_usage_, what
  // process.memoryUsage().arrayBuffers returns), as an offset into the allocator object: decoded from Free's
  // first instruction, `lock sub %rdx, DISP(%rdi)`. Empty, with the reason, when Free does not start so.
  std::optional<uint32_t> ab_counter_offset;
  std::string ab_counter_skip_reason;

  const ProbeSite* find(ProbePurpose purpose) const;
  const UsdtProbe* find_usdt(std::string_view provider, std::string_view name) const;
  bool gc_usable() const;  // gc_start and gc_end found, or the USDT pair
  // One line per probe: "gc_start: found .symtab _ZN... +0 @0xf61c80 (entry) in /path", or the reason.
  std::string describe() const;
};

// The mangled names tried for each purpose, newest V8 first.
const std::vector<std::string>& symbol_variants(ProbePurpose purpose);

// Plans for the V8 holder of a live process: the main executable if it holds V8, else a mapped libnode.so.
Result<ProbePlan> plan_for_pid(pid_t pid);
// Plans for a binary (node or libnode.so) on the host.
Result<ProbePlan> plan_for_binary(const std::string& host_path);
// Plans for an already opened object; fd is used to read instruction bytes. Exposed for tests.
Result<ProbePlan> plan_for_elf(const elf::ElfFile& elf, int fd, const std::string& host_path);

// USDT notes of an ELF object (exposed for tests).
std::vector<UsdtProbe> read_usdt_probes(const elf::ElfFile& elf);

// x86-64 helpers (exposed for tests). Length of a lock-prefixed read-modify-write instruction at p, 0 when
// p does not start with one this decoder knows. The kernel refuses uprobes on lock-prefixed instructions.
size_t lock_instruction_length(const uint8_t* p, size_t n);
// DISP of `lock sub %rdx, DISP(%rdi)` (f0 48 29 57 d8 / f0 48 29 97 d32) at p, nullopt for any other
// instruction (another register, a negative or missing displacement).
std::optional<uint32_t> decode_lock_sub_rdx_from_rdi(const uint8_t* p, size_t n);
// Offsets, within code that starts at vaddr code_vaddr, of the instructions following each `call rel32`
// whose target is target_vaddr.
std::vector<uint64_t> offsets_after_calls_to(const uint8_t* code, size_t n, uint64_t code_vaddr,
                                             uint64_t target_vaddr);

}  // namespace memlens::node
