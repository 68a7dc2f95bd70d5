#include "collect/wrapper_sites.h"

#include <algorithm>
#include <array>

namespace memlens::collect {

namespace {

bool matches_at(std::span<const uint8_t> code, size_t at, std::span<const uint8_t> pattern) {
  return at + pattern.size() <= code.size() && std::equal(pattern.begin(), pattern.end(), code.begin() + at);
}

std::optional<uint64_t> entry_branch(std::span<const uint8_t> code) {
  // cmpb $0x0, disp32(%rip): 80 3d <disp32> 00
  if (code.size() < 7 || code[0] != 0x80 || code[1] != 0x3d || code[6] != 0x00) return std::nullopt;
  size_t at = 7;
  // mov %ecx,%r10d (41 89 ca) or mov %rcx,%r10 (49 89 ca): the syscall's fourth argument register.
  static constexpr std::array<uint8_t, 2> kMovToR10 = {0x89, 0xca};
  if (at + 3 <= code.size() && (code[at] == 0x41 || code[at] == 0x49) && matches_at(code, at + 1, kMovToR10))
    at += 3;
  if (at + 2 <= code.size() && (code[at] == 0x74 || code[at] == 0x75)) return at;
  return std::nullopt;
}

constexpr int kRsp = 4;
constexpr int kRbp = 5;

struct PathToSyscall {
  size_t syscall;        // offset of the syscall instruction
  uint32_t stack_bytes;  // subtracted from %rsp on the way
};

// Follows straight-line code from `at` to its first syscall instruction, through the few instructions
// glibc's wrappers put there (mov between registers and memory, mov $imm32 to a register, call, sub
// $imm8 from %rsp). nullopt at anything else (an unknown instruction, a branch, a write to %rsp or %rbp,
// the end of the code).
std::optional<PathToSyscall> follow_to_syscall(std::span<const uint8_t> code, size_t at) {
  uint32_t taken = 0;
  for (int steps = 0; steps < 32 && at < code.size(); ++steps) {
    uint8_t rex = 0;
    if ((code[at] & 0xf0) == 0x40) rex = code[at++];
    if (at >= code.size()) return std::nullopt;
    uint8_t op = code[at];
    if (rex == 0 && op == 0x0f && at + 1 < code.size() && code[at + 1] == 0x05)
      return PathToSyscall{at, taken};
    if (rex == 0 && op == 0xe8) {  // call rel32: the callee returns with %rsp and %rbp as they were
      at += 5;
      continue;
    }
    if (op >= 0xb8 && op <= 0xbf) {  // mov $imm32,%reg (imm64 with REX.W)
      int reg = (op - 0xb8) | ((rex & 1) << 3);
      if (reg == kRsp || reg == kRbp) return std::nullopt;
      at += 1 + ((rex & 8) ? 8 : 4);
      continue;
    }
    if (rex == 0x48 && op == 0x83 && at + 2 < code.size() && code[at + 1] == 0xec) {  // sub $imm8,%rsp
      taken += code[at + 2];
      at += 3;
      continue;
    }
    if (op != 0x89 && op != 0x8b) return std::nullopt;  // mov r/m,reg / mov reg,r/m
    if (at + 1 >= code.size()) return std::nullopt;
    uint8_t modrm = code[at + 1];
    int mod = modrm >> 6, reg = ((modrm >> 3) & 7) | ((rex & 4) << 1), rm = (modrm & 7) | ((rex & 1) << 3);
    int dest = op == 0x8b ? reg : (mod == 3 ? rm : -1);  // -1: a store to memory
    if (dest == kRsp || dest == kRbp) return std::nullopt;
    size_t len = 2;
    if (mod != 3 && (modrm & 7) == 4) {  // SIB byte
      if (at + 2 >= code.size()) return std::nullopt;
      ++len;
      if (mod == 0 && (code[at + 2] & 7) == 5) len += 4;
    }
    if (mod == 0 && (modrm & 7) == 5) len += 4;  // disp32(%rip)
    if (mod == 1) len += 1;
    if (mod == 2) len += 4;
    at += len;
  }
  return std::nullopt;
}

// The entry branch's two ways on: the next instruction and the branch's target (rel8).
std::vector<size_t> entry_paths(std::span<const uint8_t> code, size_t branch) {
  std::vector<size_t> out = {branch + 2};
  auto rel = static_cast<int8_t>(code[branch + 1]);
  auto target = static_cast<int64_t>(branch + 2) + rel;
  if (target >= 0 && static_cast<size_t>(target) < code.size()) out.push_back(static_cast<size_t>(target));
  return out;
}

}  // namespace

WrapperSites find_wrapper_sites(std::span<const uint8_t> code) {
  WrapperSites s;
  s.entry = entry_branch(code);
  // syscall (0f 05), then cmp $-4096,%rax (48 3d 00 f0 ff ff), then ja rel8 (77) or ja rel32 (0f 87).
  static constexpr std::array<uint8_t, 8> kSyscallCheck = {0x0f, 0x05, 0x48, 0x3d, 0x00, 0xf0, 0xff, 0xff};
  size_t syscalls = 0;
  for (size_t i = 0; i + 1 < code.size(); ++i) {
    if (code[i] != 0x0f || code[i + 1] != 0x05) continue;
    // Counted as a syscall even where the two bytes are part of another instruction: then the count
    // does not match the sites and no site is used, which only costs the cheaper path.
    ++syscalls;
    if (!matches_at(code, i, kSyscallCheck)) continue;
    size_t branch = i + kSyscallCheck.size();
    bool ja8 = branch + 2 <= code.size() && code[branch] == 0x77;
    bool ja32 = branch + 6 <= code.size() && code[branch] == 0x0f && code[branch + 1] == 0x87;
    if (ja8 || ja32) s.after_syscall.push_back(branch);
  }
  if (syscalls == 0 || s.after_syscall.size() != syscalls) {
    s.after_syscall.clear();
    return s;
  }
  if (!s.entry) return s;
  // Every syscall must be reached from the entry branch by a followed path, and every path must reach one.
  std::vector<std::optional<uint32_t>> bytes(s.after_syscall.size());
  for (size_t start : entry_paths(code, *s.entry)) {
    auto path = follow_to_syscall(code, start);
    if (!path) return s;
    for (size_t k = 0; k < s.after_syscall.size(); ++k)
      if (s.after_syscall[k] == path->syscall + kSyscallCheck.size()) bytes[k] = path->stack_bytes;
  }
  for (const auto& b : bytes)
    if (!b) return s;
  for (const auto& b : bytes) s.stack_bytes.push_back(*b);
  return s;
}

}  // namespace memlens::collect
