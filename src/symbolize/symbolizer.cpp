#include "symbolize/symbolizer.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>

#include <algorithm>

#include "common/safe_file.h"

namespace memlens::symbolize {

namespace {

constexpr std::string_view kDeleted = " (deleted)";

std::string_view without_deleted(std::string_view path) {
  if (path.size() > kDeleted.size() && path.substr(path.size() - kDeleted.size()) == kDeleted)
    path.remove_suffix(kDeleted.size());
  return path;
}

std::string_view basename_of(std::string_view path) {
  path = without_deleted(path);
  size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

}  // namespace

Normalized normalize(const std::vector<proc::MapEntry>& maps, uint64_t address) {
  Normalized n;
  auto it = std::upper_bound(maps.begin(), maps.end(), address,
                             [](uint64_t a, const proc::MapEntry& m) { return a < m.start; });
  if (it == maps.begin()) return n;
  --it;
  if (address >= it->end) return n;
  n.map_index = static_cast<int>(it - maps.begin());
  uint64_t in_map = address - it->start;
  if (it->is_file()) {
    n.kind = Normalized::Kind::kFile;
    n.file_offset = it->offset + in_map;
  } else {
    n.kind = it->path.empty() ? Normalized::Kind::kAnonymous : Normalized::Kind::kPseudo;
    n.file_offset = in_map;
  }
  return n;
}

ProcessSymbolizer::ProcessSymbolizer(pid_t pid, ProcessSymbolizerOptions options)
    : pid_(pid), options_(std::move(options)) {
  if (!options_.cache) options_.cache = ModuleCache::shared();
}

Result<std::unique_ptr<ProcessSymbolizer>> ProcessSymbolizer::create(pid_t pid,
                                                                     ProcessSymbolizerOptions options) {
  std::unique_ptr<ProcessSymbolizer> s(new ProcessSymbolizer(pid, std::move(options)));
  auto start = proc::read_start_time_ns(pid);
  if (!start) return start.error();
  s->start_time_ns_ = *start;
  // Opened after the start time was read: the pid may have been reused in between, so it is kept only
  // when the process it holds has that start time.
  UniqueFd pidfd(static_cast<int>(syscall(SYS_pidfd_open, pid, 0)));
  if (pidfd) {
    auto again = proc::read_start_time_ns(pid);
    if (again && *again == *start) s->pidfd_ = std::move(pidfd);
  }
  auto maps = proc::read_maps(pid);
  if (!maps) return maps.error();
  s->maps_ = std::move(*maps);
  s->init_perf_map();
  return s;
}

std::unique_ptr<ProcessSymbolizer> ProcessSymbolizer::from_maps(pid_t pid, std::vector<proc::MapEntry> maps,
                                                                ProcessSymbolizerOptions options) {
  std::unique_ptr<ProcessSymbolizer> s(new ProcessSymbolizer(pid, std::move(options)));
  std::sort(maps.begin(), maps.end(),
            [](const proc::MapEntry& a, const proc::MapEntry& b) { return a.start < b.start; });
  s->maps_ = std::move(maps);
  // Without a recorded start time the pid cannot be told apart from a later process that reuses it:
  // never read that pid's files.
  s->start_time_ns_ = ~0ull;
  s->perf_map_problem_ = "symbolizing from recorded maps: no perf map";
  return s;
}

bool ProcessSymbolizer::same_process_alive() const {
  if (start_time_ns_ == ~0ull) return false;
  if (pidfd_) {
    // Not readable: it has not exited. Once it has, /proc says whether it is still there (a zombie is).
    pollfd p{pidfd_.get(), POLLIN, 0};
    if (::poll(&p, 1, 0) == 0) return true;
  }
  if (!proc::process_exists(pid_)) return false;
  auto now = proc::read_start_time_ns(pid_);
  return now.ok() && *now == start_time_ns_;
}

void ProcessSymbolizer::init_perf_map() {
  if (!options_.use_perf_map) {
    perf_map_problem_ = "perf map reading is disabled";
    return;
  }
  if (!perf_map_) {
    auto reader = PerfMapReader::for_process(pid_, options_.perf_map);
    if (!reader) {
      perf_map_problem_ = "cannot locate the perf map: " + reader.error().describe();
      return;
    }
    perf_map_ = std::make_unique<PerfMapReader>(std::move(*reader));
  }
  (void)refresh_perf_map();
}

Status ProcessSymbolizer::refresh_perf_map() {
  if (!perf_map_) return make_error("no perf map reader for process " + std::to_string(pid_), ENOENT);
  if (!same_process_alive()) return make_error(fmt::format("process {} is gone", pid_), ESRCH);
  Status s = perf_map_->refresh();
  if (s.ok()) {
    perf_map_problem_.clear();
    perf_map_absent_ = false;
    const PerfMapStats& st = perf_map_->map().stats();
    std::string cut =
        fmt::format("it is larger than {} bytes: only its first part was read", options_.perf_map.max_bytes);
    if (perf_map_->map().size() == 0 && st.bytes == 0)
      perf_map_problem_ = fmt::format("perf map {} is empty", perf_map_->path());
    else if (perf_map_->map().size() == 0)
      perf_map_problem_ = fmt::format(
          "perf map {} has no valid line: of the {} bytes read, {} line(s) are malformed and {} longer "
          "than {} bytes{}",
          perf_map_->path(), st.bytes, st.malformed, st.too_long, PerfMap::kMaxLineBytes,
          st.truncated ? "; " + cut : "");
    else if (st.truncated)
      perf_map_problem_ = fmt::format("perf map {}: {}", perf_map_->path(), cut);
    return s;
  }
  perf_map_absent_ = s.error().errno_value == ENOENT;
  if (perf_map_absent_)
    perf_map_problem_ = fmt::format(
        "process {} has no perf map ({}): JS frames stay unnamed; start node with --perf-basic-prof "
        "(or --perf-basic-prof-only-functions) to name them",
        pid_, perf_map_->path());
  else
    perf_map_problem_ = s.error().describe();
  return s;
}

Status ProcessSymbolizer::refresh_maps() {
  // use_maps asks whether the process is still this one, after the read (which makes the read this
  // process's); a symbolizer of recorded maps never reads that pid's files.
  if (start_time_ns_ == ~0ull) return make_error(fmt::format("process {} is gone", pid_), ESRCH);
  auto maps = proc::read_maps(pid_);
  if (!maps) return maps.error();
  return use_maps(std::move(*maps));
}

Status ProcessSymbolizer::use_maps(std::vector<proc::MapEntry> maps) {
  if (!same_process_alive()) return make_error(fmt::format("process {} is gone", pid_), ESRCH);
  // A process that has exited but is not reaped yet (a zombie) shows empty maps: keep the last real
  // snapshot, it is what its recorded stacks refer to.
  if (maps.empty()) return make_error(fmt::format("process {} has exited (no mappings left)", pid_), ESRCH);
  ++stats_.maps_refreshes;
  maps_ = std::move(maps);
  return {};
}

const Module* ProcessSymbolizer::module_for(size_t map_index) {
  const proc::MapEntry& m = maps_[map_index];
  std::string key = fmt::format("{}\n{}", m.path, m.inode);
  if (auto it = modules_.find(key); it != modules_.end()) return it->second.get();
  if (module_errors_.count(key)) return nullptr;

  std::string path(without_deleted(m.path));
  std::string why;
  UniqueFd fd;
  bool alive = same_process_alive();
  if (alive && !m.deleted()) {
    // The path as the process sees it, resolved inside its root (containers); the inode must be the
    // mapped one, or the file was replaced since it was mapped.
    auto opened = open_in_process_root(pid_, path, /*no_symlinks=*/false);
    if (opened && opened->inode == m.inode)
      fd = std::move(opened->fd);
    else
      why = opened ? "the file at that path was replaced" : opened.error().describe();
  }
  if (!fd && alive) {
    // The mapped file itself, even when deleted or replaced on disk.
    std::string link = fmt::format("/proc/{}/map_files/{:x}-{:x}", pid_, m.start, m.end);
    UniqueFd f(::open(link.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
    struct stat st {};
    if (f && fstat(f.get(), &st) == 0 && S_ISREG(st.st_mode) && st.st_ino == m.inode) fd = std::move(f);
  }
  if (!fd && !m.deleted()) {
    // The process is gone: the host's file is used only if it is the very same file.
    auto opened = open_regular_file(path);
    if (opened && opened->inode == m.inode &&
        opened->device == static_cast<dev_t>(makedev(m.dev_major, m.dev_minor)))
      fd = std::move(opened->fd);
    else if (why.empty())
      why = opened ? "the host file is not the mapped one" : opened.error().describe();
  }
  if (!fd) {
    ++stats_.module_failures;
    module_errors_[key] = why.empty() ? "cannot open the mapped file" : why;
    return nullptr;
  }
  auto module = options_.cache->get(fd.get(), path, pid_);
  if (!module) {
    ++stats_.module_failures;
    module_errors_[key] = module.error().describe();
    return nullptr;
  }
  const Module* raw = module->get();
  modules_.emplace(std::move(key), std::move(*module));
  return raw;
}

size_t ProcessSymbolizer::preload() {
  for (size_t i = 0; i < maps_.size(); ++i)
    if (maps_[i].exec && maps_[i].is_file()) (void)module_for(i);
  return modules_.size();
}

std::vector<Frame> ProcessSymbolizer::symbolize(const std::vector<uint64_t>& addresses) {
  std::vector<Frame> out;
  out.reserve(addresses.size());
  Batch batch;
  for (uint64_t a : addresses) out.push_back(symbolize_address(a, batch));
  return out;
}

Frame ProcessSymbolizer::symbolize_address(uint64_t address, Batch& batch) {
  ++stats_.addresses;
  Frame f;
  f.address = address;
  f.kind = FrameKind::kUnknown;

  Normalized n = normalize(maps_, address);
  if (n.kind == Normalized::Kind::kUnmapped && !batch.maps_refreshed) {
    batch.maps_refreshed = true;
    if (refresh_maps().ok()) n = normalize(maps_, address);
  }

  auto from_perf_map = [&]() -> bool {
    if (!options_.use_perf_map) return false;
    auto look = [&]() { return perf_map_ ? perf_map_->map().lookup(address) : std::nullopt; };
    auto hit = look();
    if (!hit && !batch.perf_map_refreshed && same_process_alive()) {
      batch.perf_map_refreshed = true;
      // JIT code newer than the last read: read what V8 appended (or the map, if it appeared since).
      if (perf_map_)
        (void)refresh_perf_map();
      else
        init_perf_map();
      hit = look();
    }
    if (!hit) return false;
    f.kind = FrameKind::kJs;
    f.function = std::string(hit->name);
    f.module = "[perf-map]";
    f.symbol_offset = address - hit->start;
    return true;
  };

  switch (n.kind) {
    case Normalized::Kind::kFile: {
      const proc::MapEntry& m = maps_[static_cast<size_t>(n.map_index)];
      f.module = std::string(without_deleted(m.path));
      f.file_offset = n.file_offset;
      if (const Module* mod = module_for(static_cast<size_t>(n.map_index))) {
        f.build_id = mod->build_id();
        if (auto vaddr = mod->file_offset_to_vaddr(n.file_offset)) {
          if (auto hit = mod->lookup(*vaddr)) {
            f.kind = FrameKind::kNative;
            f.function = mod->demangled(*hit);
            f.symbol_offset = *vaddr - hit->start;
            break;
          }
        }
      }
      // V8's embedded builtins live in the binary's text; the perf map may name what the ELF does not.
      std::string module = f.module;
      if (from_perf_map()) {
        f.module = module;
        break;
      }
      // A stripped file without its debug file: the nearest exported name, said to be only that.
      if (const Module* mod = module_for(static_cast<size_t>(n.map_index));
          mod && !mod->has_all_functions()) {
        auto vaddr = mod->file_offset_to_vaddr(n.file_offset);
        if (auto hit = vaddr ? mod->nearest_before(*vaddr) : std::nullopt) {
          f.kind = FrameKind::kNative;
          f.symbol_offset = *vaddr - hit->start;
          f.function = fmt::format("{}+0x{:x}", mod->demangled(*hit), f.symbol_offset);
          f.inexact = true;
          break;
        }
      }
      f.function = fmt::format("{}+0x{:x}", basename_of(m.path), n.file_offset);
      break;
    }
    case Normalized::Kind::kAnonymous: {
      f.file_offset = n.file_offset;
      if (from_perf_map()) break;
      f.module = "[anon]";
      f.function = fmt::format("0x{:x}", address);
      break;
    }
    case Normalized::Kind::kPseudo: {
      const proc::MapEntry& m = maps_[static_cast<size_t>(n.map_index)];
      f.file_offset = n.file_offset;
      if (from_perf_map()) break;
      f.module = m.path;
      f.function = fmt::format("{}+0x{:x}", m.path, n.file_offset);
      break;
    }
    case Normalized::Kind::kUnmapped: {
      if (from_perf_map()) break;
      f.function = fmt::format("0x{:x}", address);
      break;
    }
  }
  switch (f.kind) {
    case FrameKind::kNative:
      ++stats_.native;
      break;
    case FrameKind::kJs:
      ++stats_.js;
      break;
    case FrameKind::kUnknown:
      ++stats_.unknown;
      break;
  }
  return f;
}

size_t ProcessSymbolizer::memory_bytes() const {
  size_t total = sizeof(*this) + maps_.capacity() * sizeof(proc::MapEntry);
  for (const auto& m : maps_) total += m.path.capacity() > 15 ? m.path.capacity() : 0;
  if (perf_map_) total += perf_map_->map().memory_bytes();
  return total;
}

}  // namespace memlens::symbolize
