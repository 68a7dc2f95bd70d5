#include "collect/v8_process_reads.h"

#include <fmt/format.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>

#include "proc/procfs.h"

namespace memlens::collect {

namespace {

// Reads len bytes at addr in pid's memory; false (errno set) unless all of them could be read.
bool read_remote(pid_t pid, uint64_t addr, void* out, size_t len) {
  iovec local{out, len};
  iovec remote{reinterpret_cast<void*>(addr), len};
  ssize_t n = process_vm_readv(pid, &local, 1, &remote, 1, 0);
  if (n == static_cast<ssize_t>(len)) return true;
  if (n >= 0) errno = EFAULT;
  return false;
}

bool is_libnode(const std::string& path) {
  auto slash = path.rfind('/');
  return path.compare(slash == std::string::npos ? 0 : slash + 1, 10, "libnode.so") == 0;
}

}  // namespace

std::vector<std::pair<uint64_t, uint64_t>> mapped_libnodes(pid_t pid) {
  std::vector<std::pair<uint64_t, uint64_t>> out;
  auto maps = proc::read_maps(pid);
  if (!maps) return out;
  for (const auto& m : *maps)
    if (m.is_file() && is_libnode(m.path)) out.emplace_back(makedev(m.dev_major, m.dev_minor), m.inode);
  return out;
}

std::string image_identity(pid_t pid) {
  auto maps = proc::read_maps(pid);
  auto exe = proc::read_exe(pid);
  if (!maps || !exe) return "";
  std::string out;
  for (const auto& m : *maps) {
    if (!m.is_file() || m.offset != 0) continue;
    if (m.path == *exe || is_libnode(m.path))
      out += fmt::format("{}:{}:{};", m.dev_major, m.dev_minor, m.inode);
  }
  return out;
}

Result<std::vector<uint64_t>> find_allocators(pid_t pid, const std::string& holder_path,
                                              uint64_t vptr_file_offset) {
  auto maps = proc::read_maps(pid);
  if (!maps) return maps.error();
  std::string holder = holder_path;
  if (holder.empty()) {
    auto exe = proc::read_exe(pid);
    if (!exe) return exe.error();
    holder = *exe;
  }
  std::optional<uint64_t> vptr;
  const proc::MapEntry* heap = nullptr;
  for (const auto& m : *maps) {
    if (m.is_file() && m.path == holder && vptr_file_offset >= m.offset &&
        vptr_file_offset < m.offset + m.size())
      vptr = m.start + (vptr_file_offset - m.offset);
    if (m.path == "[heap]") heap = &m;
  }
  if (!vptr) return make_error(fmt::format("{} does not map NodeArrayBufferAllocator's vtable", holder));
  if (!heap) return make_error("the process has no [heap] mapping");
  // Node allocates its allocator early: scan from the start of [heap], at most kMaxScan bytes.
  constexpr uint64_t kChunk = 1 << 20, kMaxScan = 256ull << 20;
  std::vector<uint64_t> found;
  std::vector<uint64_t> words(kChunk / 8);
  uint64_t end = std::min(heap->end, heap->start + kMaxScan);
  for (uint64_t at = heap->start; at < end; at += kChunk) {
    size_t len = static_cast<size_t>(std::min(kChunk, end - at));
    iovec local{words.data(), len};
    iovec remote{reinterpret_cast<void*>(at), len};
    ssize_t n = process_vm_readv(pid, &local, 1, &remote, 1, 0);
    if (n < 0) return make_error(fmt::format("cannot read [heap] of pid {}", pid), errno);
    for (size_t i = 0; i < static_cast<size_t>(n) / 8; ++i)
      if (words[i] == *vptr) found.push_back(at + i * 8);
  }
  return found;
}

void add_allocator(pid_t pid, std::vector<V8Allocator>& allocators, uint64_t addr) {
  for (const auto& a : allocators)
    if (a.addr == addr) return;
  uint64_t vptr = 0;
  if (!read_remote(pid, addr, &vptr, sizeof vptr)) return;
  allocators.push_back({addr, vptr});
}

std::optional<uint64_t> read_allocator_counters(pid_t pid, std::vector<V8Allocator>& allocators,
                                                uint32_t counter_offset) {
  if (allocators.empty()) return std::nullopt;
  size_t len = counter_offset + sizeof(uint64_t);
  std::vector<uint8_t> buf(len);
  uint64_t sum = 0;
  size_t read = 0;
  for (auto it = allocators.begin(); it != allocators.end();) {
    if (!read_remote(pid, it->addr, buf.data(), len)) {
      if (errno == ESRCH) return std::nullopt;
      it = allocators.erase(it);  // unmapped: a worker's allocator freed with its heap
      continue;
    }
    uint64_t vptr, counter;
    std::memcpy(&vptr, buf.data(), sizeof vptr);
    std::memcpy(&counter, buf.data() + counter_offset, sizeof counter);
    if (vptr != it->vptr) {
      it = allocators.erase(it);  // destroyed (a worker thread ended): its memory is something else now
      continue;
    }
    sum += counter;
    ++read;
    ++it;
  }
  if (read == 0) return std::nullopt;
  return sum;
}

}  // namespace memlens::collect
