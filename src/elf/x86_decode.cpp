#include "elf/x86_decode.h"

#include <cstring>

namespace memlens::elf {

size_t modrm_operand_length(const uint8_t* p, size_t n) {
  if (n == 0) return 0;
  uint8_t modrm = p[0];
  uint8_t mod = modrm >> 6, rm = modrm & 7;
  size_t len = 1;
  if (mod != 3 && rm == 4) {  // SIB byte
    if (n < 2) return 0;
    ++len;
    if (mod == 0 && (p[1] & 7) == 5) len += 4;  // no base: disp32
  } else if (mod == 0 && rm == 5) {
    len += 4;  // disp32(%rip)
  }
  if (mod == 1) len += 1;
  if (mod == 2) len += 4;
  return len;
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
  if ((p[i] >> 6) == 3) return 0;  // a register operand cannot be locked
  size_t operand = modrm_operand_length(p + i, n - i);
  if (operand == 0) return 0;
  i += operand + imm;
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

namespace {

constexpr uint8_t kRax = 0, kRsp = 4, kRbp = 5;

// One instruction of the forms rax_stored_until_next_call knows.
struct MovForm {
  size_t length = 0;
  bool is_call = false;
  std::optional<uint8_t> writes_reg;  // a register it writes
  bool stores = false;                // it writes memory at [mem_base + mem_disp], store_bytes long
  uint8_t mem_base = 0, store_bytes = 0;
  int32_t mem_disp = 0;
  std::optional<uint8_t> stored_reg;  // the register a store writes to memory
  std::optional<uint8_t> copied_reg;  // the source of a 64-bit mov between registers
  bool loads = false;                 // a 64-bit mov from memory at [mem_base + mem_disp]
};

// ModRM memory operand [base + disp] (no index, not rip-relative); nullopt for any other.
struct MemOperand {
  uint8_t base;
  int32_t disp;
  size_t length;  // ModRM, SIB and displacement bytes
};
std::optional<MemOperand> base_disp_operand(const uint8_t* p, size_t n, bool rex_b) {
  if (n == 0) return std::nullopt;
  uint8_t mod = p[0] >> 6, rm = p[0] & 7;
  if (mod == 3) return std::nullopt;
  size_t len = 1;
  uint8_t base = rm;
  if (rm == 4) {  // SIB: only "no index" with a base register (how %rsp and %r12 are addressed)
    if (n < 2) return std::nullopt;
    uint8_t sib = p[1], index = (sib >> 3) & 7;
    base = sib & 7;
    if (index != 4 || (mod == 0 && base == 5)) return std::nullopt;
    ++len;
  } else if (mod == 0 && rm == 5) {
    return std::nullopt;  // rip-relative
  }
  int32_t disp = 0;
  if (mod == 1) {
    if (len + 1 > n) return std::nullopt;
    disp = static_cast<int8_t>(p[len]);
    len += 1;
  } else if (mod == 2) {
    if (len + 4 > n) return std::nullopt;
    std::memcpy(&disp, p + len, sizeof disp);
    len += 4;
  }
  return MemOperand{static_cast<uint8_t>(base | (rex_b ? 8 : 0)), disp, len};
}

std::optional<MovForm> decode_mov_form(const uint8_t* p, size_t n) {
  if (n == 0) return std::nullopt;
  MovForm f;
  if (p[0] == 0xE8) {
    if (n < 5) return std::nullopt;
    f.length = 5;
    f.is_call = true;
    return f;
  }
  size_t i = 0;
  uint8_t rex = 0;
  if ((p[0] & 0xF0) == 0x40) rex = p[i++];
  if (i + 2 > n) return std::nullopt;
  bool w = rex & 8, r = rex & 4, x = rex & 2, b = rex & 1;
  if (x) return std::nullopt;  // an index register: not a form known here
  uint8_t op = p[i++];
  uint8_t modrm = p[i];
  uint8_t reg = static_cast<uint8_t>(((modrm >> 3) & 7) | (r ? 8 : 0));
  bool reg_operand = (modrm >> 6) == 3;
  switch (op) {
    case 0x89:  // mov r/m, reg
    case 0x8B:  // mov reg, r/m
    case 0x8D:  // lea reg, m
    {
      if (op != 0x8D && !w) return std::nullopt;  // 32-bit moves: not seen, not handled
      if (reg_operand) {
        if (op == 0x8D) return std::nullopt;
        uint8_t rm = static_cast<uint8_t>((modrm & 7) | (b ? 8 : 0));
        f.length = i + 1;
        f.writes_reg = op == 0x89 ? rm : reg;
        f.copied_reg = op == 0x89 ? reg : rm;
        return f;
      }
      auto m = base_disp_operand(p + i, n - i, b);
      if (!m) return std::nullopt;
      f.length = i + m->length;
      if (op == 0x89) {
        f.stores = true;
        f.mem_base = m->base;
        f.mem_disp = m->disp;
        f.store_bytes = 8;
        f.stored_reg = reg;
      } else {
        f.writes_reg = reg;
        f.loads = op == 0x8B;
        f.mem_base = m->base;
        f.mem_disp = m->disp;
      }
      return f;
    }
    case 0xC7: {  // mov r/m, imm32 (movl, or movq sign-extended with REX.W)
      if (reg_operand || ((modrm >> 3) & 7) != 0) return std::nullopt;
      auto m = base_disp_operand(p + i, n - i, b);
      if (!m || i + m->length + 4 > n) return std::nullopt;
      f.length = i + m->length + 4;
      f.stores = true;
      f.mem_base = m->base;
      f.mem_disp = m->disp;
      f.store_bytes = w ? 8 : 4;
      return f;
    }
    default:
      return std::nullopt;
  }
}

}  // namespace

// Whether the function keeps %rbp as its frame pointer: `push %rbp; mov %rsp,%rbp` first (after endbr64).
bool frame_pointer_prologue(const uint8_t* code, size_t n) {
  static const uint8_t kEndbr64[] = {0xF3, 0x0F, 0x1E, 0xFA}, kPrologue[] = {0x55, 0x48, 0x89, 0xE5};
  size_t i = n >= 4 && std::memcmp(code, kEndbr64, 4) == 0 ? 4 : 0;
  return n >= i + 4 && std::memcmp(code + i, kPrologue, 4) == 0;
}

std::optional<StoredResult> rax_stored_until_next_call(const uint8_t* code, size_t n, size_t at) {
  constexpr int kMaxInstructions = 16;
  const bool rbp_is_frame = frame_pointer_prologue(code, n);
  std::optional<StoredResult> slot;
  bool rax_live = true;  // %rax still holds the value (before it is stored)
  size_t i = at;
  for (int k = 0; k < kMaxInstructions && i < n; ++k) {
    auto f = decode_mov_form(code + i, n - i);
    if (!f) return std::nullopt;
    if (f->is_call) {
      if (!slot) return std::nullopt;
      slot->call_offset = i;
      return slot;
    }
    if (f->stores) {
      if (!slot && rax_live && f->stored_reg == kRax && f->store_bytes == 8 && f->mem_base != kRsp) {
        slot = StoredResult{0, f->mem_base, f->mem_disp};
      } else if (slot) {
        auto in_frame = [&](uint8_t reg) { return reg == kRsp || (reg == kRbp && rbp_is_frame); };
        bool frame_store = in_frame(f->mem_base);
        bool slot_in_frame = in_frame(slot->base);
        if (f->mem_base == slot->base) {
          int64_t lo = f->mem_disp, hi = lo + f->store_bytes;
          if (lo < static_cast<int64_t>(slot->disp) + 8 && hi > slot->disp) return std::nullopt;
        } else if (!frame_store || slot_in_frame) {
          return std::nullopt;  // through another pointer: it might alias the slot
        }
      }
    }
    if (f->writes_reg) {
      if (slot && *f->writes_reg == slot->base) return std::nullopt;
      if (*f->writes_reg == kRax && !slot) rax_live = false;
    }
    if (!slot && !rax_live) return std::nullopt;
    i += f->length;
  }
  return std::nullopt;
}

namespace {

constexpr uint8_t kRdi = 7;

bool callee_saved(uint8_t reg) {
  return reg == 3 || reg == kRbp || reg >= 12;
}

// Length of a prologue instruction that touches neither %rdi nor a callee-saved register other than by
// saving it: endbr64, push, and sub/add of an immediate to %rsp. 0 for anything else.
size_t stack_setup_length(const uint8_t* p, size_t n) {
  static const uint8_t kEndbr64[] = {0xF3, 0x0F, 0x1E, 0xFA};
  if (n >= 4 && std::memcmp(p, kEndbr64, 4) == 0) return 4;
  if (n >= 1 && p[0] >= 0x50 && p[0] <= 0x57) return 1;
  if (n >= 2 && p[0] == 0x41 && p[1] >= 0x50 && p[1] <= 0x57) return 2;
  bool alu_rsp = n >= 3 && p[0] == 0x48 && (p[2] == 0xEC || p[2] == 0xC4);  // sub/add $imm,%rsp
  if (alu_rsp && p[1] == 0x83 && n >= 4) return 4;
  if (alu_rsp && p[1] == 0x81 && n >= 7) return 7;
  return 0;
}

// A 32-bit `mov %reg,%reg` (89 /r, no REX.W): the register it writes, nullopt for any other instruction.
std::optional<uint8_t> mov32_register_write(const uint8_t* p, size_t n, size_t* length) {
  size_t i = 0;
  uint8_t rex = 0;
  if (n > 0 && (p[0] & 0xF0) == 0x40) rex = p[i++];
  if (rex & 8 || i + 2 > n || p[i] != 0x89 || (p[i + 1] >> 6) != 3) return std::nullopt;
  *length = i + 2;
  return static_cast<uint8_t>((p[i + 1] & 7) | (rex & 1 ? 8 : 0));
}

}  // namespace

PrologueFacts prologue_facts(const uint8_t* code, size_t n) {
  constexpr int kMaxInstructions = 24;
  PrologueFacts facts;
  bool rdi_is_this = true;
  size_t i = 0;
  for (int k = 0; k < kMaxInstructions && i < n; ++k) {
    if (size_t len = stack_setup_length(code + i, n - i)) {
      i += len;
      continue;
    }
    size_t len32 = 0;
    if (auto written = mov32_register_write(code + i, n - i, &len32)) {
      if (*written == kRdi) rdi_is_this = false;
      if (*written == facts.this_register) facts.this_register.reset();
      i += len32;
      continue;
    }
    auto f = decode_mov_form(code + i, n - i);
    if (!f || f->is_call) break;
    if (f->loads && f->mem_disp == 0 &&
        ((f->mem_base == kRdi && rdi_is_this) || f->mem_base == facts.this_register))
      facts.reads_first_word_of_this = true;
    if (f->writes_reg) {
      bool copies_this = f->copied_reg == kRdi && rdi_is_this;
      if (*f->writes_reg == facts.this_register) facts.this_register.reset();
      if (copies_this && callee_saved(*f->writes_reg)) facts.this_register = *f->writes_reg;
      if (*f->writes_reg == kRdi) rdi_is_this = false;
    }
    i += f->length;
  }
  return facts;
}

std::optional<LoadedRegister> rdi_loaded_for_call(const uint8_t* code, size_t n, size_t call_at) {
  constexpr size_t kMaxBack = 32;
  constexpr int kMaxInstructions = 4;
  if (call_at >= n || code[call_at] != 0xE8) return std::nullopt;
  std::optional<LoadedRegister> found;
  for (size_t back = 1; back <= kMaxBack && back <= call_at; ++back) {
    size_t i = call_at - back;
    auto first = decode_mov_form(code + i, call_at - i);
    if (!first || !first->loads || first->writes_reg != kRdi) continue;
    LoadedRegister candidate{first->mem_base, first->mem_disp};
    i += first->length;
    for (int k = 1; k < kMaxInstructions && i < call_at; ++k) {
      auto f = decode_mov_form(code + i, call_at - i);
      if (!f || f->is_call || f->writes_reg == kRdi) break;
      i += f->length;
    }
    if (i != call_at) continue;
    if (found && (found->base != candidate.base || found->disp != candidate.disp)) return std::nullopt;
    found = candidate;
  }
  return found;
}

const char* x86_register_name(uint8_t reg) {
  static const char* const kNames[] = {"rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
                                       "r8",  "r9",  "r10", "r11", "r12", "r13", "r14", "r15"};
  return reg < 16 ? kNames[reg] : "?";
}

std::optional<uint64_t> call_rel32_target(const uint8_t* code, size_t n, size_t at, uint64_t code_vaddr) {
  if (at + 5 > n || code[at] != 0xE8) return std::nullopt;
  int32_t rel;
  std::memcpy(&rel, code + at + 1, sizeof rel);
  return code_vaddr + at + 5 + static_cast<int64_t>(rel);
}

std::vector<uint64_t> offsets_after_calls_to(const uint8_t* code, size_t n, uint64_t code_vaddr,
                                             uint64_t target_vaddr) {
  std::vector<uint64_t> out;
  for (size_t i = 0; i + 5 <= n; ++i)
    if (call_rel32_target(code, n, i, code_vaddr) == target_vaddr) out.push_back(i + 5);
  return out;
}

std::optional<uint64_t> rip_indirect_jump_slot(const uint8_t* code, size_t n, uint64_t code_vaddr) {
  for (size_t k = 0; k + 6 <= n; ++k) {
    if (code[k] != 0xFF || code[k + 1] != 0x25) continue;
    int32_t rel;
    std::memcpy(&rel, code + k + 2, sizeof rel);
    return code_vaddr + k + 6 + static_cast<int64_t>(rel);
  }
  return std::nullopt;
}

}  // namespace memlens::elf
