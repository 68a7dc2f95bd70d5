// Fuzzes the ELF reader, the symbol table built on it and the unwind-table compiler (.eh_frame_hdr,
// .eh_frame through libdw): binaries are chosen by the traced process.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>

#include "elf/cfi_table.h"
#include "elf/elf_file.h"
#include "symbolize/module.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  int fd = memfd_create("elf-fuzz", MFD_CLOEXEC);
  if (fd < 0) return 0;
  if (write(fd, data, size) == static_cast<ssize_t>(size)) {
    auto f = memlens::elf::ElfFile::open(fd, "fuzz");
    if (f.ok()) {
      const auto& file = **f;
      for (const auto& s : file.symbols()) (void)file.symbol_at(s.address + 1);
      (void)file.notes();
      (void)file.find_symbol("main");
      (void)file.section_address(".text");
      if (auto off = file.vaddr_to_file_offset(0x1000)) (void)file.file_offset_to_vaddr(*off);
      auto module = memlens::symbolize::Module::load(file);
      if (auto hit = module->lookup(0x1000)) (void)module->demangled(*hit);
      if (auto near = module->nearest_before(0x1000)) (void)module->demangled(*near);
    }
    (void)memlens::elf::compile_cfi(fd, "fuzz");
  }
  close(fd);
  return 0;
}
