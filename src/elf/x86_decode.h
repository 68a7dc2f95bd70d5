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

// Where the value %rax holds at code[at] (a function's result, just after the call that returned it) can
// still be read at the next `call rel32`: the call is an instruction the kernel's uprobes emulate (a hit
// is one trap, ~0.8 us on a virtual machine), where most instructions are stepped out of line (a second
// trap, ~10 us). The code up to that call must store %rax to DISP(%BASE) with a 64-bit mov and then
// neither write BASE nor store over the slot: only the forms compilers emit there are known (64-bit mov
// and lea between registers and memory, movl/movq of an immediate to memory), anything else (a branch, an
// instruction this decoder does not know, a store through another register that might alias the slot)
// gives nullopt. %rbp counts as the frame (a store there cannot alias an object) only where the function
// starts with `push %rbp; mov %rsp,%rbp`. That no branch lands between the store and the call is assumed,
// as the instruction right after a call is assumed to be reached from it: x86 code cannot be told apart
// from data by a byte scan, and the builds memlens knows are checked with objdump's disassembly instead
// (tests/unit/node_probe_plan_test.cpp). code is the whole function from its first byte; base is the x86
// register number (0 rax .. 7 rdi, 8 r8 .. 15 r15).
struct StoredResult {
  size_t call_offset = 0;  // offset in code of the call where the slot is read
  uint8_t base = 0;
  int32_t disp = 0;
};
std::optional<StoredResult> rax_stored_until_next_call(const uint8_t* code, size_t n, size_t at);

// What a function's prologue (its instructions up to the first call, or to the first this decoder does
// not know) shows about `this`, its first argument (%rdi at the entry).
struct PrologueFacts {
  // The callee-saved register `mov %rdi,%REG` copied `this` into, when nothing in the prologue wrote it
  // after: it holds `this` for the rest of the function (callees preserve it), unless the function body
  // reuses it, which only the disassembly of a known build can rule out.
  std::optional<uint8_t> this_register;
  bool reads_first_word_of_this = false;  // a 64-bit load from 0(%rdi) or 0(this_register) while they hold it
};
PrologueFacts prologue_facts(const uint8_t* code, size_t n);

// The `mov DISP(%BASE),%rdi` whose value %rdi holds at the `call rel32` at code[call_at] (the argument a
// member function is called on): the instructions in between must be 64-bit movs and leas that write
// neither %rdi nor anything else this decoder cannot follow. A byte scan cannot tell where an instruction
// starts, so every start up to 32 bytes before the call is tried: nullopt when none decodes so, or when two
// give different operands.
struct LoadedRegister {
  uint8_t base = 0;
  int32_t disp = 0;
};
std::optional<LoadedRegister> rdi_loaded_for_call(const uint8_t* code, size_t n, size_t call_at);

// "rax", "rbx", ... "r15" for x86 register numbers 0-15, "?" beyond.
const char* x86_register_name(uint8_t reg);

// The memory slot read by the first `jmp *rel32(%rip)` (ff 25) of code that starts at code_vaddr (a PLT
// stub, possibly after endbr64 / bnd prefixes), nullopt when there is none.
std::optional<uint64_t> rip_indirect_jump_slot(const uint8_t* code, size_t n, uint64_t code_vaddr);

}  // namespace memlens::elf
