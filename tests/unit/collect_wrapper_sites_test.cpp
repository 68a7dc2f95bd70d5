#include <gtest/gtest.h>

#include <vector>

#include "collect/wrapper_sites.h"

namespace memlens::collect {
namespace {

// accept4 of Debian 12's glibc 2.36 (x86-64), as objdump shows it: a single-threaded path and a
// cancellable one, each with its own syscall.
const std::vector<uint8_t> kAccept4 = {
    0x80, 0x3d, 0x81, 0x06, 0x0d, 0x00, 0x00,  // 00 cmpb $0x0,__libc_single_threaded(%rip)
    0x41, 0x89, 0xca,                          // 07 mov %ecx,%r10d
    0x74, 0x14,                                // 0a je 20
    0xb8, 0x20, 0x01, 0x00, 0x00,              // 0c mov $0x120,%eax
    0x0f, 0x05,                                // 11 syscall
    0x48, 0x3d, 0x00, 0xf0, 0xff, 0xff,        // 13 cmp $0xfffffffffffff000,%rax
    0x77, 0x5d,                                // 19 ja 78
    0xc3,                                      // 1b ret
    0x0f, 0x1f, 0x40, 0x00,                    // 1c nopl
    0x48, 0x83, 0xec, 0x28,                    // 20 sub $0x28,%rsp
    0x48, 0x89, 0x54, 0x24, 0x10,              // 24 mov %rdx,0x10(%rsp)
    0xe8, 0x95, 0xa8, 0xf7, 0xff,              // 29 call __pthread_enable_asynccancel
    0xb8, 0x20, 0x01, 0x00, 0x00,              // 2e mov $0x120,%eax
    0x0f, 0x05,                                // 33 syscall
    0x48, 0x3d, 0x00, 0xf0, 0xff, 0xff,        // 35 cmp $0xfffffffffffff000,%rax
    0x0f, 0x87, 0x30, 0x00, 0x00, 0x00,        // 3b ja rel32
    0xc3,                                      // 41 ret
};

// The sites of `base` with its bytes [from, to) replaced by `insn`.
WrapperSites sites_with(const std::vector<uint8_t>& base, size_t from, size_t to,
                        const std::vector<uint8_t>& insn) {
  std::vector<uint8_t> code(base.begin(), base.begin() + static_cast<std::ptrdiff_t>(from));
  code.insert(code.end(), insn.begin(), insn.end());
  code.insert(code.end(), base.begin() + static_cast<std::ptrdiff_t>(to), base.end());
  return find_wrapper_sites(code);
}

TEST(WrapperSites, Accept4HasABranchAtEntryAndAfterEachSyscall) {
  auto s = find_wrapper_sites(kAccept4);
  ASSERT_TRUE(s.entry.has_value());
  EXPECT_EQ(*s.entry, 0x0au);
  EXPECT_EQ(s.after_syscall, (std::vector<uint64_t>{0x19, 0x3b}));
  // The single-threaded path reaches its syscall with nothing on the stack, the cancellable one after
  // sub $0x28,%rsp (the movs to and from the stack and the call leave %rsp as it was).
  EXPECT_EQ(s.stack_bytes, (std::vector<uint32_t>{0, 0x28}));
}

TEST(WrapperSites, Accept4OfGlibc236WithItsRegisterReloads) {
  // The cancellable path as glibc 2.36 has it whole: saves, call, reloads (REX-prefixed movs with SIB
  // and disp8, a register move to %r8d) before the syscall.
  std::vector<uint8_t> code(kAccept4.begin(), kAccept4.begin() + 0x24);
  code.insert(code.end(), {
                              0x48, 0x89, 0x54, 0x24, 0x10,        // mov %rdx,0x10(%rsp)
                              0x48, 0x89, 0x74, 0x24, 0x08,        // mov %rsi,0x8(%rsp)
                              0x89, 0x7c, 0x24, 0x18,              // mov %edi,0x18(%rsp)
                              0x89, 0x4c, 0x24, 0x1c,              // mov %ecx,0x1c(%rsp)
                              0xe8, 0x95, 0xa8, 0xf7, 0xff,        // call __pthread_enable_asynccancel
                              0x44, 0x8b, 0x54, 0x24, 0x1c,        // mov 0x1c(%rsp),%r10d
                              0x48, 0x8b, 0x54, 0x24, 0x10,        // mov 0x10(%rsp),%rdx
                              0x41, 0x89, 0xc0,                    // mov %eax,%r8d
                              0x48, 0x8b, 0x74, 0x24, 0x08,        // mov 0x8(%rsp),%rsi
                              0x8b, 0x7c, 0x24, 0x18,              // mov 0x18(%rsp),%edi
                              0xb8, 0x20, 0x01, 0x00, 0x00,        // mov $0x120,%eax
                              0x0f, 0x05,                          // syscall
                              0x48, 0x3d, 0x00, 0xf0, 0xff, 0xff,  // cmp $0xfffffffffffff000,%rax
                              0x77, 0x30,                          // ja
                              0xc3,
                          });
  auto s = find_wrapper_sites(code);
  ASSERT_EQ(s.after_syscall.size(), 2u);
  EXPECT_EQ(s.stack_bytes, (std::vector<uint32_t>{0, 0x28}));
}

TEST(WrapperSites, AnUnknownStackEffectOnTheWayMeansNoCallSites) {
  // Where the path to a syscall pushes, writes %rbp or %rsp, or holds an instruction not followed, the
  // return address cannot be found at the branch: the stack bytes stay unknown (entry and result probes).
  auto with = [](const std::vector<uint8_t>& insn) { return sites_with(kAccept4, 0x24, 0x2e, insn); };
  EXPECT_EQ(with({0x90, 0x90, 0x90, 0x90, 0x90}).stack_bytes,
            (std::vector<uint32_t>{}));                                   // nop: not followed
  EXPECT_TRUE(with({0x55, 0x90, 0x90, 0x90, 0x90}).stack_bytes.empty());  // push %rbp
  EXPECT_TRUE(with({0x48, 0x89, 0xe5, 0x90, 0x90}).stack_bytes.empty());  // mov %rsp,%rbp
  EXPECT_TRUE(with({0x48, 0x8b, 0x24, 0x24, 0x90}).stack_bytes.empty());  // mov (%rsp),%rsp
  EXPECT_TRUE(with({0xbd, 0x01, 0x00, 0x00, 0x00}).stack_bytes.empty());  // mov $1,%ebp
  // The same five bytes as a harmless move keep the sites: the check is not a byte-pattern accident.
  auto ok = with({0x48, 0x89, 0x54, 0x24, 0x10});  // mov %rdx,0x10(%rsp)
  EXPECT_EQ(ok.stack_bytes, (std::vector<uint32_t>{0, 0x28}));
  EXPECT_EQ(ok.after_syscall.size(), 2u);
}

TEST(WrapperSites, EntryBranchWithoutTheRegisterMove) {
  // close: cmpb, then je at once.
  std::vector<uint8_t> code = {0x80, 0x3d, 0x11, 0x22, 0x33, 0x44, 0x00,
                               0x74, 0x10, 0xb8, 0x03, 0x00, 0x00, 0x00};
  auto s = find_wrapper_sites(code);
  ASSERT_TRUE(s.entry.has_value());
  EXPECT_EQ(*s.entry, 7u);
}

// mmap of glibc 2.36: no entry branch, a test of the offset's low bits whose taken side fails with
// EINVAL without a syscall, then the syscall and its check.
const std::vector<uint8_t> kMmap = {
    0x41, 0x89, 0xca,                          // 00 mov %ecx,%r10d
    0x41, 0xf7, 0xc1, 0xff, 0x0f, 0x00, 0x00,  // 03 test $0xfff,%r9d
    0x75, 0x14,                                // 0a jne 20
    0xb8, 0x09, 0x00, 0x00, 0x00,              // 0c mov $0x9,%eax
    0x0f, 0x05,                                // 11 syscall
    0x48, 0x3d, 0x00, 0xf0, 0xff, 0xff,        // 13 cmp $0xfffffffffffff000,%rax
    0x77, 0x25,                                // 19 ja 40
    0xc3,                                      // 1b ret
    0x0f, 0x1f, 0x40, 0x00,                    // 1c nopl
    0x48, 0x8b, 0x05, 0x19, 0x14, 0x0d, 0x00,  // 20 mov errno@gottpoff(%rip),%rax
    0x64, 0xc7, 0x00, 0x16, 0x00, 0x00, 0x00,  // 27 movl $0x16,%fs:(%rax)
    0x48, 0xc7, 0xc0, 0xff, 0xff, 0xff, 0xff,  // 2e mov $-1,%rax
    0xc3,                                      // 35 ret
};

// madvise (and munmap) of glibc 2.36: the syscall at once, checked with cmp $-4095 / jae.
const std::vector<uint8_t> kMadvise = {
    0xb8, 0x1c, 0x00, 0x00, 0x00,        // 00 mov $0x1c,%eax
    0x0f, 0x05,                          // 05 syscall
    0x48, 0x3d, 0x01, 0xf0, 0xff, 0xff,  // 07 cmp $0xfffffffffffff001,%rax
    0x73, 0x01,                          // 0d jae 10
    0xc3,                                // 0f ret
};

TEST(WrapperSites, MmapIsOneHitAfterItsSyscall) {
  auto s = find_wrapper_sites(kMmap);
  EXPECT_FALSE(s.entry.has_value());
  EXPECT_EQ(s.after_syscall, (std::vector<uint64_t>{0x19}));
  // Both ways of the jne followed: the EINVAL side ends in a ret, the other reaches the syscall with
  // nothing taken from the stack.
  EXPECT_EQ(s.stack_bytes, (std::vector<uint32_t>{0}));
}

TEST(WrapperSites, TheOtherResultCheckIsRecognized) {
  auto s = find_wrapper_sites(kMadvise);
  EXPECT_FALSE(s.entry.has_value());
  EXPECT_EQ(s.after_syscall, (std::vector<uint64_t>{0x0d}));
  EXPECT_EQ(s.stack_bytes, (std::vector<uint32_t>{0}));
}

TEST(WrapperSites, BranchesThatCannotBeFollowedMeanNoCallSites) {
  // The EINVAL side of mmap with an instruction the decoder does not know (a push) instead of its store:
  // that path could reach anything, so no site.
  auto with_einval = [](const std::vector<uint8_t>& insn) { return sites_with(kMmap, 0x27, 0x2e, insn); };
  EXPECT_TRUE(with_einval({0x55, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90}).stack_bytes.empty());
  // A store of an immediate to %rsp (c7 /0 with a register operand) is refused like any write to it.
  EXPECT_TRUE(with_einval({0x48, 0xc7, 0xc4, 0x00, 0x00, 0x00, 0x00}).stack_bytes.empty());
  // Another /digit of f7 (not, neg, mul, div...) is not a test.
  std::vector<uint8_t> neg = kMmap;
  neg[5] = 0xd9;  // f7 /3: neg %r9d
  EXPECT_TRUE(find_wrapper_sites(neg).stack_bytes.empty());
  // A backward branch (a loop) is not followed.
  std::vector<uint8_t> loop = kMmap;
  loop[0x0b] = 0xf4;  // jne back to the start
  EXPECT_TRUE(find_wrapper_sites(loop).stack_bytes.empty());
  // The sites themselves are still found: only the one hit needs the paths.
  EXPECT_EQ(find_wrapper_sites(loop).after_syscall, (std::vector<uint64_t>{0x19}));
}

TEST(WrapperSites, FunctionsOfAnotherShapeKeepTheirEntryAndReturnProbes) {
  // A cmpb of another immediate is some other test.
  std::vector<uint8_t> other = {0x80, 0x3d, 0x11, 0x22, 0x33, 0x44, 0x01, 0x74, 0x10};
  EXPECT_FALSE(find_wrapper_sites(other).entry.has_value());
  // A cmp of another bound after the syscall is not the result check.
  std::vector<uint8_t> bound = kMadvise;
  bound[9] = 0x02;
  EXPECT_TRUE(find_wrapper_sites(bound).after_syscall.empty());
  // Truncated code is not read past its end.
  std::vector<uint8_t> cut(kAccept4.begin(), kAccept4.begin() + 0x1a);
  EXPECT_TRUE(find_wrapper_sites(cut).after_syscall.empty());
  EXPECT_TRUE(find_wrapper_sites({}).after_syscall.empty());
}

TEST(WrapperSites, OneUncheckedSyscallMeansNoReturnSites) {
  // A wrapper whose second syscall is not followed by the check (its result handled elsewhere):
  // probing only the first would miss calls, so a return probe is kept.
  std::vector<uint8_t> code(kAccept4.begin(), kAccept4.begin() + 0x33);
  code.insert(code.end(), {0x0f, 0x05, 0x89, 0xc7, 0xc3});  // syscall; mov %eax,%edi; ret
  auto s = find_wrapper_sites(code);
  EXPECT_TRUE(s.after_syscall.empty());
  EXPECT_TRUE(s.entry.has_value());
}

}  // namespace
}  // namespace memlens::collect
