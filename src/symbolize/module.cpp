#include "symbolize/module.h"

#include <cxxabi.h>
#include <fmt/format.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <limits>

namespace memlens::symbolize {

std::string demangle(std::string_view mangled) {
  if (mangled.size() < 3 || mangled.substr(0, 2) != "_Z" || mangled.size() > kMaxDemangleInput)
    return std::string(mangled);
  std::string input(mangled);  // __cxa_demangle needs a NUL-terminated string
  int status = 0;
  char* out = abi::__cxa_demangle(input.c_str(), nullptr, nullptr, &status);
  if (status != 0 || !out) {
    std::free(out);
    return input;
  }
  std::string result(out);
  std::free(out);
  return result;
}

std::shared_ptr<const Module> Module::load(const elf::ElfFile& file, const elf::ElfFile* debug) {
  std::shared_ptr<Module> m(new Module());
  m->path_ = file.display_name();
  m->build_id_ = file.build_id();
  m->segments_ = file.load_segments();

  struct Raw {
    uint64_t address;
    uint32_t size;
    uint32_t name_offset;  // into arena
  };
  auto clamp = [](uint64_t size) {
    return size > std::numeric_limits<uint32_t>::max() ? std::numeric_limits<uint32_t>::max()
                                                       : static_cast<uint32_t>(size);
  };
  std::vector<Raw> raw;
  std::string arena;
  auto add = [&](const elf::SymbolView& s) {
    if (arena.size() + s.name.size() + 1 > std::numeric_limits<uint32_t>::max()) return;
    raw.push_back(Raw{s.address, clamp(s.size), static_cast<uint32_t>(arena.size())});
    arena.append(s.name);
    arena.push_back('\0');
  };
  // Exported names first. .symtab mostly repeats them; its symbols at an address .dynsym already names
  // with a size are not even copied, which keeps the peak of reading node's ~150k symbols low.
  auto dyn = file.visit_symbols(
      [&](const elf::SymbolView& s) {
        if (s.is_function && s.address != 0) add(s);
      },
      true, false);
  if (dyn.ok()) m->skipped_ += *dyn;
  std::sort(raw.begin(), raw.end(), [](const Raw& a, const Raw& b) { return a.address < b.address; });
  size_t exported = raw.size();
  // A separate debug file's .symtab has every local function (the C library's internals) at the same
  // addresses: it stands for the stripped file's.
  const elf::ElfFile& symtab_file = debug ? *debug : file;
  m->debug_file_ = debug ? debug->display_name() : "";
  m->has_all_functions_ = symtab_file.has_symtab();
  auto sym = symtab_file.visit_symbols(
      [&](const elf::SymbolView& s) {
        if (!s.is_function || s.address == 0) return;
        auto it = std::lower_bound(raw.begin(), raw.begin() + static_cast<ptrdiff_t>(exported), s.address,
                                   [](const Raw& r, uint64_t a) { return r.address < a; });
        if (it != raw.begin() + static_cast<ptrdiff_t>(exported) && it->address == s.address && it->size > 0)
          return;
        add(s);
      },
      false, true);
  if (sym.ok()) m->skipped_ += *sym;

  // One symbol per address: aliases add nothing to a stack. Prefer one with a size, then the exported
  // name (a stable sort keeps .dynsym's before .symtab's).
  std::stable_sort(raw.begin(), raw.end(), [](const Raw& a, const Raw& b) {
    if (a.address != b.address) return a.address < b.address;
    return (a.size > 0) > (b.size > 0);
  });
  size_t kept_names = 0;
  size_t kept = 0;
  for (size_t i = 0; i < raw.size(); ++i) {
    if (kept > 0 && raw[kept - 1].address == raw[i].address) continue;
    raw[kept++] = raw[i];
    kept_names += std::strlen(arena.data() + raw[i].name_offset) + 1;
  }
  raw.resize(kept);

  // Copy the surviving names into an arena of exactly their size.
  m->names_.reserve(kept_names);
  m->entries_.reserve(kept);
  for (const Raw& r : raw) {
    m->entries_.push_back(Entry{r.address, r.size, static_cast<uint32_t>(m->names_.size())});
    m->names_.append(arena.data() + r.name_offset);
    m->names_.push_back('\0');
  }
  return m;
}

std::optional<Module::Hit> Module::lookup(uint64_t vaddr) const {
  auto h = nearest_before(vaddr);
  // An unsized symbol (hand-written assembly) extends to the next one, within its own segment.
  if (h && h->size > 0 && vaddr - h->start >= h->size) return std::nullopt;
  return h;
}

std::optional<Module::Hit> Module::nearest_before(uint64_t vaddr) const {
  auto it = std::upper_bound(entries_.begin(), entries_.end(), vaddr,
                             [](uint64_t v, const Entry& e) { return v < e.address; });
  if (it == entries_.begin()) return std::nullopt;
  const Entry& e = *(it - 1);
  bool inside = false;
  for (const auto& seg : segments_) {
    if (e.address >= seg.vaddr && e.address - seg.vaddr < seg.memsz) {
      inside = vaddr - seg.vaddr < seg.memsz;
      break;
    }
  }
  if (!inside) return std::nullopt;
  Hit h;
  h.start = e.address;
  h.size = e.size;
  h.mangled = std::string_view(names_.data() + e.name_offset);
  h.index = static_cast<uint32_t>(&e - entries_.data());
  return h;
}

std::string Module::demangled(const Hit& hit) const {
  std::lock_guard<std::mutex> lock(demangle_mutex_);
  auto it = demangled_.find(hit.index);
  if (it != demangled_.end()) return it->second;
  std::string name = demangle(hit.mangled);
  demangled_bytes_ += name.capacity() + 48;  // node overhead of the hash map, roughly
  demangled_.emplace(hit.index, name);
  return name;
}

std::optional<uint64_t> Module::file_offset_to_vaddr(uint64_t offset) const {
  for (const auto& seg : segments_)
    if (offset >= seg.file_offset && offset - seg.file_offset < seg.filesz)
      return seg.vaddr + (offset - seg.file_offset);
  return std::nullopt;
}

std::optional<uint64_t> Module::vaddr_to_file_offset(uint64_t vaddr) const {
  for (const auto& seg : segments_)
    if (vaddr >= seg.vaddr && vaddr - seg.vaddr < seg.filesz) return seg.file_offset + (vaddr - seg.vaddr);
  return std::nullopt;
}

size_t Module::memory_bytes() const {
  std::lock_guard<std::mutex> lock(demangle_mutex_);
  return sizeof(Module) + entries_.capacity() * sizeof(Entry) + names_.capacity() +
         segments_.capacity() * sizeof(elf::LoadSegment) + demangled_bytes_;
}

std::vector<std::string> debug_file_dirs() {
  // MEMLENS_DEBUG_DIRS (':'-separated) replaces the system's directory, e.g. to see stacks as a host
  // without debug packages shows them.
  const char* env = std::getenv("MEMLENS_DEBUG_DIRS");
  std::string dirs = env ? env : "/usr/lib/debug";
  std::vector<std::string> out;
  size_t at = 0;
  while (at <= dirs.size()) {
    size_t colon = dirs.find(':', at);
    if (colon == std::string::npos) colon = dirs.size();
    if (colon > at) out.push_back(dirs.substr(at, colon - at));
    at = colon + 1;
  }
  return out;
}

namespace {

// A debug file at path (inside pid's root when pid > 0, else on the host) that belongs to file.
std::unique_ptr<elf::ElfFile> debug_file_at(const elf::ElfFile& file, const std::string& path, pid_t pid) {
  auto opened = pid > 0 ? open_in_process_root(pid, path, false) : open_regular_file(path);
  if (!opened) return nullptr;
  auto debug = elf::ElfFile::open(opened->fd.get(), path);
  if (!debug || !(*debug)->has_symtab()) return nullptr;
  // The build-id proves it is this file's (gdb checks .gnu_debuglink's CRC, which needs a whole read).
  if (!file.build_id().empty() && (*debug)->build_id() != file.build_id()) return nullptr;
  return std::move(*debug);
}

// The name .gnu_debuglink gives ("" when none).
std::string debuglink_name(const elf::ElfFile& file) {
  for (const auto& s : file.sections()) {
    if (s.name != ".gnu_debuglink" || s.size < 5 || s.size > 4096) continue;
    auto data = file.read_at(s.file_offset, s.size);
    if (!data) return "";
    std::string name(data->begin(), data->end());
    name.resize(std::strlen(name.c_str()));
    return name.find('/') == std::string::npos ? name : "";
  }
  return "";
}

}  // namespace

std::unique_ptr<elf::ElfFile> find_debug_file(const elf::ElfFile& file, const std::string& path, pid_t pid) {
  // As gdb looks: by build-id (Debian's -dbg and -dbgsym packages: DIR/.build-id/ab/cdef....debug), then the
  // name .gnu_debuglink gives, beside the file, in its .debug/, and under DIR with the file's directory.
  // In the process's own root first (a container's debug packages), then on the host.
  std::vector<std::string> candidates;
  const std::string& id = file.build_id();
  if (id.size() >= 4)
    for (const auto& dir : debug_file_dirs())
      candidates.push_back(dir + "/.build-id/" + id.substr(0, 2) + "/" + id.substr(2) + ".debug");
  if (std::string link = debuglink_name(file); !link.empty() && path.rfind('/') != std::string::npos) {
    std::string dir = path.substr(0, path.rfind('/'));
    candidates.push_back(dir + "/" + link);
    candidates.push_back(dir + "/.debug/" + link);
    for (const auto& d : debug_file_dirs()) candidates.push_back(d + dir + "/" + link);
  }
  for (const auto& c : candidates) {
    if (c == path) continue;
    if (pid > 0)
      if (auto d = debug_file_at(file, c, pid)) return d;
    if (auto d = debug_file_at(file, c, 0)) return d;
  }
  return nullptr;
}

Result<std::shared_ptr<const Module>> ModuleCache::get(int fd, const std::string& display_name, pid_t pid) {
  struct stat st {};
  if (fstat(fd, &st) != 0) return errno_error("cannot stat " + display_name);
  std::string identity =
      fmt::format("{}:{}:{}:{}.{}", st.st_dev, st.st_ino, st.st_size, st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = by_identity_.find(identity);
    if (it != by_identity_.end()) return it->second;
  }
  auto file = elf::ElfFile::open(fd, display_name);
  if (!file) return file.error();
  const std::string& build_id = (*file)->build_id();
  if (!build_id.empty()) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = by_build_id_.find(build_id);
    if (it != by_build_id_.end()) {
      by_identity_[identity] = it->second;
      return it->second;
    }
  }
  // Read outside the lock: a large binary takes a fraction of a second and other lookups need not wait.
  std::unique_ptr<elf::ElfFile> debug;
  if (!(*file)->has_symtab()) debug = find_debug_file(**file, display_name, pid);
  std::shared_ptr<const Module> module = Module::load(**file, debug.get());
  std::lock_guard<std::mutex> lock(mutex_);
  if (!build_id.empty()) {
    auto [it, inserted] = by_build_id_.emplace(build_id, module);
    if (!inserted) module = it->second;  // another thread loaded it meanwhile
  }
  by_identity_[identity] = module;
  return module;
}

size_t ModuleCache::size() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return by_identity_.size();
}

size_t ModuleCache::memory_bytes() const {
  std::vector<std::shared_ptr<const Module>> modules;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (const auto& [key, m] : by_identity_) modules.push_back(m);
  }
  std::sort(modules.begin(), modules.end());
  modules.erase(std::unique(modules.begin(), modules.end()), modules.end());
  size_t total = 0;
  for (const auto& m : modules) total += m->memory_bytes();
  return total;
}

void ModuleCache::clear() {
  std::lock_guard<std::mutex> lock(mutex_);
  by_identity_.clear();
  by_build_id_.clear();
}

std::shared_ptr<ModuleCache> ModuleCache::shared() {
  static std::shared_ptr<ModuleCache> cache = std::make_shared<ModuleCache>();
  return cache;
}

}  // namespace memlens::symbolize
