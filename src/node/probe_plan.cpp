#include "node/probe_plan.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <list>
#include <mutex>
#include <tuple>

#include "common/safe_file.h"
#include "elf/elf_file.h"
#include "proc/procfs.h"

namespace memlens::node {
namespace {

// Mangled names per V8 version, verified against the official binaries (docs/v8-probes.md).
const std::vector<std::string> kPerformGc = {
    // V8 11.3 (Node 20), 12.4 (Node 22), 13.6 (Node 24)
    "_ZN2v88internal4Heap24PerformGarbageCollectionENS0_16GarbageCollectorENS0_23GarbageCollectionReasonEPKc",
    // V8 10.2 (Node 18): callers inside V8 call a .constprop clone, found with the clone suffixes below
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

uint64_t read_u64(const std::string& s, size_t at) {
  uint64_t v = 0;
  std::memcpy(&v, s.data() + at, sizeof v);
  return v;
}

// The largest function body read to look for a call site; StartInSafepoint is < 1 KiB.
constexpr uint64_t kMaxScanBytes = 64 << 10;

std::string join(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

// The function symbols matching the first variant present, plus its whole-function clones (.constprop.N,
// .isra.N: GCC's specialised copies that callers may call instead of the original). Fragments (.cold,
// .part.N) are not entry points and are ignored.
std::vector<elf::Symbol> resolve(const elf::ElfFile& elf, const std::vector<std::string>& variants) {
  for (const auto& name : variants) {
    std::vector<elf::Symbol> out;
    if (auto s = elf.find_symbol(name); s && s->is_function && s->address != 0) out.push_back(*s);
    for (const auto& clone : elf.find_symbols_with_prefix(name + ".")) {
      std::string_view suffix = std::string_view(clone.name).substr(name.size());
      if (!clone.is_function || clone.address == 0) continue;
      if (suffix.starts_with(".constprop.") || suffix.starts_with(".isra.")) out.push_back(clone);
    }
    if (!out.empty()) return out;
  }
  return {};
}

Result<std::string> read_code(int fd, const elf::ElfFile& elf, uint64_t vaddr, uint64_t size) {
  auto off = elf.vaddr_to_file_offset(vaddr);
  if (!off) return make_error(fmt::format("address {:#x} is not in a loaded segment", vaddr));
  size = std::min<uint64_t>(size, kMaxScanBytes);
  std::string buf(size, '\0');
  ssize_t got = pread(fd, buf.data(), size, static_cast<off_t>(*off));
  if (got < 0) return errno_error("pread");
  buf.resize(static_cast<size_t>(got));
  return buf;
}

const elf::SectionInfo* section(const elf::ElfFile& elf, std::string_view name) {
  for (const auto& s : elf.sections())
    if (s.name == name) return &s;
  return nullptr;
}

Result<std::string> read_section(int fd, const elf::SectionInfo& s) {
  if (s.size > elf::ElfLimits::kMaxSectionBytes) return make_error("section " + s.name + " too large");
  std::string buf(s.size, '\0');
  ssize_t got = pread(fd, buf.data(), s.size, static_cast<off_t>(s.file_offset));
  if (got != static_cast<ssize_t>(s.size)) return errno_error("pread " + s.name);
  return buf;
}

// In a shared library V8 calls its own exported functions through the PLT (they can be interposed), so a
// call site targets a PLT stub, not the function. The GOT slot of `symbol` (from .rela.plt) identifies the
// stub: it is the one whose `jmp *slot(%rip)` reads that slot.
std::optional<uint64_t> got_slot_of(const elf::ElfFile& elf, int fd, const std::string& symbol) {
  const auto* dynsym = section(elf, ".dynsym");
  const auto* dynstr = section(elf, ".dynstr");
  const auto* rela = section(elf, ".rela.plt");
  if (!dynsym || !dynstr || !rela) return std::nullopt;
  auto syms = read_section(fd, *dynsym);
  auto strs = read_section(fd, *dynstr);
  auto relocs = read_section(fd, *rela);
  if (!syms.ok() || !strs.ok() || !relocs.ok()) return std::nullopt;
  constexpr size_t kSymSize = 24, kRelaSize = 24;  // Elf64_Sym, Elf64_Rela
  uint64_t index = 0;
  for (size_t i = 1; (i + 1) * kSymSize <= syms->size(); ++i) {
    uint32_t name;
    std::memcpy(&name, syms->data() + i * kSymSize, 4);
    if (name < strs->size() && std::strncmp(strs->data() + name, symbol.c_str(), strs->size() - name) == 0 &&
        std::strlen(strs->data() + name) == symbol.size()) {
      index = i;
      break;
    }
  }
  if (index == 0) return std::nullopt;
  for (size_t at = 0; at + kRelaSize <= relocs->size(); at += kRelaSize) {
    uint64_t offset = read_u64(*relocs, at), info = read_u64(*relocs, at + 8);
    if ((info >> 32) == index) return offset;
  }
  return std::nullopt;
}

// Whether the PLT stub at `stub` jumps through GOT slot `slot`: `ff 25 rel32` (jmp *rel32(%rip)), possibly
// after endbr64 / bnd prefixes (.plt.sec).
bool plt_stub_uses_slot(const elf::ElfFile& elf, int fd, uint64_t stub, uint64_t slot) {
  auto code = read_code(fd, elf, stub, 16);
  if (!code.ok()) return false;
  const auto* b = reinterpret_cast<const uint8_t*>(code->data());
  for (size_t k = 0; k + 6 <= code->size(); ++k) {
    if (b[k] != 0xFF || b[k + 1] != 0x25) continue;
    int32_t rel;
    std::memcpy(&rel, b + k + 2, 4);
    return stub + k + 6 + static_cast<int64_t>(rel) == slot;
  }
  return false;
}

SymbolTable table_of(const elf::Symbol& s) {
  return s.from_dynsym ? SymbolTable::dynsym : SymbolTable::symtab;
}

// An attach point at a function's entry. The kernel refuses to place a uprobe on a lock-prefixed
// instruction (NodeArrayBufferAllocator::Free starts with `lock sub`): the breakpoint then goes on the next
// instruction, which sees the same argument registers because the locked instruction writes only memory.
Result<AttachPoint> entry_point(const elf::ElfFile& elf, int fd, const std::string& host_path,
                                const elf::Symbol& sym, bool retprobe) {
  auto off = elf.vaddr_to_file_offset(sym.address);
  if (!off)
    return make_error(fmt::format("{} at {:#x} is outside the loaded segments", sym.name, sym.address));
  AttachPoint p{host_path, *off, sym.name, 0, table_of(sym), retprobe, ""};
  auto code = read_code(fd, elf, sym.address, 16);
  if (!code.ok()) return code.error();
  const auto* bytes = reinterpret_cast<const uint8_t*>(code->data());
  if (!code->empty() && bytes[0] == 0xF0) {
    if (retprobe)
      return make_error(fmt::format("{} starts with a lock-prefixed instruction: no return probe", sym.name));
    size_t len = lock_instruction_length(bytes, code->size());
    if (len == 0)
      return make_error(
          fmt::format("{} starts with a lock-prefixed instruction this decoder does not know", sym.name));
    p.file_offset += len;
    p.offset_in_symbol = len;
    p.why_inside = "first instruction is lock-prefixed (uprobes refuse it); argument registers unchanged";
  }
  return p;
}

ProbeSite entry_site(const elf::ElfFile& elf, int fd, const std::string& host_path, ProbePurpose purpose,
                     bool retprobe, bool optional = false) {
  ProbeSite site{purpose, {}, "", optional};
  const auto& variants = symbol_variants(purpose);
  auto syms = resolve(elf, variants);
  if (syms.empty()) {
    site.skip_reason = "symbol not found: tried " + join(variants);
    return site;
  }
  for (const auto& s : syms) {
    auto p = entry_point(elf, fd, host_path, s, retprobe);
    if (p.ok())
      site.points.push_back(std::move(*p));
    else
      site.skip_reason = p.error().message;
  }
  if (!site.points.empty()) site.skip_reason.clear();
  return site;
}

// heap_used_before/after: the instruction after GCTracer::Start/StopInSafepoint's call to
// Heap::SizeOfObjects, where rax holds the figure --trace-gc prints. Heap::SizeOfObjects itself is also
// called outside GCs (heap statistics), so its return probe alone would need per-thread state.
ProbeSite call_site(const elf::ElfFile& elf, int fd, const std::string& host_path, ProbePurpose purpose,
                    const std::vector<std::string>& caller_variants) {
  ProbeSite site{purpose, {}, "", false};
  auto callers = resolve(elf, caller_variants);
  auto callee = elf.find_symbol(kSizeOfObjects);
  if (callers.empty() || !callee) {
    std::vector<std::string> tried = caller_variants;
    tried.push_back(kSizeOfObjects);
    site.skip_reason = "symbol not found: tried " + join(tried);
    return site;
  }
  for (const auto& caller : callers) {
    if (caller.size == 0) continue;
    auto code = read_code(fd, elf, caller.address, caller.size);
    if (!code.ok()) {
      site.skip_reason = code.error().message;
      continue;
    }
    const auto* bytes = reinterpret_cast<const uint8_t*>(code->data());
    auto after = offsets_after_calls_to(bytes, code->size(), caller.address, callee->address);
    if (after.empty()) {
      // Through the PLT (shared library): every call whose target stub jumps through SizeOfObjects' slot.
      auto slot = got_slot_of(elf, fd, kSizeOfObjects);
      for (size_t i = 0; slot && i + 5 <= code->size(); ++i) {
        if (bytes[i] != 0xE8) continue;
        int32_t rel;
        std::memcpy(&rel, bytes + i + 1, 4);
        uint64_t target = caller.address + i + 5 + static_cast<int64_t>(rel);
        bool in_plt = false;
        for (const char* name : {".plt", ".plt.sec"})
          if (const auto* plt = section(elf, name);
              plt && target >= plt->address && target < plt->address + plt->size)
            in_plt = true;
        if (in_plt && plt_stub_uses_slot(elf, fd, target, *slot)) after.push_back(i + 5);
      }
    }
    if (after.empty()) continue;
    // One call per function in every verified build; the first is the one that fills the GC event.
    auto off = elf.vaddr_to_file_offset(caller.address + after.front());
    if (!off) continue;
    site.points.push_back(
        AttachPoint{host_path, *off, caller.name, after.front(), table_of(caller), false,
                    "instruction after the call to v8::internal::Heap::SizeOfObjects(): rax "
                    "holds its result"});
  }
  if (site.points.empty() && site.skip_reason.empty())
    site.skip_reason = fmt::format("no call to {} found in {} (inlined in this build)", kSizeOfObjects,
                                   callers.front().name);
  if (!site.points.empty()) site.skip_reason.clear();
  return site;
}

// The Node version is not read from the binary yet: it lives in .rodata among ~40 MB of strings, not worth
// scanning on every attach. Left empty; the symbol variants identify the V8 generation well enough.
std::string guess_version(const elf::ElfFile&) {
  return "";
}

bool holds_v8(const elf::ElfFile& elf) {
  if (!elf.find_symbols_with_prefix("_ZN2v88internal4Heap").empty()) return true;
  if (!elf.find_symbols_with_prefix("_ZN4node24NodeArrayBufferAllocator").empty()) return true;
  if (!elf.find_symbols_with_prefix("_ZN2v87Isolate").empty()) return true;
  for (const auto& p : read_usdt_probes(elf))
    if (p.provider == "node") return true;
  return false;
}

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
  }
  return "unknown";
}

std::string_view gc_kind_name(uint32_t collector) {
  switch (collector) {
    case 0:
      return "scavenge";
    case 1:
      return "mark_compact";
    case 2:
      return "minor_mark_compact";
    default:
      return "unknown";
  }
}
std::string_view to_string(GcKind kind) {
  return gc_kind_name(static_cast<uint32_t>(kind));
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
  }
  static const std::vector<std::string> none;
  return none;
}

size_t lock_instruction_length(const uint8_t* p, size_t n) {
  size_t i = 0;
  if (n < 3 || p[i++] != 0xF0) return 0;
  if (i < n && (p[i] & 0xF0) == 0x40) ++i;  // REX
  if (i >= n) return 0;
  size_t imm = 0;
  uint8_t op = p[i++];
  if (op == 0x0F) {  // xadd, cmpxchg, bts/btr/btc r/m, reg
    if (i >= n) return 0;
    uint8_t op2 = p[i++];
    if (op2 != 0xC0 && op2 != 0xC1 && op2 != 0xB0 && op2 != 0xB1 && op2 != 0xAB && op2 != 0xB3 && op2 != 0xBB)
      return 0;
  } else if (op == 0x80 || op == 0x83) {  // ALU r/m, imm8
    imm = 1;
  } else if (op == 0x81) {  // ALU r/m, imm32
    imm = 4;
  } else if (op == 0xFE || op == 0xFF || op == 0xF6 || op == 0xF7 || op == 0x86 || op == 0x87) {
    // inc/dec, not/neg, xchg (the F6/F7 test forms take an immediate and cannot be locked)
  } else if (op <= 0x3F && (op & 0x07) <= 0x01) {  // add/or/adc/sbb/and/sub/xor r/m, reg
  } else {
    return 0;
  }
  if (i >= n) return 0;
  uint8_t modrm = p[i++];
  uint8_t mod = modrm >> 6, rm = modrm & 7;
  if (mod == 3) return 0;  // a register operand cannot be locked
  if (rm == 4) {           // SIB
    if (i >= n) return 0;
    uint8_t sib = p[i++];
    if (mod == 0 && (sib & 7) == 5) i += 4;
  } else if (mod == 0 && rm == 5) {
    i += 4;  // rip-relative
  }
  if (mod == 1) i += 1;
  if (mod == 2) i += 4;
  i += imm;
  return i <= n ? i : 0;
}

std::optional<uint32_t> decode_lock_sub_rdx_from_rdi(const uint8_t* p, size_t n) {
  // lock, REX.W (no R/X/B: rdx and rdi are legacy registers), sub r/m64 r64, ModRM reg=rdx rm=rdi.
  if (n < 5 || p[0] != 0xF0 || p[1] != 0x48 || p[2] != 0x29) return std::nullopt;
  uint8_t modrm = p[3], mod = modrm >> 6, reg = (modrm >> 3) & 7, rm = modrm & 7;
  if (reg != 2 || rm != 7) return std::nullopt;
  if (mod == 1) {
    auto disp = static_cast<int8_t>(p[4]);
    if (disp < 0) return std::nullopt;
    return static_cast<uint32_t>(disp);
  }
  if (mod == 2 && n >= 8) {
    int32_t disp;
    std::memcpy(&disp, p + 4, sizeof disp);
    if (disp < 0) return std::nullopt;
    return static_cast<uint32_t>(disp);
  }
  if (mod == 0) return 0u;  // (%rdi): the counter first in the object (no vtable); not seen in any build
  return std::nullopt;
}

std::vector<uint64_t> offsets_after_calls_to(const uint8_t* code, size_t n, uint64_t code_vaddr,
                                             uint64_t target_vaddr) {
  std::vector<uint64_t> out;
  for (size_t i = 0; i + 5 <= n; ++i) {
    if (code[i] != 0xE8) continue;
    int32_t rel;
    std::memcpy(&rel, code + i + 1, sizeof rel);
    if (code_vaddr + i + 5 + static_cast<int64_t>(rel) == target_vaddr) out.push_back(i + 5);
  }
  return out;
}

std::vector<UsdtProbe> read_usdt_probes(const elf::ElfFile& elf) {
  std::vector<UsdtProbe> out;
  auto base_section = elf.section_address(".stapsdt.base");
  for (const auto& note : elf.notes()) {
    if (note.owner != "stapsdt" || note.type != 3 || note.desc.size() < 3 * 8 + 3) continue;
    UsdtProbe p;
    p.pc = read_u64(note.desc, 0);
    uint64_t base = read_u64(note.desc, 8);
    p.semaphore = read_u64(note.desc, 16);
    size_t at = 24;
    std::string* fields[] = {&p.provider, &p.name, &p.args};
    bool ok = true;
    for (auto* f : fields) {
      size_t end = note.desc.find('\0', at);
      if (end == std::string::npos) {
        ok = f == &p.args;  // args may lack its terminator in a truncated note
        *f = note.desc.substr(at);
        at = note.desc.size();
        break;
      }
      *f = note.desc.substr(at, end - at);
      at = end + 1;
    }
    if (!ok || p.provider.empty() || p.name.empty()) continue;
    // Prelink moves sections after the notes were written: the note records where .stapsdt.base was.
    if (base_section && base != 0) {
      int64_t delta = static_cast<int64_t>(*base_section - base);
      p.pc += delta;
      if (p.semaphore) p.semaphore += delta;
    }
    auto pc_off = elf.vaddr_to_file_offset(p.pc);
    if (!pc_off) continue;
    p.pc_file_offset = *pc_off;
    if (p.semaphore) p.semaphore_file_offset = elf.vaddr_to_file_offset(p.semaphore);
    out.push_back(std::move(p));
  }
  return out;
}

const ProbeSite* ProbePlan::find(ProbePurpose purpose) const {
  for (const auto& p : probes)
    if (p.purpose == purpose) return &p;
  return nullptr;
}

const UsdtProbe* ProbePlan::find_usdt(std::string_view provider, std::string_view name) const {
  for (const auto& u : usdt)
    if (u.provider == provider && u.name == name) return &u;
  return nullptr;
}

bool ProbePlan::gc_usable() const {
  auto* s = find(ProbePurpose::gc_start);
  auto* e = find(ProbePurpose::gc_end);
  if (s && e && s->found() && e->found()) return true;
  return find_usdt("node", "gc__start") && find_usdt("node", "gc__done");
}

std::string ProbePlan::describe() const {
  std::string out = fmt::format(
      "V8 holder: {}{}{} (.symtab: {}, .dynsym: {}{})\n", host_path,
      is_shared_library ? " [shared library]" : "", node_version.empty() ? "" : " node " + node_version,
      has_symtab ? "yes" : "no", has_dynsym ? "yes" : "no", stripped ? ", stripped" : "");
  for (const auto& p : probes) {
    if (!p.found()) {
      out += fmt::format("  {}: not found{}: {}\n", to_string(p.purpose), p.optional ? " (optional)" : "",
                         p.skip_reason);
      continue;
    }
    for (const auto& a : p.points)
      out += fmt::format("  {}: found {} {}+{:#x} at file offset {:#x} ({})\n", to_string(p.purpose),
                         a.table == SymbolTable::dynsym ? ".dynsym" : ".symtab", a.symbol, a.offset_in_symbol,
                         a.file_offset, a.retprobe ? "return" : (a.offset_in_symbol ? "inside" : "entry"));
  }
  if (ab_counter_offset)
    out += fmt::format("  array_buffer_counter: allocator + {:#x} (from NodeArrayBufferAllocator::Free)\n",
                       *ab_counter_offset);
  else
    out += fmt::format("  array_buffer_counter: not found: {}\n", ab_counter_skip_reason);
  if (usdt.empty()) out += "  usdt: no stapsdt notes\n";
  for (const auto& u : usdt)
    out += fmt::format("  usdt {}:{}: pc {:#x} (file offset {:#x}), semaphore {}, args \"{}\"\n", u.provider,
                       u.name, u.pc, u.pc_file_offset,
                       u.has_semaphore() ? fmt::format("{:#x}", u.semaphore) : "none", u.args);
  return out;
}

Result<ProbePlan> plan_for_elf(const elf::ElfFile& elf, int fd, const std::string& host_path) {
  // Every name the plan looks up, in one pass over the symbol tables (ElfFile::prefetch).
  std::vector<std::string> names = {kSizeOfObjects};
  for (const auto* v :
       {&kPerformGc, &kStartInSafepoint, &kStopInSafepoint, &kAbAllocate, &kAbAllocateUninit, &kAbFree,
        &kAbRealloc, &kExternalAdjust, &kExternalIncrease, &kExternalDecrease, &kExternalUpdate})
    names.insert(names.end(), v->begin(), v->end());
  elf.prefetch(names, {"_ZN2v88internal4Heap", "_ZN4node24NodeArrayBufferAllocator", "_ZN2v87Isolate"});
  ProbePlan plan;
  plan.host_path = host_path;
  plan.is_shared_library = elf.elf_type() == 3 /* ET_DYN */ && host_path.find(".so") != std::string::npos;
  plan.has_symtab = elf.has_symtab();
  plan.has_dynsym = elf.has_dynsym();
  plan.build_id = elf.build_id();
  plan.node_version = guess_version(elf);
  plan.stripped = !elf.has_symtab() && elf.find_symbols_with_prefix("_ZN2v88internal4Heap").empty();
  plan.usdt = read_usdt_probes(elf);

  // The allocator's byte counter, from Free's first instruction (docs/v8-probes.md).
  if (auto frees = resolve(elf, kAbFree); frees.empty()) {
    plan.ab_counter_skip_reason = "symbol not found: " + kAbFree.front();
  } else if (auto code = read_code(fd, elf, frees.front().address, 16); !code.ok()) {
    plan.ab_counter_skip_reason = code.error().message;
  } else {
    const auto* b = reinterpret_cast<const uint8_t*>(code->data());
    plan.ab_counter_offset = decode_lock_sub_rdx_from_rdi(b, code->size());
    if (!plan.ab_counter_offset) {
      std::string bytes;
      for (size_t i = 0; i < std::min<size_t>(code->size(), 8); ++i) bytes += fmt::format("{:02x} ", b[i]);
      plan.ab_counter_skip_reason = fmt::format(
          "{} does not start with `lock sub %rdx, DISP(%rdi)` (bytes: {}): the allocator's counter "
          "offset is unknown in this build",
          frees.front().name, bytes);
    }
  }

  for (ProbePurpose purpose : kAllProbePurposes) {
    ProbeSite site;
    switch (purpose) {
      case ProbePurpose::gc_start:
        site = entry_site(elf, fd, host_path, purpose, false);
        break;
      case ProbePurpose::gc_end:
        site = entry_site(elf, fd, host_path, purpose, true);
        break;
      case ProbePurpose::heap_used_before:
        site = call_site(elf, fd, host_path, purpose, kStartInSafepoint);
        break;
      case ProbePurpose::heap_used_after:
        site = call_site(elf, fd, host_path, purpose, kStopInSafepoint);
        break;
      case ProbePurpose::array_buffer_realloc:
      case ProbePurpose::external_memory_increase:
      case ProbePurpose::external_memory_decrease:
      case ProbePurpose::external_memory_update:
        site = entry_site(elf, fd, host_path, purpose, false, /*optional=*/true);
        break;
      default:
        site = entry_site(elf, fd, host_path, purpose, false);
        break;
    }
    // V8 internals missing because the tables were stripped is a different fix (another build) than a
    // renamed symbol (a new variant): say which.
    if (!site.found() && plan.stripped && !site.optional && site.skip_reason.starts_with("symbol not found"))
      site.skip_reason =
          "binary is stripped: no .symtab and V8 symbols absent from .dynsym (" + site.skip_reason + ")";
    // Node 18's official executable calls only a .constprop clone of PerformGarbageCollection, named in
    // .symtab alone; the exported original is never called there (0 hits against 81 GCs). Without .symtab
    // the exported one would attach and silently see no GC. A shared libnode cannot have the clone
    // (exported functions are interposable) and calls the original, so it keeps it.
    if ((purpose == ProbePurpose::gc_start || purpose == ProbePurpose::gc_end) && !elf.has_symtab() &&
        !plan.is_shared_library && site.found() && site.points.front().symbol == kPerformGc.back()) {
      site.points.clear();
      site.skip_reason = "executable without .symtab: V8 10.2 (Node 18) calls a .constprop clone of " +
                         kPerformGc.back() +
                         " that only .symtab names; the exported function is never called";
    }
    plan.probes.push_back(std::move(site));
  }
  return plan;
}

namespace {

// Planning reads and sorts a binary's whole symbol table (185,000 symbols in node 20: a third of a second
// of CPU), and every node process of a trace (cluster workers, child processes, each exec) runs one of a
// few binaries. Plans are kept by file identity; a copy is re-pointed at the host path of each process.
struct PlannedFile {
  ProbePlan plan;
  bool holds_v8 = false;
};

class PlanCache {
 public:
  using Key = std::tuple<dev_t, ino_t, off_t, long, long>;  // device, inode, size, mtime (s, ns)

  static std::optional<Key> key_of(int fd) {
    struct stat st {};
    if (fstat(fd, &st) != 0) return std::nullopt;
    return Key{st.st_dev, st.st_ino, st.st_size, st.st_mtim.tv_sec, st.st_mtim.tv_nsec};
  }

  std::optional<PlannedFile> find(const Key& key) {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = entries_.begin(); it != entries_.end(); ++it) {
      if (it->first != key) continue;
      entries_.splice(entries_.begin(), entries_, it);  // most recently used first
      return entries_.front().second;
    }
    return std::nullopt;
  }

  void add(const Key& key, PlannedFile planned) {
    std::lock_guard<std::mutex> lock(mu_);
    entries_.emplace_front(key, std::move(planned));
    if (entries_.size() > kMaxEntries) entries_.pop_back();
  }

 private:
  static constexpr size_t kMaxEntries = 8;
  std::mutex mu_;
  std::list<std::pair<Key, PlannedFile>> entries_;
};

PlanCache& plan_cache() {
  static PlanCache cache;
  return cache;
}

// The cached plan of the file open at fd (reached at host_path), planned now if it is not cached yet.
Result<PlannedFile> planned_file(int fd, const std::string& host_path) {
  auto key = PlanCache::key_of(fd);
  if (key) {
    if (auto hit = plan_cache().find(*key)) {
      // Re-point the copy at this host path (another process reaches the same file through its own root).
      std::string planned_at = hit->plan.host_path;
      hit->plan.host_path = host_path;
      for (auto& site : hit->plan.probes)
        for (auto& point : site.points)
          if (point.host_path == planned_at) point.host_path = host_path;
      return std::move(*hit);
    }
  }
  auto elf = elf::ElfFile::open(fd, host_path);
  if (!elf.ok()) return elf.error();
  auto plan = plan_for_elf(**elf, fd, host_path);
  if (!plan.ok()) return plan.error();
  PlannedFile planned{std::move(*plan), holds_v8(**elf)};
  if (key) plan_cache().add(*key, planned);
  return planned;
}

}  // namespace

Result<ProbePlan> plan_for_binary(const std::string& host_path) {
  auto file = open_regular_file(host_path);
  if (!file.ok()) return file.error();
  auto planned = planned_file(file->fd.get(), host_path);
  if (!planned.ok()) return planned.error();
  return std::move(planned->plan);
}

namespace {

// The libnode.so the executable (path_in_process, inside pid's root) needs, where the dynamic loader will
// find it: LD_LIBRARY_PATH, the executable's RUNPATH (or RPATH), then the default directories of a
// multiarch Debian system. Right after exec the loader has not mapped it yet; its probes can be attached
// already, by file, and are in place when it is mapped.
std::optional<std::string> needed_libnode(pid_t pid, const std::string& exe_in_process) {
  auto file = open_in_process_root(pid, exe_in_process, /*no_symlinks=*/false);
  if (!file.ok()) return std::nullopt;
  auto elf = elf::ElfFile::open(file->fd.get(), exe_in_process);
  if (!elf.ok()) return std::nullopt;
  auto dyn = (*elf)->dynamic_info();
  std::string name;
  for (const auto& n : dyn.needed)
    if (n.starts_with("libnode.so")) name = n;
  if (name.empty()) return std::nullopt;
  std::vector<std::string> dirs;
  auto add_list = [&](std::string_view list) {
    while (!list.empty()) {
      size_t colon = list.find(':');
      if (colon != 0) dirs.emplace_back(list.substr(0, colon));
      if (colon == std::string_view::npos) break;
      list.remove_prefix(colon + 1);
    }
  };
  if (auto env = read_text_file(fmt::format("/proc/{}/environ", pid), 1 << 20))
    add_list(proc::environ_value(*env, "LD_LIBRARY_PATH"));
  std::string origin = exe_in_process.substr(0, exe_in_process.rfind('/'));
  for (std::string d : dyn.search_path) {
    for (const char* token : {"$ORIGIN", "${ORIGIN}"})
      if (auto at = d.find(token); at != std::string::npos) d.replace(at, std::strlen(token), origin);
    dirs.push_back(d);
  }
  for (const char* d : {"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/usr/local/lib", "/lib64",
                        "/usr/lib64", "/lib", "/usr/lib"})
    dirs.emplace_back(d);
  for (const auto& d : dirs) {
    if (d.empty() || d.front() != '/') continue;  // a relative entry depends on the loader's cwd: skip it
    std::string path = d + "/" + name;
    if (open_in_process_root(pid, path, /*no_symlinks=*/false).ok()) return path;
  }
  return std::nullopt;
}

}  // namespace

Result<ProbePlan> plan_for_pid(pid_t pid) {
  auto maps = proc::read_maps(pid);
  if (!maps.ok()) return maps.error();
  auto exe = proc::read_exe(pid);

  // Candidates in order: the executable, then libnode.so objects. Each distinct file once.
  std::vector<const proc::MapEntry*> candidates;
  auto add = [&](const proc::MapEntry& m) {
    for (auto* c : candidates)
      if (c->path == m.path) return;
    candidates.push_back(&m);
  };
  for (const auto& m : *maps)
    if (m.is_file() && exe.ok() && m.path == *exe) add(m);
  for (const auto& m : *maps) {
    if (!m.is_file()) continue;
    std::string_view base = std::string_view(m.path).substr(m.path.rfind('/') + 1);
    if (base.starts_with("libnode.so")) add(m);
  }
  if (candidates.empty())
    return make_error(fmt::format("pid {}: no executable or libnode.so mapping found", pid));

  std::optional<ProbePlan> fallback;
  for (const auto* m : candidates) {
    if (m->deleted()) continue;  // replaced on disk since it was mapped: its symbols may not match
    auto file = open_in_process_root(pid, m->path, /*no_symlinks=*/false);
    if (!file.ok()) continue;
    std::string host_path = fmt::format("/proc/{}/root{}", pid, m->path);
    auto planned = planned_file(file->fd.get(), host_path);
    if (!planned.ok()) continue;
    if (!planned->holds_v8 && fallback) continue;
    planned->plan.path_in_process = m->path;
    if (planned->holds_v8) return std::move(planned->plan);
    // A stripped node executable holds V8 without showing it: keep it unless a libnode.so does.
    if (!fallback) fallback = std::move(planned->plan);
  }
  bool libnode_mapped = false;
  for (const auto* m : candidates)
    libnode_mapped |= std::string_view(m->path).substr(m->path.rfind('/') + 1).starts_with("libnode.so");
  if (!libnode_mapped && exe.ok()) {
    if (auto lib = needed_libnode(pid, *exe)) {
      std::string host_path = fmt::format("/proc/{}/root{}", pid, *lib);
      if (auto file = open_in_process_root(pid, *lib, /*no_symlinks=*/false); file.ok()) {
        auto planned = planned_file(file->fd.get(), host_path);
        if (planned.ok() && planned->holds_v8) {
          planned->plan.path_in_process = *lib;
          planned->plan.found_before_mapping = true;
          return std::move(planned->plan);
        }
      }
    }
  }
  if (fallback) return std::move(*fallback);
  return make_error(fmt::format("pid {}: could not open the executable or a libnode.so of the process", pid));
}

}  // namespace memlens::node
