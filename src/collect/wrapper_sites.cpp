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
  if (syscalls == 0 || s.after_syscall.size() != syscalls) s.after_syscall.clear();
  return s;
}

}  // namespace memlens::collect
