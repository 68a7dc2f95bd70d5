#include "elf/elf_file.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <gelf.h>
#include <libelf.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "common/text.h"

namespace memlens::elf {

namespace {

bool libelf_ready() {
  static const bool ready = elf_version(EV_CURRENT) != EV_NONE;
  return ready;
}

std::string elf_error_text() {
  const char* msg = elf_errmsg(-1);
  return msg ? msg : "unknown libelf error";
}

// One libelf descriptor over the file, read with pread (ELF_C_READ, never mmap). Each operation that needs
// section data opens its own and drops it at the end, so the data libelf buffered does not stay resident.
class ElfHandle {
 public:
  explicit ElfHandle(int fd) : elf_(libelf_ready() ? elf_begin(fd, ELF_C_READ, nullptr) : nullptr) {}
  ~ElfHandle() {
    if (elf_) elf_end(elf_);
  }
  ElfHandle(const ElfHandle&) = delete;
  ElfHandle& operator=(const ElfHandle&) = delete;
  Elf* get() const { return elf_; }

 private:
  Elf* elf_;
};

std::string bounded_string(const char* s, size_t max) {
  if (!s) return {};
  return std::string(s, strnlen(s, max));
}

std::string to_hex(const std::string& bytes) {
  static const char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 15]);
  }
  return out;
}

// Walks the notes in one block of note data (a section or a PT_NOTE segment). gelf_getnote checks each
// header against the block's size; descriptors above the bound are skipped.
void collect_notes(Elf_Data* data, uint64_t section_address, std::vector<Note>* out) {
  if (!data || !data->d_buf) return;
  size_t offset = 0;
  GElf_Nhdr nhdr;
  size_t name_off = 0, desc_off = 0;
  while (out->size() < ElfLimits::kMaxNotes && offset < data->d_size) {
    size_t next = gelf_getnote(data, offset, &nhdr, &name_off, &desc_off);
    if (next == 0 || next <= offset) break;
    offset = next;
    if (nhdr.n_descsz > ElfLimits::kMaxNoteDescBytes) continue;
    const char* base = static_cast<const char*>(data->d_buf);
    Note n;
    n.owner = bounded_string(base + name_off, nhdr.n_namesz);
    n.type = nhdr.n_type;
    n.desc.assign(base + desc_off, nhdr.n_descsz);
    n.section_address = section_address;
    out->push_back(std::move(n));
  }
}

std::vector<Note> read_notes(Elf* elf, bool have_sections) {
  std::vector<Note> out;
  bool any_section = false;
  if (have_sections) {
    Elf_Scn* scn = nullptr;
    size_t count = 0;
    while ((scn = elf_nextscn(elf, scn)) != nullptr && count++ < ElfLimits::kMaxSections) {
      GElf_Shdr shdr;
      if (!gelf_getshdr(scn, &shdr) || shdr.sh_type != SHT_NOTE) continue;
      any_section = true;
      if (shdr.sh_size > ElfLimits::kMaxSectionBytes) continue;
      collect_notes(elf_getdata(scn, nullptr), shdr.sh_addr, &out);
    }
  }
  if (any_section) return out;
  // No section headers (a stripped or hand-made file): the loader's view, PT_NOTE segments.
  size_t phnum = 0;
  if (elf_getphdrnum(elf, &phnum) != 0) return out;
  for (size_t i = 0; i < phnum && i < ElfLimits::kMaxSections; ++i) {
    GElf_Phdr ph;
    if (!gelf_getphdr(elf, static_cast<int>(i), &ph) || ph.p_type != PT_NOTE) continue;
    if (ph.p_filesz == 0 || ph.p_filesz > ElfLimits::kMaxSectionBytes) continue;
    Elf_Data* data = elf_getdata_rawchunk(elf, static_cast<int64_t>(ph.p_offset), ph.p_filesz,
                                          ph.p_align == 8 ? ELF_T_NHDR8 : ELF_T_NHDR);
    collect_notes(data, ph.p_vaddr, &out);
  }
  return out;
}

}  // namespace

ElfFile::~ElfFile() = default;

Result<std::unique_ptr<ElfFile>> ElfFile::open(int fd, std::string display_name) {
  if (!libelf_ready()) return make_error("libelf initialisation failed: " + elf_error_text());
  int dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (dup_fd < 0) return errno_error("cannot duplicate the descriptor of " + display_name);
  std::unique_ptr<ElfFile> file(new ElfFile());
  file->fd_ = UniqueFd(dup_fd);
  file->display_name_ = std::move(display_name);
  struct stat st {};
  if (fstat(dup_fd, &st) != 0) return errno_error("cannot stat " + file->display_name_);
  if (!S_ISREG(st.st_mode)) return make_error(file->display_name_ + " is not a regular file", EINVAL);
  file->device_ = st.st_dev;
  file->inode_ = st.st_ino;
  file->file_size_ = static_cast<uint64_t>(st.st_size);
  if (auto s = file->load_headers(); !s) return s.error();
  return file;
}

Result<std::unique_ptr<ElfFile>> ElfFile::open_path(const std::string& host_path) {
  auto opened = open_regular_file(host_path);
  if (!opened) return opened.error();
  return open(opened->fd.get(), host_path);
}

Status ElfFile::load_headers() {
  ElfHandle h(fd_.get());
  Elf* elf = h.get();
  if (!elf)
    return make_error(fmt::format("{}: cannot read as ELF: {}", display_name_, elf_error_text()), EINVAL);
  if (elf_kind(elf) != ELF_K_ELF) return make_error(display_name_ + " is not an ELF file", ENOEXEC);
  GElf_Ehdr ehdr;
  if (!gelf_getehdr(elf, &ehdr))
    return make_error(fmt::format("{}: bad ELF header: {}", display_name_, elf_error_text()), ENOEXEC);
  elf_type_ = ehdr.e_type;
  is_dyn_ = ehdr.e_type == ET_DYN;

  size_t phnum = 0;
  if (elf_getphdrnum(elf, &phnum) == 0) {
    for (size_t i = 0; i < phnum && i < ElfLimits::kMaxSections; ++i) {
      GElf_Phdr ph;
      if (!gelf_getphdr(elf, static_cast<int>(i), &ph)) continue;
      if (ph.p_type == PT_INTERP) interp_ = {ph.p_offset, ph.p_filesz};
      if (ph.p_type != PT_LOAD) continue;
      load_segments_.push_back(
          LoadSegment{ph.p_vaddr, ph.p_memsz, ph.p_offset, ph.p_filesz, (ph.p_flags & PF_X) != 0});
    }
  }

  size_t shstrndx = 0;
  bool have_names = elf_getshdrstrndx(elf, &shstrndx) == 0;
  Elf_Scn* scn = nullptr;
  while ((scn = elf_nextscn(elf, scn)) != nullptr && sections_.size() < ElfLimits::kMaxSections) {
    GElf_Shdr shdr;
    if (!gelf_getshdr(scn, &shdr)) continue;
    SectionInfo s;
    if (have_names) s.name = bounded_string(elf_strptr(elf, shstrndx, shdr.sh_name), 256);
    s.type = shdr.sh_type;
    s.address = shdr.sh_addr;
    s.file_offset = shdr.sh_offset;
    s.size = shdr.sh_size;
    if (shdr.sh_type == SHT_SYMTAB && shdr.sh_size > 0) has_symtab_ = true;
    if (shdr.sh_type == SHT_DYNSYM && shdr.sh_size > 0) has_dynsym_ = true;
    sections_.push_back(std::move(s));
  }

  for (const Note& n : read_notes(elf, !sections_.empty())) {
    if (n.owner == "GNU" && n.type == NT_GNU_BUILD_ID && !n.desc.empty() && n.desc.size() <= 64) {
      build_id_ = to_hex(n.desc);
      break;
    }
  }
  return {};
}

Result<uint64_t> ElfFile::visit_symbols(const std::function<void(const SymbolView&)>& visit) const {
  return visit_symbols(visit, true, true);
}

Result<uint64_t> ElfFile::visit_symbols(const std::function<void(const SymbolView&)>& visit, bool dynsym,
                                        bool symtab) const {
  uint64_t skipped = 0;
  // .dynsym first: it is what the dynamic linker exports, and find_symbol prefers it.
  for (uint32_t wanted : {static_cast<uint32_t>(SHT_DYNSYM), static_cast<uint32_t>(SHT_SYMTAB)}) {
    if ((wanted == SHT_DYNSYM && !dynsym) || (wanted == SHT_SYMTAB && !symtab)) continue;
    // A descriptor per table: libelf keeps the data it read until elf_end.
    ElfHandle h(fd_.get());
    Elf* elf = h.get();
    if (!elf)
      return make_error(fmt::format("{}: cannot read as ELF: {}", display_name_, elf_error_text()), EINVAL);
    Elf_Scn* scn = nullptr;
    size_t seen = 0;
    while ((scn = elf_nextscn(elf, scn)) != nullptr && seen++ < ElfLimits::kMaxSections) {
      GElf_Shdr shdr;
      if (!gelf_getshdr(scn, &shdr) || shdr.sh_type != wanted || shdr.sh_size == 0) continue;
      if (shdr.sh_size > ElfLimits::kMaxSectionBytes) {
        ++skipped;
        continue;
      }
      Elf_Data* data = elf_getdata(scn, nullptr);
      if (!data || !data->d_buf) {
        ++skipped;
        continue;
      }
      size_t entsize = gelf_fsize(elf, ELF_T_SYM, 1, EV_CURRENT);
      if (entsize == 0) continue;
      uint64_t count = data->d_size / entsize;
      if (count > ElfLimits::kMaxSymbolsPerTable) {
        skipped += count - ElfLimits::kMaxSymbolsPerTable;
        count = ElfLimits::kMaxSymbolsPerTable;
      }
      for (uint64_t i = 1; i < count; ++i) {  // entry 0 is the reserved null symbol
        GElf_Sym sym;
        if (!gelf_getsym(data, static_cast<int>(i), &sym)) {
          ++skipped;
          continue;
        }
        int type = GELF_ST_TYPE(sym.st_info);
        bool is_function = type == STT_FUNC || type == STT_GNU_IFUNC;
        if (!is_function && type != STT_OBJECT) continue;
        if (sym.st_shndx == SHN_UNDEF || sym.st_shndx == SHN_ABS || sym.st_name == 0) continue;
        // elf_strptr checks the offset against the string section and that the string ends inside it.
        const char* name = elf_strptr(elf, shdr.sh_link, sym.st_name);
        if (!name) {
          ++skipped;
          continue;
        }
        size_t len = strnlen(name, ElfLimits::kMaxNameBytes + 1);
        if (len == 0) continue;
        if (len > ElfLimits::kMaxNameBytes) {
          ++skipped;
          continue;
        }
        visit(SymbolView{std::string_view(name, len), sym.st_value, sym.st_size, is_function,
                         wanted == SHT_DYNSYM});
      }
    }
  }
  return skipped;
}

void ElfFile::load_symbols_once() const {
  std::call_once(symbols_once_, [this] {
    std::vector<Symbol> all;
    // A file we cannot read symbols from simply has none: per-address lookups then fail as values.
    (void)visit_symbols([&](const SymbolView& s) {
      all.push_back(Symbol{std::string(s.name), s.address, s.size, s.is_function, s.from_dynsym});
    });
    std::sort(all.begin(), all.end(), [](const Symbol& a, const Symbol& b) {
      if (a.address != b.address) return a.address < b.address;
      if (a.name != b.name) return a.name < b.name;
      return a.from_dynsym > b.from_dynsym;
    });
    // The same symbol in both tables appears once, marked as exported.
    std::vector<Symbol> unique;
    unique.reserve(all.size());
    for (Symbol& s : all) {
      if (!unique.empty() && unique.back().address == s.address && unique.back().name == s.name) {
        unique.back().from_dynsym |= s.from_dynsym;
        unique.back().size = std::max(unique.back().size, s.size);
        continue;
      }
      unique.push_back(std::move(s));
    }
    symbols_ = std::move(unique);
    for (uint32_t i = 0; i < symbols_.size(); ++i)
      if (symbols_[i].is_function) functions_.push_back(i);
    // Name lookups by hash: sorting 185,000 names (node's .symtab) by their text took most of the time of
    // planning probes; sorting their hashes takes a few milliseconds.
    std::hash<std::string_view> hash;
    by_name_.reserve(symbols_.size());
    for (uint32_t i = 0; i < symbols_.size(); ++i) {
      std::string_view name = symbols_[i].name;
      by_name_.emplace_back(hash(name), i);
      // GCC's clones ("f.isra.0", "f.constprop.0", "f.cold") under the name they were cloned from.
      if (auto dot = name.find('.'); dot != std::string_view::npos && dot > 0)
        clone_bases_.emplace_back(hash(name.substr(0, dot)), i);
    }
    std::sort(by_name_.begin(), by_name_.end());
    std::sort(clone_bases_.begin(), clone_bases_.end());
  });
}

const std::vector<Symbol>& ElfFile::symbols() const {
  load_symbols_once();
  return symbols_;
}

bool ElfFile::Prefetched::covers_name(std::string_view name) const {
  if (names.count(name)) return true;
  for (const auto& p : prefixes)
    if (name.starts_with(p)) return true;
  return false;
}

bool ElfFile::Prefetched::covers_prefix(std::string_view prefix) const {
  // "name." asks for the clones of a prefetched name.
  if (prefix.size() > 1 && prefix.back() == '.' && names.count(prefix.substr(0, prefix.size() - 1)))
    return true;
  for (const auto& p : prefixes)
    if (prefix.starts_with(p)) return true;
  return false;
}

void ElfFile::prefetch(const std::vector<std::string>& names,
                       const std::vector<std::string>& prefixes) const {
  Prefetched pf;
  pf.names.insert(names.begin(), names.end());
  pf.prefixes = prefixes;
  std::vector<Symbol> all;
  auto visited = visit_symbols([&](const SymbolView& s) {
    std::string_view base = s.name.substr(0, s.name.find('.'));
    bool wanted = pf.names.count(base) != 0;  // the name itself or one of its clones
    for (size_t i = 0; !wanted && i < pf.prefixes.size(); ++i) wanted = s.name.starts_with(pf.prefixes[i]);
    if (wanted) all.push_back(Symbol{std::string(s.name), s.address, s.size, s.is_function, s.from_dynsym});
  });
  if (!visited.ok()) return;  // unreadable tables: the full path reports as it always did
  std::sort(all.begin(), all.end(), [](const Symbol& a, const Symbol& b) {
    if (a.address != b.address) return a.address < b.address;
    if (a.name != b.name) return a.name < b.name;
    return a.from_dynsym > b.from_dynsym;
  });
  for (Symbol& s : all) {
    if (!pf.symbols.empty() && pf.symbols.back().address == s.address && pf.symbols.back().name == s.name) {
      pf.symbols.back().from_dynsym |= s.from_dynsym;
      pf.symbols.back().size = std::max(pf.symbols.back().size, s.size);
      continue;
    }
    pf.symbols.push_back(std::move(s));
  }
  prefetched_ = std::move(pf);
}

std::optional<Symbol> ElfFile::find_symbol(std::string_view mangled) const {
  if (prefetched_ && prefetched_->covers_name(mangled)) {
    const Symbol* best = nullptr;
    for (const Symbol& s : prefetched_->symbols)
      if (s.name == mangled && (!best || (s.from_dynsym && !best->from_dynsym))) best = &s;
    if (best) return *best;
    return std::nullopt;
  }
  load_symbols_once();
  // Of the symbols with this name, the exported one, else the first by address.
  uint64_t h = std::hash<std::string_view>()(mangled);
  auto it = std::lower_bound(by_name_.begin(), by_name_.end(), std::make_pair(h, uint32_t{0}));
  const Symbol* best = nullptr;
  for (; it != by_name_.end() && it->first == h; ++it) {
    const Symbol& s = symbols_[it->second];
    if (s.name != mangled) continue;
    if (!best || (s.from_dynsym && !best->from_dynsym)) best = &s;
  }
  if (best) return *best;
  return std::nullopt;
}

std::vector<Symbol> ElfFile::find_symbols_with_prefix(std::string_view prefix) const {
  std::vector<Symbol> out;
  if (prefetched_ && prefetched_->covers_prefix(prefix)) {
    for (const Symbol& s : prefetched_->symbols)
      if (std::string_view(s.name).starts_with(prefix)) out.push_back(s);
    return out;
  }
  load_symbols_once();
  // "name." asks for the clones of name: looked up by the name they were cloned from.
  if (prefix.size() > 1 && prefix.back() == '.' && prefix.find('.') == prefix.size() - 1) {
    uint64_t h = std::hash<std::string_view>()(prefix.substr(0, prefix.size() - 1));
    std::vector<uint32_t> found;
    for (auto it = std::lower_bound(clone_bases_.begin(), clone_bases_.end(), std::make_pair(h, uint32_t{0}));
         it != clone_bases_.end() && it->first == h; ++it)
      if (std::string_view(symbols_[it->second].name).starts_with(prefix)) found.push_back(it->second);
    std::sort(found.begin(), found.end());  // address order, as a scan of the table gives them
    for (uint32_t i : found) out.push_back(symbols_[i]);
    return out;
  }
  for (const Symbol& s : symbols_)
    if (std::string_view(s.name).starts_with(prefix)) out.push_back(s);
  return out;
}

const Symbol* ElfFile::symbol_at(uint64_t vaddr) const {
  load_symbols_once();
  auto it = std::upper_bound(functions_.begin(), functions_.end(), vaddr,
                             [this](uint64_t v, uint32_t idx) { return v < symbols_[idx].address; });
  if (it == functions_.begin()) return nullptr;
  size_t nearest = static_cast<size_t>(it - functions_.begin()) - 1;
  uint64_t nearest_address = symbols_[functions_[nearest]].address;
  const Symbol* unsized = nullptr;
  // Aliases and nested symbols share or precede the nearest start: look back a little for one that covers.
  for (size_t step = 0; step < 16 && step <= nearest; ++step) {
    const Symbol& s = symbols_[functions_[nearest - step]];
    if (s.size > 0) {
      if (vaddr - s.address < s.size) return &s;
    } else if (!unsized && s.address == nearest_address) {
      unsized = &s;
    }
  }
  if (!unsized) return nullptr;
  // An unsized symbol extends to the next function, but not beyond the segment that holds it.
  for (const LoadSegment& seg : load_segments_) {
    if (unsized->address >= seg.vaddr && unsized->address - seg.vaddr < seg.memsz)
      return vaddr - seg.vaddr < seg.memsz ? unsized : nullptr;
  }
  return load_segments_.empty() ? unsized : nullptr;
}

std::vector<Note> ElfFile::notes() const {
  ElfHandle h(fd_.get());
  if (!h.get()) return {};
  return read_notes(h.get(), !sections_.empty());
}

ElfFile::DynamicInfo ElfFile::dynamic_info() const {
  DynamicInfo out;
  ElfHandle h(fd_.get());
  if (!h.get()) return out;
  Elf* elf = h.get();
  Elf_Scn* scn = nullptr;
  size_t seen = 0;
  std::vector<std::string> runpath, rpath;
  auto split_path = [](std::string_view s, std::vector<std::string>& into) {
    for (auto dir : split(s, ':'))
      if (!dir.empty()) into.emplace_back(dir);
  };
  while ((scn = elf_nextscn(elf, scn)) != nullptr && seen++ < ElfLimits::kMaxSections) {
    GElf_Shdr shdr;
    if (!gelf_getshdr(scn, &shdr) || shdr.sh_type != SHT_DYNAMIC ||
        shdr.sh_size > ElfLimits::kMaxSectionBytes)
      continue;
    Elf_Data* data = elf_getdata(scn, nullptr);
    if (!data || !data->d_buf) continue;
    size_t entsize = gelf_fsize(elf, ELF_T_DYN, 1, EV_CURRENT);
    if (entsize == 0) continue;
    size_t count = data->d_size / entsize;
    for (size_t i = 0; i < count; ++i) {
      GElf_Dyn dyn;
      if (!gelf_getdyn(data, static_cast<int>(i), &dyn) || dyn.d_tag == DT_NULL) break;
      if (dyn.d_tag != DT_NEEDED && dyn.d_tag != DT_RUNPATH && dyn.d_tag != DT_RPATH) continue;
      const char* s = elf_strptr(elf, shdr.sh_link, dyn.d_un.d_val);
      if (!s) continue;
      std::string_view v(s, strnlen(s, ElfLimits::kMaxNameBytes + 1));
      if (v.empty() || v.size() > ElfLimits::kMaxNameBytes) continue;
      if (dyn.d_tag == DT_NEEDED && out.needed.size() < 1024) out.needed.emplace_back(v);
      if (dyn.d_tag == DT_RUNPATH) split_path(v, runpath);
      if (dyn.d_tag == DT_RPATH) split_path(v, rpath);
    }
    break;  // one dynamic section
  }
  // ld.so ignores DT_RPATH when DT_RUNPATH is present.
  out.search_path = runpath.empty() ? std::move(rpath) : std::move(runpath);
  // PT_INTERP, as the kernel reads it (a file without section headers has it too).
  if (interp_ && interp_->second >= 2 && interp_->second <= ElfLimits::kMaxNameBytes) {
    if (auto bytes = read_at(interp_->first, interp_->second)) {
      std::string_view v(reinterpret_cast<const char*>(bytes->data()), bytes->size());
      v = v.substr(0, v.find('\0'));
      if (!v.empty() && v.front() == '/') out.interpreter = v;
    }
  }
  return out;
}

std::optional<uint64_t> ElfFile::section_address(std::string_view name) const {
  for (const SectionInfo& s : sections_)
    if (s.name == name) return s.address;
  return std::nullopt;
}

std::optional<uint64_t> ElfFile::vaddr_to_file_offset(uint64_t vaddr) const {
  for (const LoadSegment& seg : load_segments_)
    if (vaddr >= seg.vaddr && vaddr - seg.vaddr < seg.filesz) return seg.file_offset + (vaddr - seg.vaddr);
  return std::nullopt;
}

Result<std::vector<uint8_t>> ElfFile::read_at(uint64_t offset, size_t size) const {
  std::vector<uint8_t> out(size);
  ssize_t got = pread(fd_.get(), out.data(), size, static_cast<off_t>(offset));
  if (got < 0) return errno_error(fmt::format("{}: read at {:#x}", display_name_, offset));
  out.resize(static_cast<size_t>(got));
  return out;
}

std::optional<uint64_t> ElfFile::file_offset_to_vaddr(uint64_t offset) const {
  for (const LoadSegment& seg : load_segments_)
    if (offset >= seg.file_offset && offset - seg.file_offset < seg.filesz)
      return seg.vaddr + (offset - seg.file_offset);
  return std::nullopt;
}

}  // namespace memlens::elf
