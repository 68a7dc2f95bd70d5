// Names of JS functions read from a live node process's heap (process_vm_readv), from the address of
// their SharedFunctionInfo (which the BPF stack walk takes from each JS frame) and the V8 layout of the
// binary (node/v8_frame_layout.h): the function name (name_or_scope_info: a String, or a ScopeInfo that
// holds it), its script's name (Script::name) and the line of its start (from the script's line ends
// when V8 computed them, else from its source; the character offset when neither can be read).
// Results are cached per SharedFunctionInfo address and re-validated cheaply on each use: a GC may move
// or free the object, and then the address is read again.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "node/v8_frame_layout.h"

namespace memlens::node {

struct JsFunctionName {
  std::string function;   // "(anonymous)" when V8 has no name for it, as V8's stack traces say
  std::string script;     // Script::name; empty when the function has no script (a builtin) or it is unnamed
  uint32_t line = 0;      // 1-based line of the function's start; 0 when unknown
  int64_t position = -1;  // character offset of the function's start in its script; -1 when unknown

  // "function script:LINE"; "function script (char N)" when only the offset is known; "function script"
  // or "function" with less.
  std::string label() const;
};

struct V8FunctionStats {
  uint64_t resolved = 0;      // SharedFunctionInfos named
  uint64_t not_function = 0;  // addresses that were not a SharedFunctionInfo (a stale or wrong frame read)
  uint64_t revalidated = 0;   // cached names found changed and read again
};

class V8FunctionNames {
 public:
  V8FunctionNames(pid_t pid, V8FrameLayout layout) : pid_(pid), l_(std::move(layout)) {}

  // The name of the function whose SharedFunctionInfo is at sfi (its untagged address), read now and
  // cached; nullopt when that is not a SharedFunctionInfo (or the process is gone and it was never read).
  std::optional<JsFunctionName> resolve(uint64_t sfi);
  // Starts a batch of resolves taken as one instant (a scan of the new stacks): a function checked once in
  // the batch is not read again in it. The same functions are on most stacks of a process, and each check
  // is three reads of its memory.
  void begin_batch() {
    ++batch_;
    in_batch_ = true;
  }
  void end_batch() { in_batch_ = false; }
  // From the cache only (after the process exited).
  std::optional<JsFunctionName> cached(uint64_t sfi) const;

  const V8FunctionStats& stats() const { return stats_; }
  pid_t pid() const { return pid_; }

 private:
  struct Entry {
    uint64_t name_or_scope_info = 0;  // the raw field when read: a cheap identity for re-validation
    std::optional<JsFunctionName> name;
    uint64_t batch = 0;  // the batch it was last checked in
  };
  bool read(uint64_t addr, void* out, size_t n) const;
  std::optional<uint64_t> read_word(uint64_t addr) const;
  std::optional<uint64_t> heap_object_at(uint64_t addr) const;  // the untagged object a field points to
  std::optional<uint16_t> instance_type(uint64_t obj) const;
  std::optional<int32_t> string_length(uint64_t obj) const;
  bool append_chars(uint64_t obj, uint32_t start, uint32_t count, std::u16string& out, int depth) const;
  std::optional<std::string> read_string(uint64_t obj, uint32_t max_chars) const;
  std::optional<std::string> scope_info_name(uint64_t scope_info, int64_t& position) const;
  const std::vector<uint32_t>* line_ends(uint64_t script);
  std::optional<JsFunctionName> read_function(uint64_t sfi, uint64_t name_or_scope_info);

  pid_t pid_;
  V8FrameLayout l_;
  std::unordered_map<uint64_t, Entry> sfis_;
  std::unordered_map<uint64_t, std::vector<uint32_t>> scripts_;  // script address -> line ends
  V8FunctionStats stats_;
  uint64_t batch_ = 0;
  bool in_batch_ = false;  // outside a batch every resolve checks the process's memory
};

}  // namespace memlens::node
