#include "elf/usdt.h"

#include <cstring>

#include "elf/elf_file.h"

namespace memlens::elf {
namespace {

uint64_t read_u64(const std::string& s, size_t at) {
  uint64_t v = 0;
  std::memcpy(&v, s.data() + at, sizeof v);
  return v;
}

}  // namespace

std::vector<UsdtProbe> read_usdt_probes(const ElfFile& elf) {
  std::vector<UsdtProbe> out;
  auto base_section = elf.section_address(".stapsdt.base");
  for (const auto& note : elf.notes()) {
    if (note.owner != "stapsdt" || note.type != 3 || note.desc.size() < 3 * 8 + 3) continue;
    UsdtProbe p;
    p.pc = read_u64(note.desc, 0);
    uint64_t base = read_u64(note.desc, 8);
    p.semaphore = read_u64(note.desc, 16);
    size_t at = 24;
    std::string* fields[] = {&p.provider, &p.name, &p.args};
    bool ok = true;
    for (auto* f : fields) {
      size_t end = note.desc.find('\0', at);
      if (end == std::string::npos) {
        ok = f == &p.args;  // args may lack its terminator in a truncated note
        *f = note.desc.substr(at);
        at = note.desc.size();
        break;
      }
      *f = note.desc.substr(at, end - at);
      at = end + 1;
    }
    if (!ok || p.provider.empty() || p.name.empty()) continue;
    // Prelink moves sections after the notes were written: the note records where .stapsdt.base was.
    if (base_section && base != 0) {
      int64_t delta = static_cast<int64_t>(*base_section - base);
      p.pc += delta;
      if (p.semaphore) p.semaphore += delta;
    }
    auto pc_off = elf.vaddr_to_file_offset(p.pc);
    if (!pc_off) continue;
    p.pc_file_offset = *pc_off;
    if (p.semaphore) p.semaphore_file_offset = elf.vaddr_to_file_offset(p.semaphore);
    out.push_back(std::move(p));
  }
  return out;
}

}  // namespace memlens::elf
