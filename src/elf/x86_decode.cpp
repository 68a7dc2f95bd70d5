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
