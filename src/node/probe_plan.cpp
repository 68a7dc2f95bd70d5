#include "node/probe_plan.h"

#include <fmt/format.h>

#include <algorithm>

#include "elf/elf_file.h"
#include "elf/plt.h"
#include "elf/x86_decode.h"

namespace memlens::node {
namespace {

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

Result<std::vector<uint8_t>> read_code(const elf::ElfFile& elf, uint64_t vaddr, uint64_t size) {
  auto off = elf.vaddr_to_file_offset(vaddr);
  if (!off) return make_error(fmt::format("address {:#x} is not in a loaded segment", vaddr));
  return elf.read_at(*off, std::min<uint64_t>(size, kMaxScanBytes));
}

SymbolTable table_of(const elf::Symbol& s) {
  return s.from_dynsym ? SymbolTable::dynsym : SymbolTable::symtab;
}

// An attach point at a function's entry. The kernel refuses to place a uprobe on a lock-prefixed
// instruction (NodeArrayBufferAllocator::Free starts with `lock sub`): the breakpoint then goes on the next
// instruction, which sees the same argument registers because the locked instruction writes only memory.
Result<AttachPoint> entry_point(const elf::ElfFile& elf, const std::string& host_path, const elf::Symbol& sym,
                                bool retprobe) {
  auto off = elf.vaddr_to_file_offset(sym.address);
  if (!off)
    return make_error(fmt::format("{} at {:#x} is outside the loaded segments", sym.name, sym.address));
  AttachPoint p{host_path, *off, sym.name, 0, table_of(sym), retprobe, ""};
  auto code = read_code(elf, sym.address, 16);
  if (!code.ok()) return code.error();
  const uint8_t* bytes = code->data();
  if (!code->empty() && bytes[0] == 0xF0) {
    if (retprobe)
      return make_error(fmt::format("{} starts with a lock-prefixed instruction: no return probe", sym.name));
    size_t len = elf::lock_instruction_length(bytes, code->size());
    if (len == 0)
      return make_error(
          fmt::format("{} starts with a lock-prefixed instruction this decoder does not know", sym.name));
    p.file_offset += len;
    p.offset_in_symbol = len;
    p.why_inside = "first instruction is lock-prefixed (uprobes refuse it); argument registers unchanged";
  }
  return p;
}

ProbeSite entry_site(const elf::ElfFile& elf, const std::string& host_path, ProbePurpose purpose,
                     bool retprobe, bool optional = false) {
  ProbeSite site{purpose, {}, "", optional};
  const auto& variants = symbol_variants(purpose);
  auto syms = resolve(elf, variants);
  if (syms.empty()) {
    site.skip_reason = "symbol not found: tried " + join(variants);
    return site;
  }
  for (const auto& s : syms) {
    auto p = entry_point(elf, host_path, s, retprobe);
    if (p.ok())
      site.points.push_back(std::move(*p));
    else
      site.skip_reason = p.error().message;
  }
  if (!site.points.empty()) site.skip_reason.clear();
  return site;
}

// Offsets in code (a function at vaddr code_vaddr) of its `call rel32`s to any of callees: direct, or
// through a PLT stub that jumps through the GOT slot of a callee's name (a shared library's calls).
std::vector<uint64_t> calls_to(const elf::ElfFile& elf, const uint8_t* code, size_t n, uint64_t code_vaddr,
                               const std::vector<elf::Symbol>& callees) {
  std::vector<uint64_t> out;
  std::vector<uint64_t> slots;
  for (const auto& c : callees)
    if (auto slot = elf::plt_got_slot(elf, c.name)) slots.push_back(*slot);
  for (size_t i = 0; i + 5 <= n; ++i) {
    auto target = elf::call_rel32_target(code, n, i, code_vaddr);
    if (!target) continue;
    bool direct =
        std::any_of(callees.begin(), callees.end(), [&](const auto& c) { return c.address == *target; });
    bool through_plt = !direct && !slots.empty() && elf::in_plt(elf, *target) &&
                       std::any_of(slots.begin(), slots.end(), [&](uint64_t slot) {
                         return elf::plt_stub_uses_slot(elf, *target, slot);
                       });
    if (direct || through_plt) out.push_back(i);
  }
  return out;
}

// heap_used_before/after: the instruction after GCTracer::Start/StopInSafepoint's call to
// Heap::SizeOfObjects, where rax holds the figure --trace-gc prints, or better the next call, where the
// GCTracer's event holds it (below). Heap::SizeOfObjects itself is also called outside GCs (heap
// statistics), so its return probe alone would need per-thread state.
ProbeSite call_site(const elf::ElfFile& elf, const std::string& host_path, ProbePurpose purpose) {
  const auto& caller_variants = size_of_objects_callers(purpose);
  ProbeSite site{purpose, {}, "", false};
  auto callers = resolve(elf, caller_variants);
  auto callee = elf.find_symbol(size_of_objects_symbol());
  if (callers.empty() || !callee) {
    std::vector<std::string> tried = caller_variants;
    tried.push_back(size_of_objects_symbol());
    site.skip_reason = "symbol not found: tried " + join(tried);
    return site;
  }
  std::vector<AttachPoint> slot_points;
  for (const auto& caller : callers) {
    if (caller.size == 0) continue;
    auto code = read_code(elf, caller.address, caller.size);
    if (!code.ok()) {
      site.skip_reason = code.error().message;
      continue;
    }
    const uint8_t* bytes = code->data();
    std::vector<uint64_t> after = calls_to(elf, bytes, code->size(), caller.address, {*callee});
    for (auto& at : after) at += 5;
    if (after.empty()) continue;
    // One call per function in every verified build; the first is the one that fills the GC event.
    uint64_t at = after.front();
    auto off = elf.vaddr_to_file_offset(caller.address + at);
    if (!off) continue;
    site.points.push_back(AttachPoint{host_path, *off, caller.name, at, table_of(caller), false,
                                      "instruction after the call to v8::internal::Heap::SizeOfObjects(): "
                                      "rax holds its result"});
    // That instruction is stepped out of line by the kernel (a second trap: ~10 us a hit on a virtual
    // machine). V8 stores the result in the GCTracer's event and calls on, and a call is emulated (~0.8
    // us): where the code in between is known not to touch the slot, read it at the call.
    auto stored = elf::rax_stored_until_next_call(bytes, code->size(), at);
    auto call_off = stored ? elf.vaddr_to_file_offset(caller.address + stored->call_offset) : std::nullopt;
    if (call_off) {
      AttachPoint slot = site.points.back();
      slot.file_offset = *call_off;
      slot.offset_in_symbol = stored->call_offset;
      slot.value_base = stored->base;
      slot.value_disp = stored->disp;
      slot.why_inside = fmt::format(
          "the call after GCTracer stores v8::internal::Heap::SizeOfObjects()'s result at {:#x}(%{}), "
          "which holds it there (a call is emulated: one trap)",
          stored->disp, elf::x86_register_name(stored->base));
      slot_points.push_back(std::move(slot));
    }
  }
  // Every point of a purpose reads the figure the same way (one program, one slot per process).
  bool same_slots = !slot_points.empty() && slot_points.size() == site.points.size();
  for (const auto& p : slot_points)
    same_slots = same_slots && p.value_base == slot_points.front().value_base &&
                 p.value_disp == slot_points.front().value_disp;
  if (same_slots) site.points = std::move(slot_points);
  if (site.points.empty() && site.skip_reason.empty())
    site.skip_reason = fmt::format("no call to {} found in {} (inlined in this build)",
                                   size_of_objects_symbol(), callers.front().name);
  if (!site.points.empty()) site.skip_reason.clear();
  return site;
}

// Where each GC's heap figures can be read at its end (ProbePlan::heap_figures_in_tracer), or why not.
// Each fact the reading relies on is checked in this build's code: GCTracer::Start/StopInSafepoint store
// the figures at their slot through `this` and find their heap in their first word; every
// PerformGarbageCollection passes both of them the same field of its own `this`, the Heap.
Result<HeapFiguresInTracer> figures_in_tracer(const elf::ElfFile& elf, const ProbePlan& plan) {
  const ProbePurpose figures[] = {ProbePurpose::heap_used_before, ProbePurpose::heap_used_after};
  int32_t disp[2] = {0, 0};
  std::vector<elf::Symbol> tracer_calls[2];
  for (int i = 0; i < 2; ++i) {
    const ProbeSite* site = plan.find(figures[i]);
    if (!site || !site->found() || !site->points.front().value_base)
      return make_error(fmt::format("{} is not read from a slot of GCTracer's event", to_string(figures[i])));
    const uint8_t base = *site->points.front().value_base;
    disp[i] = site->points.front().value_disp;
    tracer_calls[i] = resolve(elf, size_of_objects_callers(figures[i]));
    for (const auto& fn : tracer_calls[i]) {
      auto code = read_code(elf, fn.address, fn.size);
      if (!code.ok()) return code.error();
      auto facts = elf::prologue_facts(code->data(), code->size());
      if (facts.this_register != base)
        return make_error(
            fmt::format("{} stores the figure through %{}, which its prologue does not show to be "
                        "`this`",
                        fn.name, elf::x86_register_name(base)));
      if (!facts.reads_first_word_of_this)
        return make_error(fmt::format("{} does not read its heap from its first word", fn.name));
    }
  }
  const ProbeSite* gc = plan.find(ProbePurpose::gc_start);
  if (!gc || !gc->found()) return make_error("no PerformGarbageCollection to read them at");
  // The tracer swaps its event with the previous one where a cycle ends (a young GC that interrupted a
  // full one gives the full cycle's event back): in every build checked its callers do, after it returns.
  // A PerformGarbageCollection that ended a cycle itself could return with another event in place.
  std::vector<elf::Symbol> cycle_ends;
  for (auto& s : elf.find_symbols_with_prefix("_ZN2v88internal8GCTracer"))
    if (s.is_function && s.address != 0 && s.name.find("Stop") != std::string::npos &&
        s.name.find("Cycle") != std::string::npos)
      cycle_ends.push_back(std::move(s));
  std::optional<int32_t> tracer_offset;
  for (const auto& point : gc->points) {
    auto fn = elf.find_symbol(point.symbol);
    if (!fn || fn->size == 0) return make_error(point.symbol + ": no size in the symbol table");
    auto code = read_code(elf, fn->address, fn->size);
    if (!code.ok()) return code.error();
    auto facts = elf::prologue_facts(code->data(), code->size());
    if (!facts.this_register)
      return make_error(fn->name + ": its prologue keeps `this` in no callee-saved register");
    if (!cycle_ends.empty() && !calls_to(elf, code->data(), code->size(), fn->address, cycle_ends).empty())
      return make_error(fn->name +
                        " ends a GC cycle itself: its tracer's event may be another GC's at its return");
    for (int i = 0; i < 2; ++i) {
      auto calls = calls_to(elf, code->data(), code->size(), fn->address, tracer_calls[i]);
      if (calls.empty())
        return make_error(fmt::format("{} calls no {}", fn->name, tracer_calls[i].front().name));
      for (uint64_t at : calls) {
        auto arg = elf::rdi_loaded_for_call(code->data(), code->size(), at);
        if (!arg || arg->base != *facts.this_register || arg->disp <= 0)
          return make_error(fmt::format("{}+{:#x}: the tracer it calls {} on is not a field of its `this`",
                                        fn->name, at, tracer_calls[i].front().name));
        if (tracer_offset && *tracer_offset != arg->disp)
          return make_error(fmt::format("{} finds the tracer at two offsets ({:#x}, {:#x})", fn->name,
                                        *tracer_offset, arg->disp));
        tracer_offset = arg->disp;
      }
    }
  }
  return HeapFiguresInTracer{static_cast<uint32_t>(*tracer_offset), disp[0], disp[1]};
}

}  // namespace

bool holds_v8(const elf::ElfFile& elf) {
  for (const auto& prefix : v8_symbol_prefixes())
    if (!elf.find_symbols_with_prefix(prefix).empty()) return true;
  for (const auto& p : elf::read_usdt_probes(elf))
    if (p.provider == "node") return true;
  return false;
}

const ProbeSite* ProbePlan::find(ProbePurpose purpose) const {
  for (const auto& p : probes)
    if (p.purpose == purpose) return &p;
  return nullptr;
}

const elf::UsdtProbe* ProbePlan::find_usdt(std::string_view provider, std::string_view name) const {
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
  std::string out = fmt::format("V8 holder: {}{} (.symtab: {}, .dynsym: {}{})\n", host_path,
                                is_shared_library ? " [shared library]" : "", has_symtab ? "yes" : "no",
                                has_dynsym ? "yes" : "no", stripped ? ", stripped" : "");
  for (const auto& p : probes) {
    if (!p.found()) {
      out += fmt::format("  {}: not found{}: {}\n", to_string(p.purpose), p.optional ? " (optional)" : "",
                         p.skip_reason);
      continue;
    }
    for (const auto& a : p.points)
      out += fmt::format("  {}: found {} {}+{:#x} at file offset {:#x} ({}{})\n", to_string(p.purpose),
                         a.table == SymbolTable::dynsym ? ".dynsym" : ".symtab", a.symbol, a.offset_in_symbol,
                         a.file_offset, a.retprobe ? "return" : (a.offset_in_symbol ? "inside" : "entry"),
                         a.value_base ? fmt::format(", reads {:#x}(%{})", a.value_disp,
                                                    elf::x86_register_name(*a.value_base))
                                      : "");
  }
  if (heap_figures_in_tracer)
    out += fmt::format(
        "  heap figures: read at each GC's end, GCTracer at Heap + {:#x}, used before the GC at its {:#x}, "
        "after at {:#x} (the heap_used probes are not attached)\n",
        heap_figures_in_tracer->tracer_offset, heap_figures_in_tracer->before_disp,
        heap_figures_in_tracer->after_disp);
  else
    out +=
        fmt::format("  heap figures: read by the heap_used probes: {}\n", heap_figures_in_tracer_skip_reason);
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

Result<ProbePlan> plan_for_elf(const elf::ElfFile& elf, const std::string& host_path) {
  // Every name the plan looks up, in one pass over the symbol tables (ElfFile::prefetch).
  elf.prefetch(catalogue_symbol_names(), v8_symbol_prefixes());
  ProbePlan plan;
  plan.host_path = host_path;
  plan.is_shared_library = elf.elf_type() == 3 /* ET_DYN */ && host_path.find(".so") != std::string::npos;
  plan.has_symtab = elf.has_symtab();
  plan.has_dynsym = elf.has_dynsym();
  plan.build_id = elf.build_id();
  plan.stripped = !elf.has_symtab() && elf.find_symbols_with_prefix("_ZN2v88internal4Heap").empty();
  plan.usdt = elf::read_usdt_probes(elf);

  // The allocator's byte counter, from Free's first instruction (docs/v8-probes.md).
  const auto& free_variants = symbol_variants(ProbePurpose::array_buffer_free);
  if (auto frees = resolve(elf, free_variants); frees.empty()) {
    plan.ab_counter_skip_reason = "symbol not found: " + free_variants.front();
  } else if (auto code = read_code(elf, frees.front().address, 16); !code.ok()) {
    plan.ab_counter_skip_reason = code.error().message;
  } else {
    const uint8_t* b = code->data();
    plan.ab_counter_offset = elf::decode_lock_sub_rdx_from_rdi(b, code->size());
    if (!plan.ab_counter_offset) {
      std::string bytes;
      for (size_t i = 0; i < std::min<size_t>(code->size(), 8); ++i) bytes += fmt::format("{:02x} ", b[i]);
      plan.ab_counter_skip_reason = fmt::format(
          "{} does not start with `lock sub %rdx, DISP(%rdi)` (bytes: {}): the allocator's counter "
          "offset is unknown in this build",
          frees.front().name, bytes);
    }
  }

  // Itanium ABI: the vtable pointer an object holds is past the offset-to-top and typeinfo words.
  if (auto vt = elf.find_symbol(array_buffer_allocator_vtable_symbol()))
    plan.ab_allocator_vptr_file_offset = elf.vaddr_to_file_offset(vt->address + 16);

  for (ProbePurpose purpose : kAllProbePurposes) {
    ProbeSite site;
    switch (purpose) {
      case ProbePurpose::gc_start:
        site = entry_site(elf, host_path, purpose, false);
        break;
      case ProbePurpose::gc_end:
        site = entry_site(elf, host_path, purpose, true);
        break;
      case ProbePurpose::heap_used_before:
        site = call_site(elf, host_path, purpose);
        break;
      case ProbePurpose::heap_used_after:
        site = call_site(elf, host_path, purpose);
        break;
      case ProbePurpose::array_buffer_realloc:
      case ProbePurpose::external_memory_increase:
      case ProbePurpose::external_memory_decrease:
      case ProbePurpose::external_memory_update:
        site = entry_site(elf, host_path, purpose, false, /*optional=*/true);
        break;
      case ProbePurpose::heap_committed:
        site = entry_site(elf, host_path, purpose, true, /*optional=*/true);
        break;
      default:
        site = entry_site(elf, host_path, purpose, false);
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
        !plan.is_shared_library && site.found() &&
        site.points.front().symbol == symbol_variants(purpose).back()) {
      site.points.clear();
      site.skip_reason = "executable without .symtab: V8 10.2 (Node 18) calls a .constprop clone of " +
                         symbol_variants(purpose).back() +
                         " that only .symtab names; the exported function is never called";
    }
    plan.probes.push_back(std::move(site));
  }
  if (auto f = figures_in_tracer(elf, plan); f.ok())
    plan.heap_figures_in_tracer = *f;
  else
    plan.heap_figures_in_tracer_skip_reason = f.error().message;
  return plan;
}

}  // namespace memlens::node
