// Calls through the PLT (x86-64). In a shared library a function calls the library's own exported
// functions through the PLT (they can be interposed), so a call site targets a PLT stub, not the function.
// The GOT slot that .rela.plt assigns to the function identifies its stub: the one whose
// `jmp *slot(%rip)` reads that slot.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace memlens::elf {

class ElfFile;

// The GOT slot (vaddr) .rela.plt assigns to the .dynsym symbol `symbol`, nullopt without one.
std::optional<uint64_t> plt_got_slot(const ElfFile& elf, std::string_view symbol);
// Whether vaddr lies in .plt or .plt.sec.
bool in_plt(const ElfFile& elf, uint64_t vaddr);
// Whether the PLT stub at vaddr `stub` jumps through GOT slot `slot`.
bool plt_stub_uses_slot(const ElfFile& elf, uint64_t stub, uint64_t slot);

}  // namespace memlens::elf
