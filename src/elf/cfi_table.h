// An executable file's call-frame information (.eh_frame) compiled into the compact rows the BPF stack
// walker reads (include/memlens/abi.h, struct ml_unwind_row): for x86-64, per pc range, how to find the
// canonical frame address (rsp or rbp plus an offset; the PLT's known expression) and where the caller's
// rbp was saved; the return address is at CFA - 8. The CFI is interpreted by elfutils' libdw; the ranges
// come from .eh_frame_hdr's sorted table of functions.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/result.h"
#include "memlens/abi.h"

namespace memlens::elf {

struct CfiTable {
  std::vector<ml_unwind_row> rows;  // sorted by pc; a row runs until the next one
  uint64_t functions = 0;           // FDEs read
  uint64_t unsupported_rows = 0;    // rows of shapes the walker does not know (frame pointer there)
};

// Compiles the CFI of the ELF file open at fd (read with pread, never mapped). An error when the file has
// no usable .eh_frame/.eh_frame_hdr or they are corrupt: the caller names the file and falls back to frame
// pointers.
Result<CfiTable> compile_cfi(int fd, const std::string& display_name);

}  // namespace memlens::elf
