#include "collect/unwind_tables.h"

#include <bpf/bpf.h>
#include <elf.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <set>

#include "elf/cfi_table.h"
#include "node/library_search.h"

namespace memlens::collect {

namespace {

constexpr uint64_t kPage = 4096;

// The mapped file itself: /proc/PID/map_files names exactly what is mapped (a file replaced or deleted
// since, one inside a container); the path under the process's root otherwise.
Result<OpenedFile> open_mapped(pid_t pid, const proc::MapEntry& m) {
  std::string link = fmt::format("/proc/{}/map_files/{:x}-{:x}", pid, m.start, m.end);
  int fd = open(link.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    OpenedFile f;
    f.fd = UniqueFd(fd);
    struct stat st {};
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
      return make_error(m.path + ": not a regular file", EINVAL);
    f.size = st.st_size;
    f.device = st.st_dev;
    f.inode = st.st_ino;
    return f;
  }
  std::string path = m.path;
  if (m.deleted()) path.resize(path.size() - std::strlen(" (deleted)"));
  return open_in_process_root(pid, path, false);
}

}  // namespace

Result<UnwindTables::FileTable> UnwindTables::load(const elf::ElfFile& elf, int fd, const std::string& name) {
  auto start = std::chrono::steady_clock::now();
  auto cfi = elf::compile_cfi(fd, name);
  compile_ms_ += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  if (!cfi) return cfi.error();
  uint32_t capacity = session_.unwind_row_capacity();
  if (!session_.has_unwind_rows()) return make_error("stacks are off", EINVAL);
  if (cfi->rows.size() > capacity - rows_used_)
    return make_error(
        fmt::format("its unwind table ({} KiB) does not fit in what is left of the table budget "
                    "({} of {} KiB): raise --unwind-table-mib",
                    cfi->rows.size() * sizeof(ml_unwind_row) >> 10,
                    uint64_t{capacity - rows_used_} * sizeof(ml_unwind_row) >> 10,
                    uint64_t{capacity} * sizeof(ml_unwind_row) >> 10),
        ENOSPC);
  FileTable t;
  t.ok = true;
  t.first_row = rows_used_;
  t.row_count = static_cast<uint32_t>(cfi->rows.size());
  t.segments = elf.load_segments();
  // Written before any process's mappings name them: the kernel reads them from then on.
  if (auto w = session_.write_unwind_rows(rows_used_, cfi->rows.data(), cfi->rows.size()); !w)
    return w.error();
  rows_used_ += t.row_count;
  return t;
}

const UnwindTables::FileTable& UnwindTables::table_for(pid_t pid, const proc::MapEntry& m) {
  std::string identity = fmt::format("{}:{}:{}:{}", m.dev_major, m.dev_minor, m.inode, m.path);
  if (auto k = keys_.find(identity); k != keys_.end()) return files_[k->second];
  auto f = open_mapped(pid, m);
  if (!f) {
    failed_.push_back({m.path, f.error().describe()});
    keys_[identity] = identity;
    return files_[identity] = FileTable{};
  }
  return table_of_file(f->fd.get(), m.path, identity);
}

const UnwindTables::FileTable& UnwindTables::table_of_file(int fd, const std::string& name,
                                                           const std::string& identity) {
  auto elf = elf::ElfFile::open(fd, name);
  if (!elf) {
    failed_.push_back({name, elf.error().describe()});
    keys_[identity] = identity;
    return files_[identity] = FileTable{};
  }
  // Without a build-id, the file itself (device and inode as stat names them), however it was reached (a
  // mapping, the preload of an image): the same file is compiled once.
  std::string key = "build-id:" + (*elf)->build_id();
  if ((*elf)->build_id().empty()) {
    struct stat st {};
    key = fstat(fd, &st) == 0 ? fmt::format("file:{}:{}:{}:{}.{}", st.st_dev, st.st_ino, st.st_size,
                                            st.st_mtim.tv_sec, st.st_mtim.tv_nsec)
                              : identity;
  }
  keys_[identity] = key;
  auto have = files_.find(key);
  if (have == files_.end()) {
    auto t = load(**elf, fd, name);
    if (!t) failed_.push_back({name, t.error().describe()});
    have = files_.emplace(key, t ? std::move(*t) : FileTable{}).first;
  }
  // Another file of the same build-id (a copy, another container's layer) shares the rows, under its own
  // identity.
  publish_file(fd, have->second);
  return have->second;
}

void UnwindTables::publish_file(int fd, const FileTable& t) {
  if (!t.ok || files_published_ >= ML_UNWIND_MAX_FILES) return;
  struct stat st {};
  if (fstat(fd, &st) != 0) return;
  auto seg = std::find_if(t.segments.begin(), t.segments.end(), [](const auto& s) { return s.exec; });
  if (seg == t.segments.end()) return;
  // The kernel's dev_t (MKDEV) is major << 20 | minor, not the C library's encoding.
  ml_unwind_file_key key{(uint64_t{major(st.st_dev)} << 20) | minor(st.st_dev), st.st_ino};
  ml_unwind_file value{};
  value.seg_start = seg->file_offset & ~(kPage - 1);
  value.seg_end = seg->file_offset + seg->filesz;
  value.delta = seg->file_offset - seg->vaddr;
  value.first_row = t.first_row;
  value.row_count = t.row_count;
  if (bpf_map_update_elem(session_.unwind_files_fd(), &key, &value, BPF_NOEXIST) == 0) ++files_published_;
}

void UnwindTables::preload_needed(pid_t pid) {
  if (!session_.has_unwind_rows()) return;
  auto exe = proc::read_exe(pid);
  if (!exe) return;
  preload_image(pid, *exe);
}

void UnwindTables::prepare_image(pid_t pid, const std::string& path) {
  if (!session_.has_unwind_rows() || path.empty()) return;
  // From its exec on, until update() has read its mappings, the kernel finds them itself (the files
  // below are given to it by identity): its first stacks are walked with the tables too.
  ml_unwind_proc value{};
  value.flags = ML_UNWIND_PROC_ASK_KERNEL;
  __u32 key = static_cast<__u32>(pid);
  if (bpf_map_update_elem(session_.unwind_procs_fd(), &key, &value, BPF_ANY) == 0)
    written_[pid] = Written{{}, ML_UNWIND_PROC_ASK_KERNEL};
  // The file itself, as the process will see it after the exec (/proc/PID/exe): the loader expands
  // $ORIGIN from there, not from a symbolic link that led to it (nvm's, alternatives').
  std::error_code ec;
  std::string real = std::filesystem::canonical(path, ec).string();
  if (ec) return;
  pid_t self = getpid();
  auto f = open_in_process_root(self, real, false);
  if (!f) return;
  // A script (npm, a shell wrapper) runs its interpreter, which memlens meets at its own exec: nothing
  // to prepare, and nothing to report as failed.
  char magic[4] = {};
  if (pread(f->fd.get(), magic, sizeof(magic), 0) != static_cast<ssize_t>(sizeof(magic)) ||
      std::memcmp(magic, ELFMAG, SELFMAG) != 0)
    return;
  if (table_of_file(f->fd.get(), real, fmt::format("preload:{}:{}", f->device, f->inode)).ok)
    prepared_.push_back(real);
  for (auto& p : preload_image(self, real)) prepared_.push_back(std::move(p));
}

std::vector<std::string> UnwindTables::preload_image(pid_t pid, const std::string& exe) {
  std::vector<std::string> loaded;
  auto exe_file = open_in_process_root(pid, exe, false);
  if (!exe_file) return loaded;
  std::string library_path = node::ld_library_path(pid);
  // Once per image file, root and library path: the libraries' tables are given to the kernel by file
  // identity, for every process that maps them, so the next exec of the same file (node's child
  // processes, the exec of a command prepared before it ran) has nothing to do here. A container with the
  // same file bind-mounted has its own root, and its own libraries.
  struct stat root {};
  if (stat(fmt::format("/proc/{}/root/", pid).c_str(), &root) != 0) return loaded;
  if (!images_preloaded_
           .insert(fmt::format("{}:{}:{}:{}:{}", exe_file->device, exe_file->inode, root.st_dev, root.st_ino,
                               library_path))
           .second)
    return loaded;
  // The libraries the loader will map, and theirs in turn (node's libnode needs libuv, whose threads
  // allocate too), as many as a Node binary holds.
  constexpr size_t kMaxObjects = 64;
  std::vector<std::string> objects = {exe};
  std::set<std::string> seen = {exe};
  for (size_t i = 0; i < objects.size() && objects.size() < kMaxObjects; ++i) {
    auto f = i == 0 ? std::move(exe_file) : open_in_process_root(pid, objects[i], false);
    if (!f) continue;
    auto elf = elf::ElfFile::open(f->fd.get(), objects[i]);
    if (!elf) continue;
    auto dyn = (*elf)->dynamic_info();
    std::vector<std::string> paths;
    // The executable's dynamic loader, which the kernel maps with it and which runs first.
    if (i == 0 && !dyn.interpreter.empty()) paths.push_back(dyn.interpreter);
    for (const auto& name : dyn.needed)
      if (auto path = node::find_library(pid, objects[i], dyn.search_path, library_path, name))
        paths.push_back(std::move(*path));
    for (auto& path : paths) {
      if (!seen.insert(path).second) continue;
      auto lib = open_in_process_root(pid, path, false);
      if (!lib) continue;
      std::string identity = fmt::format("preload:{}:{}", lib->device, lib->inode);
      if (!keys_.count(identity) && table_of_file(lib->fd.get(), path, identity).ok) loaded.push_back(path);
      if (objects.size() < kMaxObjects) objects.push_back(std::move(path));
    }
  }
  return loaded;
}

void UnwindTables::update(pid_t pid, bool loader_mapping) {
  if (!session_.has_unwind_rows()) return;
  auto maps = proc::read_maps(pid);
  if (!maps) return;  // the process is gone: nothing to unwind
  update(pid, *maps, loader_mapping);
}

void UnwindTables::update(pid_t pid, const std::vector<proc::MapEntry>& maps, bool loader_mapping) {
  if (!session_.has_unwind_rows()) return;
  std::vector<ml_unwind_mapping> mappings;
  for (const auto& m : maps) {
    if (!m.exec || !m.is_file()) continue;
    const FileTable& t = table_for(pid, m);
    if (!t.ok) continue;
    // The segment this mapping holds: file vaddr = address - bias.
    for (const auto& s : t.segments) {
      if (!s.exec || m.offset < (s.file_offset & ~(kPage - 1)) || m.offset >= s.file_offset + s.filesz)
        continue;
      ml_unwind_mapping u{};
      u.start = m.start;
      u.end = m.end;
      u.bias = m.start - m.offset + s.file_offset - s.vaddr;
      u.first_row = t.first_row;
      u.row_count = t.row_count;
      mappings.push_back(u);
      break;
    }
  }
  std::sort(mappings.begin(), mappings.end(),
            [](const ml_unwind_mapping& a, const ml_unwind_mapping& b) { return a.start < b.start; });
  if (mappings.size() > ML_UNWIND_MAX_MAPPINGS) mappings.resize(ML_UNWIND_MAX_MAPPINGS);
  uint32_t flags = loader_mapping ? ML_UNWIND_PROC_ASK_KERNEL : 0;
  auto& written = written_[pid];
  if (written.flags == flags && written.mappings.size() == mappings.size() &&
      std::equal(written.mappings.begin(), written.mappings.end(), mappings.begin(),
                 [](const auto& a, const auto& b) { return std::memcmp(&a, &b, sizeof(a)) == 0; }))
    return;
  ml_unwind_proc value{};
  value.count = static_cast<uint32_t>(mappings.size());
  value.flags = flags;
  std::copy(mappings.begin(), mappings.end(), value.m);
  __u32 key = static_cast<__u32>(pid);
  if (bpf_map_update_elem(session_.unwind_procs_fd(), &key, &value, BPF_ANY) == 0) {
    written.mappings = std::move(mappings);
    written.flags = flags;
  }
}

void UnwindTables::forget(pid_t pid) {
  __u32 key = static_cast<__u32>(pid);
  bpf_map_delete_elem(session_.unwind_procs_fd(), &key);
  written_.erase(pid);
}

model::UnwindInfo UnwindTables::info() const {
  model::UnwindInfo u;
  u.enabled = session_.has_unwind_rows();
  u.budget_bytes = uint64_t{session_.unwind_row_capacity()} * sizeof(ml_unwind_row);
  u.used_bytes = uint64_t{rows_used_} * sizeof(ml_unwind_row);
  for (const auto& [key, t] : files_) u.files += t.ok ? 1 : 0;
  u.compile_ms = compile_ms_;
  u.prepared_files = prepared_;
  u.failed = failed_;
  auto k = session_.read_unwind_stats();
  const char* names[ML_UNWIND_STATS] = {"walks",
                                        "frames_by_table",
                                        "frames_by_frame_pointer",
                                        "unsupported_rows",
                                        "ended_complete",
                                        "ended_at_depth_limit",
                                        "ended_unreadable",
                                        "ended_bad_frame",
                                        "mappings_found_by_kernel"};
  for (size_t i = 0; i < ML_UNWIND_STATS; ++i) u.walks[names[i]] = k[i];
  return u;
}

}  // namespace memlens::collect
