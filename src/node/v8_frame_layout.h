// V8's frame and object layout, read from its postmortem metadata: the v8dbg_* constants that the official
// Node binaries and Debian's libnode carry (frame slot offsets, class field offsets, instance types, tag
// constants). With it, a JS frame found by the stack walk is named from outside the process: the frame's
// function slot holds its JSFunction, whose SharedFunctionInfo gives the function's name, script and start
// position. A binary whose metadata lacks a field this needs is not understood, and says which.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "proc/procfs.h"

namespace memlens::elf {
class ElfFile;
}

namespace memlens::node {

struct V8FrameLayout {
  // Frames (from the frame pointer).
  int32_t off_fp_function = 0;  // the JSFunction of a JS frame
  int32_t off_fp_context = 0;   // its context, or a Smi frame-type marker in a typed (stub) frame
  // Field offsets from an object's start (its tagged address - 1).
  uint32_t heap_object_map = 0;
  uint32_t map_instance_type = 0;  // uint16
  uint32_t function_shared = 0;    // JSFunction::shared
  uint32_t sfi_name_or_scope_info = 0;
  uint32_t sfi_script = 0;  // SharedFunctionInfo::script (script_or_debug_info before V8 12)
  uint32_t script_name = 0;
  std::optional<uint32_t> script_line_ends;  // FixedArray of Smis once V8 computed them
  std::optional<uint32_t> script_source;
  uint32_t string_length = 0;  // int32
  uint32_t seq_one_byte_chars = 0, seq_two_byte_chars = 0;
  std::optional<uint32_t> cons_first, cons_second, thin_actual, sliced_parent, sliced_offset;
  std::optional<uint32_t> fixed_array_length, fixed_array_data;
  // ScopeInfo slots (after its map): where the context-local count is and where the variable part starts.
  std::optional<uint32_t> scope_info_ncontextlocals, scope_info_first_vars;
  // Instance types.
  uint16_t type_shared_function_info = 0, type_scope_info = 0, type_script = 0;
  uint16_t first_nonstring_type = 0;
  uint32_t string_representation_mask = 0, string_encoding_mask = 0, one_byte_string_tag = 0;
  uint32_t seq_string_tag = 0, cons_string_tag = 0, sliced_string_tag = 0, thin_string_tag = 0;
  // The embedded builtins (interpreter entry, bytecode handlers, baseline code run there): the span of
  // the binary's Builtins_* functions (the official node executables' .symtab has them; a stripped libnode
  // does not, and then its whole executable segment stands for them).
  uint64_t builtins_vaddr = 0, builtins_size = 0;
  bool builtins_from_symbols = false;
};

// Reads the layout from a binary holding V8. An error names the missing or unexpected metadata field, in
// words for the user (doctor and the report show it; the frames of that binary's processes keep their
// addresses).
Result<V8FrameLayout> read_v8_frame_layout(const elf::ElfFile& elf);

// Why JS frames of a binary's processes could not be named from its V8 metadata ("" when they can): what
// `run` asks before it starts node, to decide whether V8's perf map is needed for the names.
std::string v8_layout_problem(const std::string& binary_path);

// The V8 binary a process runs (its executable, or the libnode.so it maps) and its layout. error is set
// (and layout empty) when no mapped binary carries understood V8 metadata.
struct ProcessV8Layout {
  std::string binary;  // path as the process sees it
  std::optional<V8FrameLayout> layout;
  std::string error;
  uint64_t load_bias = 0;  // runtime address = file vaddr + load_bias
};
ProcessV8Layout v8_layout_for_process(pid_t pid, const std::vector<proc::MapEntry>& maps);

// The address ranges of a process where V8 runs JS: its embedded builtins and its anonymous executable
// mappings (JIT code), merged into at most max_ranges [start, end) ranges (closest neighbours first).
std::vector<std::pair<uint64_t, uint64_t>> v8_code_ranges(const ProcessV8Layout& v8,
                                                          const std::vector<proc::MapEntry>& maps,
                                                          size_t max_ranges);

}  // namespace memlens::node
