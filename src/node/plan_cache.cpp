#include "node/plan_cache.h"

#include <sys/stat.h>

#include <list>
#include <mutex>
#include <optional>
#include <tuple>

#include "common/safe_file.h"
#include "elf/elf_file.h"

namespace memlens::node {
namespace {

class PlanCache {
 public:
  using Key = std::tuple<dev_t, ino_t, off_t, long, long>;  // device, inode, size, mtime (s, ns)

  static std::optional<Key> key_of(int fd) {
    struct stat st {};
    if (fstat(fd, &st) != 0) return std::nullopt;
    return Key{st.st_dev, st.st_ino, st.st_size, st.st_mtim.tv_sec, st.st_mtim.tv_nsec};
  }

  std::optional<PlannedFile> find(const Key& key) {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = entries_.begin(); it != entries_.end(); ++it) {
      if (it->first != key) continue;
      entries_.splice(entries_.begin(), entries_, it);  // most recently used first
      return entries_.front().second;
    }
    return std::nullopt;
  }

  void add(const Key& key, PlannedFile planned) {
    std::lock_guard<std::mutex> lock(mu_);
    entries_.emplace_front(key, std::move(planned));
    if (entries_.size() > kMaxEntries) entries_.pop_back();
  }

 private:
  static constexpr size_t kMaxEntries = 8;
  std::mutex mu_;
  std::list<std::pair<Key, PlannedFile>> entries_;
};

PlanCache& plan_cache() {
  static PlanCache cache;
  return cache;
}

}  // namespace

Result<PlannedFile> planned_file(int fd, const std::string& host_path) {
  auto key = PlanCache::key_of(fd);
  if (key) {
    if (auto hit = plan_cache().find(*key)) {
      // Re-point the copy at this host path (another process reaches the same file through its own root).
      std::string planned_at = hit->plan.host_path;
      hit->plan.host_path = host_path;
      for (auto& site : hit->plan.probes)
        for (auto& point : site.points)
          if (point.host_path == planned_at) point.host_path = host_path;
      return std::move(*hit);
    }
  }
  auto elf = elf::ElfFile::open(fd, host_path);
  if (!elf.ok()) return elf.error();
  auto plan = plan_for_elf(**elf, host_path);
  if (!plan.ok()) return plan.error();
  PlannedFile planned{std::move(*plan), holds_v8(**elf)};
  if (key) plan_cache().add(*key, planned);
  return planned;
}

Result<ProbePlan> plan_for_binary(const std::string& host_path) {
  auto file = open_regular_file(host_path);
  if (!file.ok()) return file.error();
  auto planned = planned_file(file->fd.get(), host_path);
  if (!planned.ok()) return planned.error();
  return std::move(planned->plan);
}

}  // namespace memlens::node
