// USDT probes (SystemTap SDT): the "stapsdt" notes (SHT_NOTE, type 3) an object file carries for each
// probe site, as `node` builds with --with-dtrace define node:gc__start / node:gc__done.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace memlens::elf {

class ElfFile;

// One probe site, addresses adjusted for prelink with .stapsdt.base.
struct UsdtProbe {
  std::string provider, name, args;
  uint64_t pc = 0;  // vaddr of the probe's nop
  uint64_t pc_file_offset = 0;
  uint64_t semaphore = 0;  // vaddr of the semaphore, 0 when the probe has none
  std::optional<uint64_t> semaphore_file_offset;
  bool has_semaphore() const { return semaphore != 0; }
};

// The USDT notes of an ELF object; malformed notes and probes outside the loaded segments are skipped.
std::vector<UsdtProbe> read_usdt_probes(const ElfFile& elf);

}  // namespace memlens::elf
