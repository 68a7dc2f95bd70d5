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
  auto with = [](std::vector<uint8_t> insn) {
    std::vector<uint8_t> code(kAccept4.begin(), kAccept4.begin() + 0x24);
    code.insert(code.end(), insn.begin(), insn.end());
    code.insert(code.end(), kAccept4.begin() + 0x2e, kAccept4.end());
    return find_wrapper_sites(code);
  };
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

TEST(WrapperSites, FunctionsOfAnotherShapeKeepTheirEntryAndReturnProbes) {
  // socket: mov $0x29,%eax; syscall; cmp; ja; ret: no branch before the syscall.
  std::vector<uint8_t> socket = {0xb8, 0x29, 0x00, 0x00, 0x00, 0x0f, 0x05, 0x48,
                                 0x3d, 0x01, 0xf0, 0xff, 0xff, 0x73, 0x01, 0xc3};
  auto s = find_wrapper_sites(socket);
  EXPECT_FALSE(s.entry.has_value());
  EXPECT_TRUE(s.after_syscall.empty()) << "cmp $-4095 / jae is another check: not recognized";
  // A cmpb of another immediate is some other test.
  std::vector<uint8_t> other = {0x80, 0x3d, 0x11, 0x22, 0x33, 0x44, 0x01, 0x74, 0x10};
  EXPECT_FALSE(find_wrapper_sites(other).entry.has_value());
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
