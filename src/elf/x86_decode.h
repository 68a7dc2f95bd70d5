// The few x86-64 instruction forms memlens decodes in machine code it reads from ELF files: where a
// uprobe may go (the kernel refuses lock-prefixed instructions), call sites, and the operands of
// instructions whose displacement names a field. Shared by probe planning (node/) and the C library's
// syscall wrappers (collect/wrapper_sites). Every function is bounded by n and returns 0 / nullopt / empty
// for bytes it does not know, never reading past them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

namespace memlens::elf {

// Length of a ModRM operand starting at its ModRM byte p[0]: the ModRM byte, a SIB byte and the
// displacement. 0 when the bytes end before the SIB byte (the displacement is not checked against n).
size_t modrm_operand_length(const uint8_t* p, size_t n);

// Length of a lock-prefixed read-modify-write instruction at p, 0 when p does not start with one this
// decoder knows (or it is truncated).
size_t lock_instruction_length(const uint8_t* p, size_t n);

// DISP of `lock sub %rdx, DISP(%rdi)` (f0 48 29 57 d8 / f0 48 29 97 d32) at p, nullopt for any other
// instruction (another register, a negative or missing displacement).
std::optional<uint32_t> decode_lock_sub_rdx_from_rdi(const uint8_t* p, size_t n);

// Target of the `call rel32` (e8) at code[at], for code that starts at vaddr code_vaddr; nullopt when the
// instruction there is not one or is truncated.
std::optional<uint64_t> call_rel32_target(const uint8_t* code, size_t n, size_t at, uint64_t code_vaddr);

// Offsets, within code that starts at vaddr code_vaddr, of the instructions following each `call rel32`
// whose target is target_vaddr.
std::vector<uint64_t> offsets_after_calls_to(const uint8_t* code, size_t n, uint64_t code_vaddr,
                                             uint64_t target_vaddr);

// The memory slot read by the first `jmp *rel32(%rip)` (ff 25) of code that starts at code_vaddr (a PLT
// stub, possibly after endbr64 / bnd prefixes), nullopt when there is none.
std::optional<uint64_t> rip_indirect_jump_slot(const uint8_t* code, size_t n, uint64_t code_vaddr);

}  // namespace memlens::elf
