// The symbol side of one ELF file (blazesym's "symbolize" half): a compact, immutable table of its function
// symbols plus what is needed to turn a file offset into an address in the file's own address space.
// Modules are shared between processes through ModuleCache, keyed by build-id and by file identity.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/result.h"
#include "elf/elf_file.h"

namespace memlens::symbolize {

// Demangles an Itanium C++ name (abi::__cxa_demangle); returns the input unchanged when it is not a mangled
// name, cannot be demangled or is longer than kMaxDemangleInput (the demangler recurses on its input).
std::string demangle(std::string_view mangled);
inline constexpr size_t kMaxDemangleInput = 8192;

class Module {
 public:
  // Reads the function symbols of file (.dynsym and .symtab) into the compact table; a separate debug file
  // of it (same build-id) gives the .symtab a stripped file lacks.
  static std::shared_ptr<const Module> load(const elf::ElfFile& file, const elf::ElfFile* debug = nullptr);

  struct Hit {
    uint64_t start = 0;  // symbol address (file's address space)
    uint64_t size = 0;   // 0 when the symbol had none
    std::string_view mangled;
    uint32_t index = 0;  // for demangled()
  };
  // The function containing vaddr; unsized symbols extend to the next symbol within their segment.
  std::optional<Hit> lookup(uint64_t vaddr) const;
  // The nearest symbol at or before vaddr in the same segment, whether or not it covers vaddr.
  std::optional<Hit> nearest_before(uint64_t vaddr) const;
  // Whether every function of the file has a symbol (a .symtab, its own or a debug file's): a vaddr that no
  // symbol covers is then not in a function at all.
  bool has_all_functions() const { return has_all_functions_; }
  // The demangled name of a hit, computed once per symbol and kept (only names actually reported are
  // demangled). Thread-safe.
  std::string demangled(const Hit& hit) const;

  std::optional<uint64_t> file_offset_to_vaddr(uint64_t offset) const;
  std::optional<uint64_t> vaddr_to_file_offset(uint64_t vaddr) const;

  const std::string& path() const { return path_; }
  const std::string& build_id() const { return build_id_; }
  // The separate debug file whose symbols were read ("" when none).
  const std::string& debug_file() const { return debug_file_; }
  size_t symbol_count() const { return entries_.size(); }
  uint64_t skipped_symbols() const { return skipped_; }
  // Heap bytes held by this module (table, names, demangled names so far).
  size_t memory_bytes() const;

 private:
  Module() = default;
  struct Entry {  // 16 bytes: addresses are full width, sizes above 4 GiB are clamped
    uint64_t address;
    uint32_t size;
    uint32_t name_offset;  // into names_, NUL-terminated
  };
  std::string path_;
  std::string build_id_;
  std::string debug_file_;
  bool has_all_functions_ = false;
  std::vector<elf::LoadSegment> segments_;
  std::vector<Entry> entries_;  // sorted by address, one per address
  std::string names_;
  uint64_t skipped_ = 0;
  mutable std::mutex demangle_mutex_;
  mutable std::unordered_map<uint32_t, std::string> demangled_;
  mutable size_t demangled_bytes_ = 0;
};

// The directories searched for separate debug files by build-id: /usr/lib/debug, or MEMLENS_DEBUG_DIRS.
std::vector<std::string> debug_file_dirs();
// The separate debug file (with a .symtab) of file, found at path in pid's root (0: the host's), by build-id
// or by .gnu_debuglink; nullptr when none is installed.
std::unique_ptr<elf::ElfFile> find_debug_file(const elf::ElfFile& file, const std::string& path,
                                              pid_t pid = 0);

// Modules shared across processes. A file is looked up by its identity (device, inode, size, mtime) and
// then by build-id, so the same library in many processes or containers is read once. Thread-safe.
class ModuleCache {
 public:
  // The module of an open file (fd is only read). display_name is used in messages and Module::path(), and,
  // with pid (the process that maps it: its root is searched first), to find its debug file.
  Result<std::shared_ptr<const Module>> get(int fd, const std::string& display_name, pid_t pid = 0);
  size_t size() const;
  size_t memory_bytes() const;
  void clear();
  // The process-wide cache used when a ProcessSymbolizer is given none.
  static std::shared_ptr<ModuleCache> shared();

 private:
  mutable std::mutex mutex_;
  std::unordered_map<std::string, std::shared_ptr<const Module>> by_identity_;
  std::unordered_map<std::string, std::shared_ptr<const Module>> by_build_id_;
};

}  // namespace memlens::symbolize
