// Read-only access to an ELF file through libelf: program headers, section headers, notes, build-id and the
// symbol tables. Files are read with pread (ELF_C_READ), never mapped: a binary that the traced process can
// write must not be able to change what we read after we checked it, nor fault us with SIGBUS by
// truncating it. Everything read from the file is bounded (symbol counts, string lengths, note sizes).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "common/safe_file.h"

namespace memlens::elf {

struct Symbol {
  std::string name;      // as stored, mangled
  uint64_t address = 0;  // st_value: vaddr in the file's own address space
  uint64_t size = 0;
  bool is_function = false;
  bool from_dynsym = false;
};

struct LoadSegment {
  uint64_t vaddr = 0, memsz = 0, file_offset = 0, filesz = 0;
  bool exec = false;
};

struct Note {
  std::string owner;
  uint32_t type = 0;
  std::string desc;              // raw bytes
  uint64_t section_address = 0;  // sh_addr of the note section (USDT needs .stapsdt.base)
};

struct SectionInfo {
  std::string name;
  uint32_t type = 0;     // SHT_*
  uint64_t address = 0;  // sh_addr
  uint64_t file_offset = 0;
  uint64_t size = 0;
};

// Limits on what a file may make us allocate. A real node binary has ~150k symbols and a ~15 MB .strtab;
// these are far above that and far below what would hurt.
struct ElfLimits {
  static constexpr uint64_t kMaxSymbolsPerTable = 8u << 20;
  static constexpr uint64_t kMaxSectionBytes = 512ull << 20;  // one section's data read into memory
  static constexpr size_t kMaxNameBytes = 64 << 10;           // longer names are skipped
  static constexpr uint64_t kMaxNoteDescBytes = 1 << 20;
  static constexpr size_t kMaxNotes = 1 << 20;
  static constexpr size_t kMaxSections = 1 << 16;
};

// A symbol as the streaming visitor sees it: the name points into a buffer that lives only during the call.
struct SymbolView {
  std::string_view name;
  uint64_t address = 0;
  uint64_t size = 0;
  bool is_function = false;
  bool from_dynsym = false;
};

class ElfFile {
 public:
  // Dups fd; the caller keeps its own.
  static Result<std::unique_ptr<ElfFile>> open(int fd, std::string display_name);
  // Opens a host path through open_regular_file (a symlink in the last component is refused).
  static Result<std::unique_ptr<ElfFile>> open_path(const std::string& host_path);

  ~ElfFile();
  ElfFile(const ElfFile&) = delete;
  ElfFile& operator=(const ElfFile&) = delete;

  const std::string& display_name() const { return display_name_; }
  const std::string& build_id() const { return build_id_; }  // lowercase hex of NT_GNU_BUILD_ID, "" if none
  bool is_dyn() const { return is_dyn_; }                    // ET_DYN: PIE executable or shared object
  uint16_t elf_type() const { return elf_type_; }            // ET_*
  const std::vector<LoadSegment>& load_segments() const { return load_segments_; }
  const std::vector<SectionInfo>& sections() const { return sections_; }
  bool has_symtab() const { return has_symtab_; }
  bool has_dynsym() const { return has_dynsym_; }

  // Functions and objects of .dynsym and .symtab (defined ones, non-empty names), read once on first use,
  // sorted by address. A symbol present in both tables appears once, with from_dynsym set.
  const std::vector<Symbol>& symbols() const;
  std::optional<Symbol> find_symbol(std::string_view mangled) const;  // .dynsym first, then .symtab
  std::vector<Symbol> find_symbols_with_prefix(std::string_view prefix) const;
  // Keeps, in one streaming pass, only the symbols named in `names`, their GCC clones ("name.isra.0", ...)
  // and those starting with one of `prefixes`; later find_symbol / find_symbols_with_prefix calls that
  // these cover are answered from them, without loading (and sorting) the whole tables. Probe planning
  // asks for a few dozen names of node's 185,000: this takes it from 130 to a few ms. Call it before the
  // file is shared between threads.
  void prefetch(const std::vector<std::string>& names, const std::vector<std::string>& prefixes) const;
  // The function containing vaddr (size-0 symbols extend to the next function, within their segment).
  const Symbol* symbol_at(uint64_t vaddr) const;

  // Streams the defined function and object symbols of .dynsym then .symtab without keeping them: callers
  // that build their own compact index (symbolize/) use this instead of symbols(). Returns the number of
  // symbols skipped as malformed (name too long, table truncated) or an error if the tables are unreadable.
  Result<uint64_t> visit_symbols(const std::function<void(const SymbolView&)>& visit) const;
  // The same for one table at a time: the section data of each table is dropped before the next is read,
  // which halves the peak memory of reading a large binary such as node.
  Result<uint64_t> visit_symbols(const std::function<void(const SymbolView&)>& visit, bool dynsym,
                                 bool symtab) const;

  std::vector<Note> notes() const;  // all SHT_NOTE sections (PT_NOTE segments when there are no sections)
  // What the dynamic loader reads from .dynamic: the libraries it needs (DT_NEEDED, in order) and where it
  // looks for them first (DT_RUNPATH, else DT_RPATH, split at ':'; "$ORIGIN" left for the caller).
  struct DynamicInfo {
    std::vector<std::string> needed;
    std::vector<std::string> search_path;
    std::string interpreter;  // the dynamic loader the file names (PT_INTERP): an executable's; "" if none
  };
  DynamicInfo dynamic_info() const;
  std::optional<uint64_t> section_address(std::string_view name) const;  // sh_addr, e.g. ".stapsdt.base"
  std::optional<uint64_t> vaddr_to_file_offset(uint64_t vaddr) const;
  std::optional<uint64_t> file_offset_to_vaddr(uint64_t offset) const;
  // Up to `size` bytes of the file from `offset` (fewer at its end), e.g. a function's code.
  Result<std::vector<uint8_t>> read_at(uint64_t offset, size_t size) const;

  // Identity of the opened file, for caches keyed by (device, inode).
  uint64_t device() const { return device_; }
  uint64_t inode() const { return inode_; }
  uint64_t file_size() const { return file_size_; }

 private:
  ElfFile() = default;
  Status load_headers();
  void load_symbols_once() const;

  UniqueFd fd_;
  std::string display_name_;
  std::string build_id_;
  bool is_dyn_ = false;
  uint16_t elf_type_ = 0;
  bool has_symtab_ = false, has_dynsym_ = false;
  uint64_t device_ = 0, inode_ = 0, file_size_ = 0;
  std::vector<LoadSegment> load_segments_;
  std::optional<std::pair<uint64_t, uint64_t>> interp_;  // PT_INTERP's file offset and size
  std::vector<SectionInfo> sections_;

  mutable std::once_flag symbols_once_;  // symbols are loaded lazily, safely from any thread
  mutable std::vector<Symbol> symbols_;
  mutable std::vector<uint32_t> functions_;  // indices into symbols_ of functions, by address
  struct Prefetched {
    std::set<std::string, std::less<>> names;
    std::vector<std::string> prefixes;
    std::vector<Symbol> symbols;  // by address, merged across the two tables like symbols()
    bool covers_name(std::string_view name) const;
    bool covers_prefix(std::string_view prefix) const;
  };
  mutable std::optional<Prefetched> prefetched_;
  mutable std::vector<std::pair<uint64_t, uint32_t>> by_name_;  // (hash of name, index), sorted
  mutable std::vector<std::pair<uint64_t, uint32_t>>
      clone_bases_;  // (hash of name before '.', index), sorted
};

}  // namespace memlens::elf
