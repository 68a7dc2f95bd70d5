#pragma once
// Cheaper probe points inside the C library's syscall wrappers (x86-64).
//
// A uprobe on an instruction the kernel cannot emulate is executed out of line with a single step: a
// second trap, which on a virtual machine costs most of the ~10 us of a hit. On a conditional branch the
// kernel emulates the instruction instead, and the hit costs ~0.6 us (measured on kernel 6.18: accept4
// in a loop, 9.6 us per call with a uprobe on its first instruction, 0.7 us on its branch after the
// syscall). glibc's wrappers offer such branches where they are equivalent to the entry and the return:
//
//   entry:  cmpb $0x0,__libc_single_threaded(%rip)   the first instructions touch neither the stack nor
//           [mov %ecx,%r10d]                         the argument registers, so at the branch the
//           je/jne ...                               arguments and the return address are where they
//                                                    were at the first instruction
//   return: syscall                                  the kernel's result is in %rax and the argument
//           cmp $0xfffffffffffff000,%rax             registers are preserved; a failure is -errno
//           ja ...                                   here (the wrapper sets errno after the branch);
//           (or cmp $0xfffffffffffff001,%rax; jae)   the same check, as munmap and madvise make it
//
// Where every path from the entry branch (either way it goes), or from the first instruction when there
// is none, to each syscall is made only of instructions whose effect on %rsp is known (and forward
// branches that end in a ret or reach a syscall too), the branch after the syscall also knows where the
// return address is (%rsp + the bytes the wrapper has taken), and one hit there can stand for both the
// entry and the return probe (accept, accept4, mmap: the arguments are still in their registers, which
// the syscall preserves, %rcx aside: the fourth is in %r10).
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

#include "elf/elf_file.h"

namespace memlens::collect {

struct WrapperSites {
  // Offset from the function's start of a branch equivalent to its entry; nullopt: probe the start.
  std::optional<uint64_t> entry;
  // Offsets of the branch after each syscall instruction, when every syscall of the function is followed
  // by the result check (else empty: a return probe is needed).
  std::vector<uint64_t> after_syscall;
  // For each after_syscall branch, the stack bytes the wrapper has taken below its return address when it
  // gets there (the return address is at %rsp + this). Empty unless known for every branch: the code
  // from the entry branch (or the start) to each syscall could be followed and changes neither %rsp (but
  // by a known sub) nor %rbp (the caller's frame pointer, for the stack walk).
  std::vector<uint32_t> stack_bytes;
};

// code: the function's bytes, from its first instruction.
WrapperSites find_wrapper_sites(std::span<const uint8_t> code);

// A function of a C library file, with its sites.
struct LocatedWrapper {
  uint64_t file_offset = 0;  // of its first instruction, where a uprobe on it goes
  WrapperSites sites;        // offsets from file_offset; none when its code could not be read
};

// symbol in elf (a defined function), or nullopt.
std::optional<LocatedWrapper> locate_wrapper(const elf::ElfFile& elf, std::string_view symbol);

// Where one uprobe hit can stand for a wrapper's entry and return probes: (file offset of each branch
// after a syscall, stack bytes the wrapper has taken there). Empty when its code has another shape.
using OneHitSites = std::vector<std::pair<uint64_t, uint32_t>>;
OneHitSites one_hit_sites(const LocatedWrapper& w);

}  // namespace memlens::collect
