#include "collect/wrapper_sites.h"

#include <algorithm>
#include <array>
#include <map>

#include "elf/x86_decode.h"

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

// Syscall offset -> the stack bytes the wrapper has taken when it gets there.
using Reached = std::map<size_t, uint32_t>;

// Follows the code from `at` along every path to a syscall instruction or a ret, through the few
// instructions glibc's wrappers put there: mov between registers and memory (%fs/%gs too), mov $imm32 to
// a register or memory, test $imm32 of a register, call, sub $imm8 from %rsp, and forward conditional
// branches (both ways followed). false at anything else: an unknown instruction, a backward or
// unconditional jump, a write to %rsp or %rbp, the end of the code, or a syscall reached with two
// different stack effects.
bool follow_paths(std::span<const uint8_t> code, size_t at, uint32_t taken, int branches, Reached& reached) {
  for (int steps = 0; steps < 32 && at < code.size(); ++steps) {
    if (code[at] == 0x64 || code[at] == 0x65) ++at;  // %fs: / %gs: segment prefix
    uint8_t rex = 0;
    if (at < code.size() && (code[at] & 0xf0) == 0x40) rex = code[at++];
    if (at >= code.size()) return false;
    uint8_t op = code[at];
    if (rex == 0 && op == 0x0f && at + 1 < code.size() && code[at + 1] == 0x05) {
      auto [it, added] = reached.emplace(at, taken);
      return added || it->second == taken;
    }
    if (rex == 0 && op == 0xc3) return true;     // ret: this path leaves without a syscall
    if (rex == 0 && op >= 0x70 && op <= 0x7f) {  // jcc rel8
      if (at + 1 >= code.size() || ++branches > 4) return false;
      auto rel = static_cast<int8_t>(code[at + 1]);
      if (rel < 0) return false;  // a loop: not followed
      if (!follow_paths(code, at + 2 + static_cast<size_t>(rel), taken, branches, reached)) return false;
      at += 2;
      continue;
    }
    if (rex == 0 && op == 0xe8) {  // call rel32: the callee returns with %rsp and %rbp as they were
      at += 5;
      continue;
    }
    if (op >= 0xb8 && op <= 0xbf) {  // mov $imm32,%reg (imm64 with REX.W)
      int reg = (op - 0xb8) | ((rex & 1) << 3);
      if (reg == kRsp || reg == kRbp) return false;
      at += 1 + ((rex & 8) ? 8 : 4);
      continue;
    }
    if (rex == 0x48 && op == 0x83 && at + 2 < code.size() && code[at + 1] == 0xec) {  // sub $imm8,%rsp
      taken += code[at + 2];
      at += 3;
      continue;
    }
    if (op != 0x89 && op != 0x8b && op != 0xc7 && op != 0xf7) return false;
    if (at + 1 >= code.size()) return false;
    uint8_t modrm = code[at + 1];
    int mod = modrm >> 6, reg = ((modrm >> 3) & 7) | ((rex & 4) << 1), rm = (modrm & 7) | ((rex & 1) << 3);
    size_t len = elf::modrm_operand_length(code.data() + at + 1, code.size() - at - 1);
    if (len == 0) return false;
    int dest = -1;  // -1: memory, or no destination
    if (op == 0xc7 || op == 0xf7) {
      // c7 /0: mov $imm32,r/m; f7 /0: test $imm32,r/m (flags only). Other /digits are other operations.
      if ((modrm >> 3 & 7) != 0) return false;
      if (op == 0xc7 && mod == 3) dest = rm;
      len += 4;
    } else {
      dest = op == 0x8b ? reg : (mod == 3 ? rm : -1);
    }
    if (dest == kRsp || dest == kRbp) return false;
    at += 1 + len;
  }
  return false;
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
  // syscall (0f 05), then cmp $-4096,%rax (48 3d 00 f0 ff ff) and ja (rel8 77, rel32 0f 87), or
  // cmp $-4095,%rax (48 3d 01 f0 ff ff) and jae (73, 0f 83): the two checks glibc's wrappers make.
  static constexpr std::array<uint8_t, 4> kSyscallCmp = {0x0f, 0x05, 0x48, 0x3d};
  static constexpr std::array<uint8_t, 3> kCmpHigh = {0xf0, 0xff, 0xff};
  constexpr size_t kCheckLength = 8;  // syscall and cmp
  size_t syscalls = 0;
  for (size_t i = 0; i + 1 < code.size(); ++i) {
    if (code[i] != 0x0f || code[i + 1] != 0x05) continue;
    // Counted as a syscall even where the two bytes are part of another instruction: then the count
    // does not match the sites and no site is used, which only costs the cheaper path.
    ++syscalls;
    if (!matches_at(code, i, kSyscallCmp) || !matches_at(code, i + 5, kCmpHigh)) continue;
    uint8_t low = code[i + 4];
    if (low != 0x00 && low != 0x01) continue;
    uint8_t jcc8 = low == 0x00 ? 0x77 : 0x73, jcc32 = low == 0x00 ? 0x87 : 0x83;
    size_t branch = i + kCheckLength;
    bool near = branch + 2 <= code.size() && code[branch] == jcc8;
    bool far = branch + 6 <= code.size() && code[branch] == 0x0f && code[branch + 1] == jcc32;
    if (near || far) s.after_syscall.push_back(branch);
  }
  if (syscalls == 0 || s.after_syscall.size() != syscalls) {
    s.after_syscall.clear();
    return s;
  }
  // Every syscall must be reached by a followed path from the entry branch (both ways), or from the
  // first instruction where there is none, and every path must end at one or at a ret.
  Reached reached;
  std::vector<size_t> starts = s.entry ? entry_paths(code, *s.entry) : std::vector<size_t>{0};
  for (size_t start : starts)
    if (!follow_paths(code, start, 0, 0, reached)) return s;
  std::vector<uint32_t> bytes;
  for (uint64_t branch : s.after_syscall) {
    auto it = reached.find(branch - kCheckLength);
    if (it == reached.end()) return s;
    bytes.push_back(it->second);
  }
  s.stack_bytes = std::move(bytes);
  return s;
}

std::optional<LocatedWrapper> locate_wrapper(const elf::ElfFile& elf, std::string_view symbol) {
  auto sym = elf.find_symbol(symbol);
  if (!sym || !sym->is_function || sym->address == 0) return std::nullopt;
  auto off = elf.vaddr_to_file_offset(sym->address);
  if (!off) return std::nullopt;
  LocatedWrapper w{*off, {}};
  // Wrappers are short; a few KiB hold any of them.
  uint64_t size = std::min<uint64_t>(sym->size, 4096);
  auto code = elf.read_at(*off, size);
  if (code && code->size() == size) w.sites = find_wrapper_sites(*code);
  return w;
}

OneHitSites one_hit_sites(const LocatedWrapper& w) {
  OneHitSites out;
  for (size_t k = 0; k < w.sites.stack_bytes.size(); ++k)
    out.emplace_back(w.file_offset + w.sites.after_syscall[k], w.sites.stack_bytes[k]);
  return out;
}

}  // namespace memlens::collect
