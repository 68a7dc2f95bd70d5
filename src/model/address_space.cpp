#include "model/address_space.h"

#include <sys/mman.h>

#include <algorithm>

namespace memlens::model {

void AddressSpace::seed(const std::vector<proc::MapEntry>& maps, uint64_t now_ns) {
  by_start_.clear();
  taken_out_.clear();
  heap_known_ = false;
  for (const auto& e : maps) {
    Mapping m;
    m.start = e.start;
    m.end = e.end;
    m.prot = (e.read ? PROT_READ : 0) | (e.write ? PROT_WRITE : 0) | (e.exec ? PROT_EXEC : 0);
    m.flags = e.shared ? MAP_SHARED : MAP_PRIVATE;
    m.anonymous = !e.is_file();
    m.path = e.path;
    m.file_offset = e.offset;
    m.origin = e.path == "[heap]" ? Origin::kBrk : Origin::kSeeded;
    m.created_ns = now_ns;
    by_start_[m.start] = std::move(m);
  }
}

void AddressSpace::split_at(uint64_t at) {
  auto it = by_start_.upper_bound(at);
  if (it == by_start_.begin()) return;
  --it;
  Mapping& m = it->second;
  if (m.start >= at || m.end <= at) return;
  Mapping tail = m;
  tail.start = at;
  if (!tail.anonymous) tail.file_offset += at - m.start;
  m.end = at;
  by_start_[at] = std::move(tail);
}

void AddressSpace::unmap(uint64_t start, uint64_t len) {
  if (len == 0) return;
  uint64_t end = start + len;
  if (end < start) end = UINT64_MAX;
  split_at(start);
  split_at(end);
  auto it = by_start_.lower_bound(start);
  while (it != by_start_.end() && it->first < end) it = by_start_.erase(it);
}

std::vector<std::pair<uint64_t, uint64_t>> AddressSpace::unmapped_in(
    const std::vector<proc::MapEntry>& maps) const {
  std::vector<std::pair<uint64_t, uint64_t>> gone;  // (start, end)
  auto add = [&](uint64_t start, uint64_t end) {
    if (start >= end) return;
    if (!gone.empty() && gone.back().second == start)
      gone.back().second = end;
    else
      gone.emplace_back(start, end);
  };
  size_t i = 0;  // the first kernel mapping that may still cover what comes next
  for (const auto& [start, m] : by_start_) {
    if (m.origin == Origin::kBrk) continue;
    uint64_t at = m.start;
    while (at < m.end) {
      while (i < maps.size() && maps[i].end <= at) ++i;
      if (i == maps.size() || maps[i].start >= m.end) {
        add(at, m.end);
        break;
      }
      add(at, std::max(at, maps[i].start));  // the hole before the kernel's next mapping
      at = std::max(at, std::min(m.end, maps[i].end));
    }
  }
  for (auto& [start, end] : gone) end -= start;  // (start, length)
  return gone;
}

void AddressSpace::take_out(const std::vector<std::pair<uint64_t, uint64_t>>& ranges) {
  taken_out_.clear();
  taken_out_this_interval_ = true;
  for (const auto& [start, len] : ranges) {
    split_at(start);
    split_at(start + len);
    for (auto it = by_start_.lower_bound(start); it != by_start_.end() && it->first < start + len;
         it = by_start_.erase(it))
      taken_out_.push_back(std::move(it->second));
  }
}

void AddressSpace::on_sample() {
  if (!taken_out_this_interval_) taken_out_.clear();
  taken_out_this_interval_ = false;
}

void AddressSpace::map(Mapping m) {
  if (m.end <= m.start) return;
  if (m.path == "[heap]") heap_known_ = false;
  unmap(m.start, m.end - m.start);
  by_start_[m.start] = std::move(m);
}

void AddressSpace::remap(uint64_t old_addr, uint64_t old_len, uint64_t new_addr, uint64_t new_len) {
  const Mapping* src = find(old_addr);
  if (!src)
    for (const auto& t : taken_out_)
      if (t.start <= old_addr && old_addr < t.end) src = &t;
  Mapping m;
  if (src) m = *src;
  m.origin = Origin::kMremap;
  unmap(old_addr, old_len);
  m.start = new_addr;
  m.end = new_addr + new_len;
  map(std::move(m));
}

std::map<uint64_t, Mapping>::iterator AddressSpace::heap() {
  if (heap_known_) {
    if (!heap_start_) return by_start_.end();
    auto it = by_start_.find(*heap_start_);
    if (it != by_start_.end() && it->second.path == "[heap]") return it;
  }
  // Not looked for yet, or unmapped or split since: look once.
  heap_known_ = true;
  heap_start_.reset();
  for (auto it = by_start_.begin(); it != by_start_.end(); ++it)
    if (it->second.path == "[heap]") {
      heap_start_ = it->first;
      return it;
    }
  return by_start_.end();
}

uint64_t AddressSpace::set_brk(uint64_t new_end, uint64_t now_ns) {
  auto it = heap();
  // No heap yet: the first brk creates it. Its start is not known from the event, so the model learns the
  // heap's range only when it is next seeded from /proc/PID/maps (after an exec).
  (void)now_ns;
  if (it == by_start_.end()) return 0;
  Mapping& m = it->second;
  if (new_end <= m.start) {
    by_start_.erase(it);
    heap_known_ = false;  // a piece split off it earlier, if any, is the heap now
    return 0;
  }
  uint64_t old_end = m.end;
  if (new_end < old_end) {
    m.end = new_end;
  } else if (new_end > old_end) {
    uint64_t s = m.start;
    Mapping grown = m;
    grown.end = new_end;
    unmap(old_end, new_end - old_end);
    by_start_[s] = std::move(grown);
    return new_end - old_end;
  }
  return 0;
}

MappingTotals AddressSpace::totals() const {
  MappingTotals t;
  for (const auto& [start, m] : by_start_) {
    (m.anonymous ? t.anon_bytes : t.file_bytes) += m.size();
    ++t.count;
  }
  return t;
}

const Mapping* AddressSpace::find(uint64_t addr) const {
  auto it = by_start_.upper_bound(addr);
  if (it == by_start_.begin()) return nullptr;
  --it;
  return addr < it->second.end ? &it->second : nullptr;
}

std::vector<Mapping> AddressSpace::mappings() const {
  std::vector<Mapping> out;
  out.reserve(by_start_.size());
  for (const auto& [start, m] : by_start_) out.push_back(m);
  return out;
}

}  // namespace memlens::model
