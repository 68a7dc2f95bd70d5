// Finds where to attach V8/Node probes in a node executable or a libnode.so: which ELF object of a process
// holds V8 (node/v8_holder.cpp), which mangled symbol of which table serves each purpose
// (node/v8_symbols.h), and the file offset libbpf attaches at. What each probe reads (registers, units) and
// the evidence per Node major: docs/v8-probes.md.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "elf/usdt.h"
#include "node/v8_symbols.h"

namespace memlens::elf {
class ElfFile;
}

namespace memlens::node {

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
  // Where the figure is read at this point, when not from a register the program knows: the 64-bit word
  // at value_disp(value_base), value_base an x86 register number (heap_used_before/after at the call
  // after V8 stored SizeOfObjects()'s result; elf::rax_stored_until_next_call).
  std::optional<uint8_t> value_base;
  int32_t value_disp = 0;
};

struct ProbeSite {
  ProbePurpose purpose{};
  std::vector<AttachPoint> points;  // empty when skipped; several when V8 has clones of one function
  std::string skip_reason;          // why points is empty ("" when found)
  bool optional = false;            // absent on some majors by design (not worth a warning)
  bool found() const { return !points.empty(); }
};

// Where each GC's heap figures (heap used before and after it, what --trace-gc prints) can be read when
// it ends, with no probe of their own: PerformGarbageCollection calls GCTracer::StartInSafepoint and
// StopInSafepoint, which store the figures in the tracer's current event, and nothing replaces that event
// before PerformGarbageCollection returns (docs/v8-probes.md). The tracer is the word at tracer_offset of
// the Heap (PerformGarbageCollection's `this`, %rdi at its entry), and its own first word points back at
// the Heap, which the probe checks before it reads.
struct HeapFiguresInTracer {
  uint32_t tracer_offset = 0;
  int32_t before_disp = 0, after_disp = 0;  // of each figure in the tracer
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
  std::vector<ProbeSite> probes;     // one per ProbePurpose, in kAllProbePurposes order
  std::vector<elf::UsdtProbe> usdt;  // node:gc__start / node:gc__done (and any other stapsdt notes)
  // Where NodeArrayBufferAllocator keeps its byte counter (total_mem_usage_, what
  // process.memoryUsage().arrayBuffers returns), as an offset into the allocator object: decoded from Free's
  // first instruction, `lock sub %rdx, DISP(%rdi)`. Empty, with the reason, when Free does not start so.
  std::optional<uint32_t> ab_counter_offset;
  std::string ab_counter_skip_reason;
  // The value of an allocator object's first word (its vtable pointer) as a file offset of this object,
  // to find the object in the process's memory without a probe. Empty when the vtable symbol is absent.
  std::optional<uint64_t> ab_allocator_vptr_file_offset;
  // When set, the GC end probe reads the heap figures and the heap_used probes are not attached (two traps
  // a GC instead of four). Empty, with the reason, when this build's code does not show it safe.
  std::optional<HeapFiguresInTracer> heap_figures_in_tracer;
  std::string heap_figures_in_tracer_skip_reason;

  const ProbeSite* find(ProbePurpose purpose) const;
  const elf::UsdtProbe* find_usdt(std::string_view provider, std::string_view name) const;
  bool gc_usable() const;  // gc_start and gc_end found, or the USDT pair
  // One line per probe: "gc_start: found .symtab _ZN... +0 @0xf61c80 (entry) in /path", or the reason.
  std::string describe() const;
};

// Plans for the V8 holder of a live process: the main executable if it holds V8, else a mapped libnode.so.
Result<ProbePlan> plan_for_pid(pid_t pid);
// Plans for a binary (node or libnode.so) on the host.
Result<ProbePlan> plan_for_binary(const std::string& host_path);
// Plans for an already opened object (node/plan_cache.h keeps the plans of files already planned).
Result<ProbePlan> plan_for_elf(const elf::ElfFile& elf, const std::string& host_path);
// Whether the object shows that it holds V8: V8 or Node allocator symbols, or node's USDT notes. A
// stripped node executable holds V8 without showing it.
bool holds_v8(const elf::ElfFile& elf);

}  // namespace memlens::node
