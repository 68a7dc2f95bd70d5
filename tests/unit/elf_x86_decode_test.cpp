// The x86-64 decoding shared by probe planning and the syscall-wrapper sites (elf/x86_decode.h), on
// hand-assembled bytes (objdump's encodings of the forms memlens meets in node and libc).
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>

#include "elf/x86_decode.h"

namespace memlens::elf {
namespace {

// Encodings from the Intel SDM; the first is NodeArrayBufferAllocator::Free's first instruction.
TEST(X86Decode, LockInstructionLength) {
  const uint8_t sub[] = {0xF0, 0x48, 0x29, 0x57, 0x10};                  // lock sub %rdx,0x10(%rdi)
  const uint8_t xadd[] = {0xF0, 0x48, 0x0F, 0xC1, 0x07};                 // lock xadd %rax,(%rdi)
  const uint8_t add_rip[] = {0xF0, 0x83, 0x05, 1, 2, 3, 4, 0x01};        // lock addl $1,0x4030201(%rip)
  const uint8_t sib_d32[] = {0xF0, 0x48, 0x01, 0x84, 0x24, 1, 2, 3, 4};  // lock add %rax,0x4030201(%rsp)
  const uint8_t not_lock[] = {0x55, 0x48, 0x89, 0xE5};                   // push %rbp; mov %rsp,%rbp
  const uint8_t reg_form[] = {0xF0, 0x48, 0x29, 0xD0};                   // invalid: register operand
  EXPECT_EQ(lock_instruction_length(sub, sizeof sub), 5u);
  EXPECT_EQ(lock_instruction_length(xadd, sizeof xadd), 5u);
  EXPECT_EQ(lock_instruction_length(add_rip, sizeof add_rip), 8u);
  EXPECT_EQ(lock_instruction_length(sib_d32, sizeof sib_d32), 9u);
  EXPECT_EQ(lock_instruction_length(not_lock, sizeof not_lock), 0u);
  EXPECT_EQ(lock_instruction_length(reg_form, sizeof reg_form), 0u);
  EXPECT_EQ(lock_instruction_length(sub, 3), 0u);  // truncated
}

TEST(X86Decode, CallSitesByTarget) {
  // At 0x1000: nop; call 0x2000; nop; call 0x1000 (itself); call 0x2000
  uint8_t code[16] = {0x90, 0xE8};
  int32_t rel = 0x2000 - (0x1000 + 6);
  std::memcpy(code + 2, &rel, 4);
  code[6] = 0x90;
  code[7] = 0xE8;
  rel = 0x1000 - (0x1000 + 12);
  std::memcpy(code + 8, &rel, 4);
  code[12] = 0xE8;
  rel = 0x2000 - (0x1000 + 17);
  std::memcpy(code + 13, &rel, 3);  // truncated: the last call does not fit in 16 bytes
  auto at = offsets_after_calls_to(code, sizeof code, 0x1000, 0x2000);
  ASSERT_EQ(at.size(), 1u);
  EXPECT_EQ(at[0], 6u);
}

TEST(X86Decode, ModrmOperandLength) {
  const uint8_t reg[] = {0xC2};                            // mod 3: a register
  const uint8_t disp8[] = {0x57, 0xD8};                    // disp8(%rdi)
  const uint8_t disp32[] = {0x97, 0, 1, 0, 0};             // disp32(%rdi)
  const uint8_t rip[] = {0x05, 0, 0, 0, 0};                // disp32(%rip)
  const uint8_t sib[] = {0x44, 0x24, 0x08};                // 0x8(%rsp): SIB, disp8
  const uint8_t sib_no_base[] = {0x04, 0x25, 0, 0, 0, 0};  // disp32 with SIB and no base
  EXPECT_EQ(modrm_operand_length(reg, sizeof reg), 1u);
  EXPECT_EQ(modrm_operand_length(disp8, sizeof disp8), 2u);
  EXPECT_EQ(modrm_operand_length(disp32, sizeof disp32), 5u);
  EXPECT_EQ(modrm_operand_length(rip, sizeof rip), 5u);
  EXPECT_EQ(modrm_operand_length(sib, sizeof sib), 3u);
  EXPECT_EQ(modrm_operand_length(sib_no_base, sizeof sib_no_base), 6u);
  EXPECT_EQ(modrm_operand_length(sib, 1), 0u);  // ends before its SIB byte
  EXPECT_EQ(modrm_operand_length(sib, 0), 0u);
}

TEST(X86Decode, CallTargets) {
  // 0x1000: call 0x2000 (e8 rel32 = 0x2000 - 0x1005); 0x1005: nop; 0x1006: call 0x1006 + 5 - 16
  const uint8_t code[] = {0xE8, 0xFB, 0x0F, 0x00, 0x00, 0x90, 0xE8, 0xF0, 0xFF, 0xFF, 0xFF};
  EXPECT_EQ(call_rel32_target(code, sizeof code, 0, 0x1000), 0x2000u);
  EXPECT_EQ(call_rel32_target(code, sizeof code, 6, 0x1000), 0x1006u + 5 - 16);
  EXPECT_FALSE(call_rel32_target(code, sizeof code, 5, 0x1000));  // a nop
  EXPECT_FALSE(call_rel32_target(code, 10, 6, 0x1000));           // truncated
  auto after = offsets_after_calls_to(code, sizeof code, 0x1000, 0x2000);
  ASSERT_EQ(after.size(), 1u);
  EXPECT_EQ(after[0], 5u);
}

TEST(X86Decode, PltStubSlot) {
  // .plt.sec stub at 0x3000: endbr64; bnd jmp *0x2ffa(%rip) -> slot 0x3000 + 4 + 7 + 0x2ffa.
  const uint8_t stub[] = {0xF3, 0x0F, 0x1E, 0xFA, 0xF2, 0xFF, 0x25, 0xFA, 0x2F, 0x00, 0x00, 0x0F, 0x1F, 0x44};
  EXPECT_EQ(rip_indirect_jump_slot(stub, sizeof stub, 0x3000), 0x3000u + 11 + 0x2FFA);
  const uint8_t no_jump[] = {0x90, 0x90, 0xC3};
  EXPECT_FALSE(rip_indirect_jump_slot(no_jump, sizeof no_jump, 0x3000));
}

}  // namespace
}  // namespace memlens::elf

namespace memlens::elf {
namespace {

// GCTracer::StopInSafepoint of Node 20's official build, from the instruction after its call to
// Heap::SizeOfObjects: lea -0x30(%rbp),%rdi; mov %rax,0x40(%rbx); mov (%rbx),%rax; mov 0x928(%rax),%rax;
// mov 0x20(%rax),%rax; mov %rax,0x50(%rbx); movl $0x2,-0x28(%rbp); mov (%rbx),%rax; mov %rax,-0x30(%rbp);
// call PagedSpaceIterator::Next.
// Preceded here by the function's frame-pointer prologue (push %rbp; mov %rsp,%rbp), 4 bytes.
const std::vector<uint8_t> kNode20StopInSafepoint = {
    0x55, 0x48, 0x89, 0xe5, 0x48, 0x8d, 0x7d, 0xd0, 0x48, 0x89, 0x43, 0x40, 0x48,
    0x8b, 0x03, 0x48, 0x8b, 0x80, 0x28, 0x09, 0x00, 0x00, 0x48, 0x8b, 0x40, 0x20,
    0x48, 0x89, 0x43, 0x50, 0xc7, 0x45, 0xd8, 0x02, 0x00, 0x00, 0x00, 0x48, 0x8b,
    0x03, 0x48, 0x89, 0x45, 0xd0, 0xe8, 0xbb, 0x95, 0x01, 0x00, 0x48, 0x85, 0xc0};
// The same in Node 22 (V8 12.4), the object in %r12 (a SIB byte in every operand).
const std::vector<uint8_t> kNode22StartInSafepoint = {
    0x55, 0x48, 0x89, 0xe5, 0x48, 0x8d, 0x7d, 0xc0, 0x49, 0x89, 0x44, 0x24, 0x38, 0x49,
    0x8b, 0x04, 0x24, 0x48, 0x8b, 0x80, 0xf8, 0x06, 0x00, 0x00, 0x48, 0x8b, 0x40, 0x28,
    0x49, 0x89, 0x44, 0x24, 0x48, 0xc7, 0x45, 0xc8, 0x02, 0x00, 0x00, 0x00, 0x49, 0x8b,
    0x04, 0x24, 0x48, 0x89, 0x45, 0xc0, 0xe8, 0xab, 0xe1, 0x01, 0x00};

TEST(RaxStoredUntilNextCall, FindsV8sStoreOfTheHeapFigureAndTheCallAfterIt) {
  auto s20 = rax_stored_until_next_call(kNode20StopInSafepoint.data(), kNode20StopInSafepoint.size(), 4);
  ASSERT_TRUE(s20);
  EXPECT_EQ(s20->base, 3);  // rbx
  EXPECT_EQ(s20->disp, 0x40);
  EXPECT_EQ(s20->call_offset, 44u);
  auto s22 = rax_stored_until_next_call(kNode22StartInSafepoint.data(), kNode22StartInSafepoint.size(), 4);
  ASSERT_TRUE(s22);
  EXPECT_EQ(s22->base, 12);  // r12
  EXPECT_EQ(s22->disp, 0x38);
  EXPECT_EQ(s22->call_offset, 48u);
}

TEST(RaxStoredUntilNextCall, GivesUpWhereTheSlotMightNotHoldTheValueAtTheCall) {
  // Offsets below are from the instruction after the call (4 bytes into the vector).
  auto changed = [](std::vector<uint8_t> code, size_t at, std::vector<uint8_t> bytes) {
    std::copy(bytes.begin(), bytes.end(), code.begin() + static_cast<long>(at + 4));
    return rax_stored_until_next_call(code.data(), code.size(), 4);
  };
  // Unchanged, it is found (the cases below fail for their change alone).
  EXPECT_TRUE(changed(kNode20StopInSafepoint, 0, {0x48, 0x8d, 0x7d, 0xd0}));
  // Without the frame-pointer prologue %rbp may point anywhere: its stores might alias the slot.
  {
    std::vector<uint8_t> no_frame = kNode20StopInSafepoint;
    no_frame[0] = no_frame[1] = no_frame[2] = no_frame[3] = 0x90;
    EXPECT_FALSE(rax_stored_until_next_call(no_frame.data(), no_frame.size(), 4));
  }
  // The store at 0x50(%rbx) moved onto the slot: mov %rax,0x40(%rbx).
  EXPECT_FALSE(changed(kNode20StopInSafepoint, 22, {0x48, 0x89, 0x43, 0x40}));
  // A 4-byte immediate store overlapping the slot's high half: movl $2,0x44(%rbx).
  EXPECT_FALSE(changed(kNode20StopInSafepoint, 26, {0xc7, 0x43, 0x44}));
  // The base register written: mov (%rbx),%rbx instead of mov (%rbx),%rax.
  EXPECT_FALSE(changed(kNode20StopInSafepoint, 8, {0x48, 0x8b, 0x1b}));
  // A store through another pointer, which might alias the slot: mov %rax,0x20(%rax).
  EXPECT_FALSE(changed(kNode20StopInSafepoint, 22, {0x48, 0x89, 0x40, 0x20}));
  // %rax overwritten before it is stored: mov 0x8(%rbx),%rax in place of the lea.
  EXPECT_FALSE(changed(kNode20StopInSafepoint, 0, {0x48, 0x8b, 0x43, 0x08}));
  // A branch before the call (jne rel8): the straight line ends.
  EXPECT_FALSE(changed(kNode20StopInSafepoint, 33, {0x75, 0x10, 0x90}));
  // No store of %rax at all: the lea, then the call.
  std::vector<uint8_t> no_store = {0x55, 0x48, 0x89, 0xe5, 0x48, 0x8d, 0x7d, 0xd0, 0xe8, 0, 0, 0, 0};
  EXPECT_FALSE(rax_stored_until_next_call(no_store.data(), no_store.size(), 4));
  // Truncated before the call's displacement.
  EXPECT_FALSE(rax_stored_until_next_call(kNode20StopInSafepoint.data(), 46, 4));
}

// GCTracer::StartInSafepoint's prologue in Node 22 (V8 12.4), up to its first call: push %rbp; mov %rsp,%rbp;
// push %r15; push %r14; push %r13; mov %rsi,%r13; push %r12; mov %rdi,%r12; push %rbx; sub $0x28,%rsp;
// mov (%rdi),%rdi; call Heap::EmbedderAllocationCounter.
const std::vector<uint8_t> kNode22StartInSafepointPrologue = {
    0x55, 0x48, 0x89, 0xe5, 0x41, 0x57, 0x41, 0x56, 0x41, 0x55, 0x49, 0x89, 0xf5, 0x41, 0x54, 0x49,
    0x89, 0xfc, 0x53, 0x48, 0x83, 0xec, 0x28, 0x48, 0x8b, 0x3f, 0xe8, 0x71, 0x08, 0x02, 0x00};
// Heap::PerformGarbageCollection's prologue in Node 22: 32-bit moves of the other arguments, `this` in %r12,
// then `test %esi,%esi` (a form the prologue scan does not follow).
const std::vector<uint8_t> kNode22PerformGcPrologue = {0x55, 0x48, 0x89, 0xe5, 0x41, 0x57, 0x49, 0x89, 0xcf,
                                                       0x41, 0x56, 0x41, 0x89, 0xd6, 0x41, 0x55, 0x41, 0x89,
                                                       0xf5, 0x41, 0x54, 0x49, 0x89, 0xfc, 0x53, 0x89, 0xf3,
                                                       0x48, 0x81, 0xec, 0x28, 0x01, 0x00, 0x00, 0x85, 0xf6};

TEST(PrologueFacts, FindsTheRegisterThatKeepsThisAndAReadOfItsFirstWord) {
  auto tracer =
      prologue_facts(kNode22StartInSafepointPrologue.data(), kNode22StartInSafepointPrologue.size());
  EXPECT_EQ(tracer.this_register, 12);  // r12
  EXPECT_TRUE(tracer.reads_first_word_of_this);
  auto heap = prologue_facts(kNode22PerformGcPrologue.data(), kNode22PerformGcPrologue.size());
  EXPECT_EQ(heap.this_register, 12);
  EXPECT_FALSE(heap.reads_first_word_of_this);
}

TEST(PrologueFacts, ForgetsThisWhereItsRegisterIsWrittenOrWasNotThis) {
  auto with = [](std::vector<uint8_t> code, size_t at, std::vector<uint8_t> bytes) {
    std::copy(bytes.begin(), bytes.end(), code.begin() + static_cast<long>(at));
    return prologue_facts(code.data(), code.size());
  };
  // A 32-bit write of %r12d after the copy (mov %esi,%r12d, 41 89 f4 over push %rbx; mov %esi,%ebx).
  auto overwritten = with(kNode22PerformGcPrologue, 24, {0x41, 0x89, 0xf4});
  EXPECT_FALSE(overwritten.this_register);
  // %rdi written before it is copied: mov %rcx,%rdi in place of mov %rcx,%r15 (the copy is no longer `this`).
  auto rdi_first = with(kNode22PerformGcPrologue, 6, {0x48, 0x89, 0xcf});
  EXPECT_FALSE(rdi_first.this_register);
  // A copy into a register callees may clobber (mov %rdi,%rcx) does not keep `this`.
  auto scratch = with(kNode22StartInSafepointPrologue, 15, {0x48, 0x89, 0xf9});
  EXPECT_FALSE(scratch.this_register);
  // The first word read after %rdi was overwritten is not `this`'s: mov %rsi,%rdi; push %rbx in place of
  // push %rbx; sub $0x28,%rsp (then push %rbx again), before mov (%rdi),%rdi. With %rdi left alone (five
  // push %rbx, bytes the scan follows) the read is seen: the change alone is what hides it.
  auto moved = with(kNode22StartInSafepointPrologue, 18, {0x48, 0x89, 0xf7, 0x53, 0x53});
  EXPECT_EQ(moved.this_register, 12);
  EXPECT_FALSE(moved.reads_first_word_of_this);
  auto kept = with(kNode22StartInSafepointPrologue, 18, {0x53, 0x53, 0x53, 0x53, 0x53});
  EXPECT_TRUE(kept.reads_first_word_of_this);
  // A lea whose displacement ends in the bytes of `mov %rdi,%REG` (lea 0x3f890000(%rax),%rbx) copies no
  // register.
  auto lea = with(kNode22StartInSafepointPrologue, 15, {0x48, 0x8d, 0x98, 0x00, 0x00, 0x89, 0x3f, 0x53});
  EXPECT_FALSE(lea.this_register);
}

// Heap::PerformGarbageCollection's call of GCTracer::StopInSafepoint in Node 22: call TimeTicks::Now;
// mov 0x6c8(%r12),%rdi; mov %rax,%rsi; mov %rax,%r14; call StopInSafepoint (at offset 19).
const std::vector<uint8_t> kNode22StopInSafepointCall = {0xe8, 0x34, 0x0e, 0x5b, 0x01, 0x49, 0x8b, 0xbc,
                                                         0x24, 0xc8, 0x06, 0x00, 0x00, 0x48, 0x89, 0xc6,
                                                         0x49, 0x89, 0xc6, 0xe8, 0x91, 0xc5, 0xfc, 0xff};

TEST(RdiLoadedForCall, FindsTheFieldACallIsMadeOn) {
  auto arg = rdi_loaded_for_call(kNode22StopInSafepointCall.data(), kNode22StopInSafepointCall.size(), 19);
  ASSERT_TRUE(arg);
  EXPECT_EQ(arg->base, 12);
  EXPECT_EQ(arg->disp, 0x6c8);
  // Not a call there.
  EXPECT_FALSE(rdi_loaded_for_call(kNode22StopInSafepointCall.data(), kNode22StopInSafepointCall.size(), 16));
  // %rdi written after the load: mov %rax,%rdi in place of mov %rax,%rsi.
  auto rewritten = kNode22StopInSafepointCall;
  rewritten[15] = 0xc7;
  EXPECT_FALSE(rdi_loaded_for_call(rewritten.data(), rewritten.size(), 19));
  // An instruction the scan does not know between the load and the call (test %eax,%eax; nop).
  auto unknown = kNode22StopInSafepointCall;
  unknown[13] = 0x85, unknown[14] = 0xc0, unknown[15] = 0x90;
  EXPECT_FALSE(rdi_loaded_for_call(unknown.data(), unknown.size(), 19));
}

}  // namespace
}  // namespace memlens::elf
