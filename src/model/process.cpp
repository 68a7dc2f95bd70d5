#include "model/process.h"

#include <unistd.h>

namespace memlens::model {

uint64_t start_time_ns_to_ticks(uint64_t ns) {
  static const uint64_t ns_per_tick = [] {
    long hz = sysconf(_SC_CLK_TCK);
    return 1000000000ull / static_cast<uint64_t>(hz > 0 ? hz : 100);
  }();
  return ns / ns_per_tick;
}

void add_sample(Process& p, Sample s) {
  p.address_space.on_sample();
  auto& tl = p.timeline;
  // Every sample but the newest sits on the stride: the newest replaces one that does not.
  if (!tl.empty() && !p.timeline_last_on_stride) {
    tl.pop_back();
    ++p.timeline_thinned;
  }
  p.timeline_last_on_stride = p.timeline_seen++ % p.timeline_stride == 0;
  tl.push_back(std::move(s));
  if (tl.size() < kMaxTimelineSamples) return;
  // Position i holds the sample seen i strides in: the even positions are on the doubled stride.
  std::vector<Sample> kept;
  kept.reserve(tl.size() / 2 + 1);
  for (size_t i = 0; i < tl.size(); ++i) {
    if (i % 2 == 0 || i + 1 == tl.size())
      kept.push_back(std::move(tl[i]));
    else
      ++p.timeline_thinned;
  }
  p.timeline_last_on_stride = (tl.size() - 1) % 2 == 0 && p.timeline_last_on_stride;
  tl = std::move(kept);
  p.timeline_stride *= 2;
}

Process& Registry::add(ProcessKey key, pid_t ppid) {
  if (auto* p = find(key)) return *p;
  order_.push_back(std::make_unique<Process>(key, ppid));
  by_key_[key] = order_.back().get();
  return *order_.back();
}

Process* Registry::find(const ProcessKey& key) {
  auto it = by_key_.find(key);
  return it == by_key_.end() ? nullptr : it->second;
}

Process* Registry::find_live(pid_t pid) {
  for (auto it = order_.rbegin(); it != order_.rend(); ++it)
    if ((*it)->pid() == pid && (*it)->alive()) return it->get();
  return nullptr;
}

bool Registry::forget(const ProcessKey& key) {
  auto it = by_key_.find(key);
  if (it == by_key_.end() || it->second->alive()) return false;
  std::erase_if(order_, [&](const std::unique_ptr<Process>& p) { return p.get() == it->second; });
  by_key_.erase(it);
  return true;
}

std::vector<Process*> Registry::live() {
  std::vector<Process*> out;
  for (auto& p : order_)
    if (p->alive()) out.push_back(p.get());
  return out;
}

}  // namespace memlens::model
