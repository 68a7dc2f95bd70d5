#include "elf/cfi_table.h"

#include <dwarf.h>
#include <elfutils/libdw.h>
#include <fmt/format.h>
#include <gelf.h>
#include <libelf.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>

#include "elf/elf_file.h"

namespace memlens::elf {

namespace {

// x86-64 DWARF register numbers.
constexpr int kRegRbp = 6;
constexpr int kRegRsp = 7;
constexpr int kRegRip = 16;  // the return address column
// More functions than any real file has (node: ~76k): a bound on what a corrupt header makes us read.
constexpr uint64_t kMaxFunctions = 8u << 20;
constexpr uint64_t kMaxRows = 32u << 20;
constexpr uint64_t kMaxHeaderBytes = 12 + kMaxFunctions * 8;

struct ElfCloser {
  void operator()(Elf* e) const { elf_end(e); }
};
struct CfiCloser {
  void operator()(Dwarf_CFI* c) const { dwarf_cfi_end(c); }
};
struct FrameFree {
  void operator()(Dwarf_Frame* f) const { std::free(f); }
};

// The functions' start addresses, sorted, from .eh_frame_hdr's binary-search table (as the loader and
// libgcc's unwinder use it). Only the encoding every x86-64 toolchain writes is read.
Result<std::vector<uint64_t>> function_starts(int fd, const std::string& name) {
  // The section table through ElfFile (bounded, names read by it): libelf's own section-name lookup lost
  // memory on corrupt files whose names share a section with other data.
  auto file = ElfFile::open(fd, name);
  if (!file) return file.error();
  for (const auto& sh : (*file)->sections()) {
    if (sh.name != ".eh_frame_hdr") continue;
    if (sh.type == SHT_NOBITS || sh.size < 12 || sh.size > kMaxHeaderBytes)
      return make_error(name + ": .eh_frame_hdr is truncated or implausibly large", EINVAL);
    std::vector<uint8_t> bytes(sh.size);
    if (pread(fd, bytes.data(), bytes.size(), static_cast<off_t>(sh.file_offset)) !=
        static_cast<ssize_t>(bytes.size()))
      return make_error(name + ": .eh_frame_hdr is unreadable", EINVAL);
    const uint8_t* b = bytes.data();
    // version 1; eh_frame_ptr pcrel|sdata4; fde_count udata4; table datarel|sdata4.
    if (b[0] != 1 || b[1] != 0x1b || b[2] != 0x03 || b[3] != 0x3b)
      return make_error(fmt::format("{}: .eh_frame_hdr has an encoding memlens does not read "
                                    "(version {}, encodings {:#x} {:#x} {:#x})",
                                    name, b[0], b[1], b[2], b[3]),
                        EINVAL);
    uint32_t count;
    std::memcpy(&count, b + 8, 4);
    if (count > kMaxFunctions || 12 + uint64_t{count} * 8 > bytes.size())
      return make_error(fmt::format("{}: .eh_frame_hdr claims {} functions, more than it holds", name, count),
                        EINVAL);
    std::vector<uint64_t> starts;
    starts.reserve(count);
    for (uint32_t i = 0; i < count; ++i) {
      int32_t rel;
      std::memcpy(&rel, b + 12 + uint64_t{i} * 8, 4);
      starts.push_back(sh.address + static_cast<int64_t>(rel));
    }
    return starts;
  }
  return make_error(name + ": no .eh_frame_hdr (no unwind table to read)", ENOENT);
}

bool is_cfa_plus(const Dwarf_Op* ops, size_t nops, int64_t* offset) {
  // offset(N) of a register rule: the address CFA + N (a value rule would end with DW_OP_stack_value).
  if (nops < 1 || nops > 2 || ops[0].atom != DW_OP_call_frame_cfa) return false;
  *offset = 0;
  if (nops == 2) {
    if (ops[1].atom != DW_OP_plus_uconst) return false;
    *offset = static_cast<int64_t>(ops[1].number);
  }
  return true;
}

// The CFA rule of a row into r; false when its shape is not one the walker knows.
bool cfa_rule(Dwarf_Frame* frame, ml_unwind_row* r) {
  Dwarf_Op* ops = nullptr;
  size_t nops = 0;
  if (dwarf_frame_cfa(frame, &ops, &nops) != 0 || !ops) return false;
  if (nops == 1 && ops[0].atom == DW_OP_bregx) {
    auto off = static_cast<int64_t>(ops[0].number2);
    if (off < std::numeric_limits<int32_t>::min() || off > std::numeric_limits<int32_t>::max()) return false;
    if (ops[0].number != kRegRsp && ops[0].number != kRegRbp) return false;
    r->cfa_kind = ops[0].number == kRegRsp ? ML_CFA_RSP : ML_CFA_RBP;
    r->cfa_offset = static_cast<int32_t>(off);
    return true;
  }
  // The PLT's: rsp + 8 + ((rip & 15) >= 11 ? 8 : 0) (the stub's push moves rsp at a fixed place).
  if (nops == 9 && ops[0].atom == DW_OP_breg7 && ops[1].atom == DW_OP_breg16 && ops[1].number == 0 &&
      ops[2].atom == DW_OP_lit15 && ops[3].atom == DW_OP_and && ops[4].atom >= DW_OP_lit0 &&
      ops[4].atom <= DW_OP_lit31 && ops[5].atom == DW_OP_ge && ops[6].atom == DW_OP_lit3 &&
      ops[7].atom == DW_OP_shl && ops[8].atom == DW_OP_plus) {
    r->cfa_kind = ML_CFA_PLT;
    r->cfa_offset = static_cast<int32_t>(static_cast<int64_t>(ops[0].number));
    r->rbp_offset = static_cast<int16_t>(ops[4].atom - DW_OP_lit0);
    return true;
  }
  return false;
}

// The row of the CFI state `frame`.
ml_unwind_row compile_row(Dwarf_Frame* frame, uint32_t pc) {
  ml_unwind_row r{};
  r.pc = pc;
  Dwarf_Addr start = 0, end = 0;
  bool signal = false;
  if (dwarf_frame_info(frame, &start, &end, &signal) != kRegRip || signal) {
    r.cfa_kind = ML_CFA_UNSUPPORTED;
    return r;
  }
  Dwarf_Op mem[3];
  Dwarf_Op* ops = nullptr;
  size_t nops = 0;
  if (dwarf_frame_register(frame, kRegRip, mem, &ops, &nops) != 0) {
    r.cfa_kind = ML_CFA_UNSUPPORTED;
    return r;
  }
  int64_t off = 0;
  if (nops == 0) {  // undefined (or "same value", which no real return address has): the outermost frame
    r.cfa_kind = ML_CFA_END;
    return r;
  }
  if (!is_cfa_plus(ops, nops, &off) || off != -8 || !cfa_rule(frame, &r)) {
    r = ml_unwind_row{};
    r.pc = pc;
    r.cfa_kind = ML_CFA_UNSUPPORTED;
    return r;
  }
  if (dwarf_frame_register(frame, kRegRbp, mem, &ops, &nops) != 0) {
    r.rbp_kind = ML_RBP_UNDEFINED;
  } else if (nops == 0) {
    r.rbp_kind = ops == nullptr ? ML_RBP_SAME : ML_RBP_UNDEFINED;
  } else if (is_cfa_plus(ops, nops, &off) && off >= std::numeric_limits<int16_t>::min() &&
             off <= std::numeric_limits<int16_t>::max()) {
    r.rbp_kind = ML_RBP_AT_CFA;
    if (r.cfa_kind != ML_CFA_PLT) r.rbp_offset = static_cast<int16_t>(off);
  } else {
    r.rbp_kind = ML_RBP_UNDEFINED;
  }
  return r;
}

bool same_rule(const ml_unwind_row& a, const ml_unwind_row& b) {
  return a.cfa_kind == b.cfa_kind && a.rbp_kind == b.rbp_kind && a.rbp_offset == b.rbp_offset &&
         a.cfa_offset == b.cfa_offset;
}

}  // namespace

Result<CfiTable> compile_cfi(int fd, const std::string& name) {
  elf_version(EV_CURRENT);
  std::unique_ptr<Elf, ElfCloser> elf(elf_begin(fd, ELF_C_READ, nullptr));
  if (!elf || elf_kind(elf.get()) != ELF_K_ELF)
    return make_error(name + ": not an ELF file: " + elf_errmsg(-1), EINVAL);
  GElf_Ehdr eh;
  if (!gelf_getehdr(elf.get(), &eh) || eh.e_machine != EM_X86_64)
    return make_error(name + ": not an x86-64 ELF file", EINVAL);
  auto starts = function_starts(fd, name);
  if (!starts) return starts.error();
  std::unique_ptr<Dwarf_CFI, CfiCloser> cfi(dwarf_getcfi_elf(elf.get()));
  if (!cfi) return make_error(name + ": .eh_frame is unreadable: " + dwarf_errmsg(-1), EINVAL);

  CfiTable t;
  auto push = [&](const ml_unwind_row& r) {
    if (!t.rows.empty() && t.rows.back().pc == r.pc) t.rows.pop_back();  // an empty range: the new row wins
    if (!t.rows.empty() && same_rule(t.rows.back(), r)) return;
    t.rows.push_back(r);
  };
  uint64_t covered_to = 0;  // pcs below this are in rows already
  uint64_t prev_start = 0;
  for (uint64_t start : *starts) {
    if (start < prev_start)
      return make_error(name + ": .eh_frame_hdr's table is not sorted (corrupt)", EINVAL);
    prev_start = start;
    ++t.functions;
    if (start < covered_to) continue;
    uint64_t pc = start;
    // The rows of this function and of those that follow it without a gap.
    while (true) {
      if (pc > std::numeric_limits<uint32_t>::max())
        return make_error(name + ": code above 4 GiB of its own addresses (not supported)", EINVAL);
      if (t.rows.size() > kMaxRows) return make_error(name + ": more unwind rows than memlens keeps", E2BIG);
      Dwarf_Frame* raw = nullptr;
      if (dwarf_cfi_addrframe(cfi.get(), pc, &raw) != 0) {
        if (pc == start)
          return make_error(
              fmt::format("{}: the unwind table names a function at {:#x} that .eh_frame does not describe "
                          "(corrupt): {}",
                          name, pc, dwarf_errmsg(-1)),
              EINVAL);
        push(ml_unwind_row{static_cast<uint32_t>(pc), ML_CFA_NONE, 0, 0, 0});
        break;
      }
      std::unique_ptr<Dwarf_Frame, FrameFree> frame(raw);
      Dwarf_Addr row_start = 0, row_end = 0;
      bool signal = false;
      dwarf_frame_info(frame.get(), &row_start, &row_end, &signal);
      if (row_end <= pc)
        return make_error(fmt::format("{}: an empty CFI row at {:#x} (corrupt)", name, pc), EINVAL);
      ml_unwind_row r = compile_row(frame.get(), static_cast<uint32_t>(pc));
      if (r.cfa_kind == ML_CFA_UNSUPPORTED) ++t.unsupported_rows;
      push(r);
      pc = row_end;
    }
    covered_to = pc;
  }
  return t;
}

}  // namespace memlens::elf
