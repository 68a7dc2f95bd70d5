#include "elf/plt.h"

#include <cstring>
#include <string>
#include <vector>

#include "elf/elf_file.h"
#include "elf/x86_decode.h"

namespace memlens::elf {
namespace {

const SectionInfo* section(const ElfFile& elf, std::string_view name) {
  for (const auto& s : elf.sections())
    if (s.name == name) return &s;
  return nullptr;
}

// A whole section's bytes, nullopt when it is too large or cannot be read whole.
std::optional<std::vector<uint8_t>> read_section(const ElfFile& elf, const SectionInfo& s) {
  if (s.size > ElfLimits::kMaxSectionBytes) return std::nullopt;
  auto data = elf.read_at(s.file_offset, s.size);
  if (!data.ok() || data->size() != s.size) return std::nullopt;
  return std::move(*data);
}

uint64_t read_u64(const std::vector<uint8_t>& b, size_t at) {
  uint64_t v = 0;
  std::memcpy(&v, b.data() + at, sizeof v);
  return v;
}

}  // namespace

std::optional<uint64_t> plt_got_slot(const ElfFile& elf, std::string_view symbol) {
  const auto* dynsym = section(elf, ".dynsym");
  const auto* dynstr = section(elf, ".dynstr");
  const auto* rela = section(elf, ".rela.plt");
  if (!dynsym || !dynstr || !rela) return std::nullopt;
  auto syms = read_section(elf, *dynsym);
  auto strs = read_section(elf, *dynstr);
  auto relocs = read_section(elf, *rela);
  if (!syms || !strs || !relocs) return std::nullopt;
  constexpr size_t kSymSize = 24, kRelaSize = 24;  // Elf64_Sym, Elf64_Rela
  std::string_view names(reinterpret_cast<const char*>(strs->data()), strs->size());
  uint64_t index = 0;
  for (size_t i = 1; (i + 1) * kSymSize <= syms->size(); ++i) {
    uint32_t name;
    std::memcpy(&name, syms->data() + i * kSymSize, 4);
    if (name >= names.size()) continue;
    std::string_view s = names.substr(name);
    if (s.substr(0, s.find('\0')) == symbol) {
      index = i;
      break;
    }
  }
  if (index == 0) return std::nullopt;
  for (size_t at = 0; at + kRelaSize <= relocs->size(); at += kRelaSize) {
    uint64_t offset = read_u64(*relocs, at), info = read_u64(*relocs, at + 8);
    if ((info >> 32) == index) return offset;  // ELF64_R_SYM
  }
  return std::nullopt;
}

bool in_plt(const ElfFile& elf, uint64_t vaddr) {
  for (const char* name : {".plt", ".plt.sec"})
    if (const auto* plt = section(elf, name);
        plt && vaddr >= plt->address && vaddr < plt->address + plt->size)
      return true;
  return false;
}

bool plt_stub_uses_slot(const ElfFile& elf, uint64_t stub, uint64_t slot) {
  auto off = elf.vaddr_to_file_offset(stub);
  if (!off) return false;
  auto code = elf.read_at(*off, 16);
  if (!code.ok()) return false;
  return rip_indirect_jump_slot(code->data(), code->size(), stub) == slot;
}

}  // namespace memlens::elf
