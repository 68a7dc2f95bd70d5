// A symbolized stack frame: the common currency between symbolize/ (which produces frames) and report/
// (which writes them as folded stacks, pprof and flame graphs). A frame that could not be named keeps its
// module and offset: it never vanishes.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace memlens::symbolize {

enum class FrameKind : uint8_t {
  kNative,   // named from an ELF symbol table
  kJs,       // named from V8's perf map (JIT code)
  kUnknown,  // not named: module + offset (or a bare address when no mapping covers it)
};

struct Frame {
  FrameKind kind = FrameKind::kUnknown;
  std::string function;        // demangled name; for kUnknown, "module+0xoffset" or "0xaddress"
  std::string module;          // path of the mapped file ("[anon]", "[perf-map]" for JIT code)
  std::string build_id;        // hex GNU build-id of module, empty when it has none
  uint64_t address = 0;        // absolute virtual address in the process
  uint64_t file_offset = 0;    // normalized: offset of address inside module's file
  uint64_t symbol_offset = 0;  // address - start of the named symbol (0 when unnamed)
  // Named after the nearest symbol before it, which does not cover it (a stripped file's internal function,
  // no debug file): function is then "name+0xoffset", never the bare name.
  bool inexact = false;

  // The label used in folded stacks and flame graphs: function, with " [js]" for JS frames.
  std::string label() const;
};

// A stack is root first (outermost caller at index 0, the allocating frame last), the order of folded
// stacks and of flame graphs.
using Stack = std::vector<Frame>;

}  // namespace memlens::symbolize
