#include "collect/stacks_extension.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "collect/extensions.h"

namespace memlens::collect {

namespace {

constexpr uint64_t kPageBytes = 4096;

}  // namespace

void StacksExtension::on_track(model::Trace&, model::Process& p, bool after_exec) {
  if (p.before_command_exec) return;  // memlens's own image: symbolizing starts at the command's exec
  // The new image's own file and the dynamic loader are mapped already: the first stacks can use them.
  // After exec, until the image is loaded, the kernel finds the libraries' mappings itself as the loader
  // makes them: the faults of the loader, the C library's start-up and the first threads come before
  // memlens has read them.
  if (after_exec) unwind_.forget(p.pid());
  unwind_.update(p.pid(), after_exec);
  unwind_.preload_needed(p.pid());
  // After exec the old image's symbols are of no use for the stacks to come, but stacks recorded before
  // exec belong to the old image: symbolize those first.
  if (after_exec && tracked_.count(p.pid())) finalize(p);
  auto sym = symbolize::ProcessSymbolizer::create(p.pid());
  if (!sym) {
    p.notes.push_back("stacks of this process cannot be symbolized: " + sym.error().describe());
    return;
  }
  Tracked t;
  t.symbolizer = std::move(*sym);
  t.events_at_refresh = p.events.total();
  t.file_mmaps_at_refresh = p.events.file_mmap;
  t.image_loaded = !after_exec;
  t.refreshed_at = std::chrono::steady_clock::now();
  tracked_[p.pid()] = std::move(t);
}

// Keeps the maps current while the process lives (after it exits they cannot be read any more). A read
// of /proc/PID/maps costs about as much as the process has mappings, and a Node process allocating makes
// address-space calls all the time, so the maps are read once for the unwinder, the symbolizer and V8's
// code ranges, and not at every tick:
//  - at a tick (every 0.2 s): in the first 2 s after an exec's image loaded (the loader maps libraries,
//    V8 commits its code space, and the process may not live to its first sample; a process attached to
//    or forked is past that), at doubling gaps: once the time since the last read is half the time since
//    the load, and at least three quarters of a tick (about 0.2, 0.6 and 1.4 s after it, or four reads
//    when the first tick comes late): early changes are seen early, and the window costs three or four
//    reads, not ten;
//    and when a file was mapped through the C library since;
//  - at a sample: when the address-space calls or the virtual size moved (a library the dynamic loader
//    maps itself, at dlopen, moves the size), and at least every 5 s (V8 commits code pages with
//    mprotect, which moves neither). The tracer's own read of the sample is used when it made one.
void StacksExtension::refresh(model::Process& p, Moment moment) {
  constexpr auto kYoung = std::chrono::seconds(2);
  constexpr auto kStale = std::chrono::seconds(5);
  auto it = tracked_.find(p.pid());
  if (it == tracked_.end()) return;
  Tracked& t = it->second;
  auto now = std::chrono::steady_clock::now();
  bool young = t.loaded_at && now - *t.loaded_at < kYoung;
  // Three quarters of a tick: a tick that comes a little early still reads.
  constexpr auto kTickGap = std::chrono::nanoseconds(kTickNs * 3 / 4);
  bool young_due =
      young && now - t.refreshed_at >= kTickGap && 2 * (now - t.refreshed_at) >= now - *t.loaded_at;
  bool due = false;
  switch (moment) {
    case Moment::kImageLoaded:
      due = true;
      break;
    case Moment::kTick:
      due = young_due || p.events.file_mmap != t.file_mmaps_at_refresh;
      break;
    case Moment::kSample:
      due = p.maps_at_sample || p.events.total() != t.events_at_refresh ||
            p.vm_size_bytes != t.vm_size_at_refresh || now - t.refreshed_at >= kStale;
      break;
  }
  if (due) {
    t.events_at_refresh = p.events.total();
    t.file_mmaps_at_refresh = p.events.file_mmap;
    t.vm_size_at_refresh = p.vm_size_bytes;
    t.refreshed_at = now;
    // The symbolizer only reads; the unwinder gives the kernel the tables of what is new.
    Status read = moment == Moment::kSample && p.maps_at_sample ? t.symbolizer->use_maps(*p.maps_at_sample)
                                                                : t.symbolizer->refresh_maps();
    if (read.ok()) unwind_.update(p.pid(), t.symbolizer->maps(), !t.image_loaded);
  }
  if (t.image_loaded) {
    js_.on_maps(p, t.symbolizer->maps());
    js_.scan();
  }
  // V8 appends to its perf map as it compiles; read what is new (incremental, cheap) while the file can
  // still be attributed to this live process. A process without one (most: it takes a node flag) is
  // looked at again at its samples, and at the young window's reads (node writes it as it starts).
  if (!t.symbolizer->perf_map_absent() || (young && due) || moment != Moment::kTick)
    (void)t.symbolizer->refresh_perf_map();
}

void StacksExtension::on_image_loaded(model::Trace&, model::Process& p) {
  if (auto it = tracked_.find(p.pid()); it != tracked_.end()) {
    it->second.image_loaded = true;
    it->second.loaded_at = std::chrono::steady_clock::now();
  }
  refresh(p, Moment::kImageLoaded);  // the libraries the dynamic loader mapped since the exec
}

void StacksExtension::on_sample(model::Process& p, model::Sample&) {
  refresh(p, Moment::kSample);
}

void StacksExtension::on_tick(model::Process& p) {
  refresh(p, Moment::kTick);
}

void StacksExtension::on_untrack(model::Process& p) {
  unwind_.forget(p.pid());
  finalize(p);
}

void StacksExtension::on_finish(model::Trace& trace) {
  trace.info.unwind = unwind_.info();
}

symbolize::Stack StacksExtension::symbolize_stack(pid_t pid, symbolize::ProcessSymbolizer* sym,
                                                  int32_t stack_id) {
  std::vector<uint64_t> ips = session_.stack(stack_id);
  if (ips.empty()) return {};
  // Every frame but the innermost is a return address: look up the call instruction before it.
  std::vector<uint64_t> lookup(ips.size());
  for (size_t i = 0; i < ips.size(); ++i) lookup[i] = i == 0 ? ips[i] : ips[i] - 1;
  symbolize::Stack frames;
  if (sym) {
    frames = sym->symbolize(lookup);
  } else {
    for (uint64_t ip : lookup) {
      symbolize::Frame f;
      f.address = ip;
      f.function = fmt::format("0x{:x}", ip);
      frames.push_back(std::move(f));
    }
  }
  js_.name(pid, stack_id, frames);
  std::reverse(frames.begin(), frames.end());  // root first
  return frames;
}

// The fault stacks the kernel sampled since the last call, and the live bytes of the mmap growth stacks,
// brought into p.stacks.
void StacksExtension::collect_kernel_stacks(model::Process& p) {
  // Page faults: sampled in the kernel, one in fault_sample_period.
  uint32_t period = session_.fault_sample_period();
  if (period > 0) {
    auto& faults = p.stacks[model::stack_kind::kPageFaults];
    for (auto [stack_id, n] : session_.take_fault_stacks(p.pid())) {
      auto& w = faults[stack_id];
      w.count += static_cast<int64_t>(n * period);
      w.bytes += static_cast<int64_t>(n * period * kPageBytes);
    }
  }
  // mmap growth still mapped: the mappings that carry their creating stack.
  if (auto growth = p.stacks.find(model::stack_kind::kMmapGrowth); growth != p.stacks.end()) {
    for (auto& [id, w] : growth->second) w.live_bytes = 0;
    for (const auto& m : p.address_space.mappings())
      if (m.stack_id >= 0)
        if (auto w = growth->second.find(m.stack_id); w != growth->second.end())
          w->second.live_bytes += std::llround(static_cast<double>(m.size()) * m.stack_weight);
  }
}

void StacksExtension::symbolize_into(const model::Process& p, const model::StackTable& table,
                                     symbolize::ProcessSymbolizer* sym,
                                     std::map<std::string, std::vector<symbolize::StackSample>>& out) {
  std::map<int32_t, symbolize::Stack> cache;
  for (const auto& [kind, by_stack] : table) {
    auto& samples = out[kind];
    for (const auto& [stack_id, w] : by_stack) {
      if (w.bytes == 0 && w.count == 0) continue;
      auto c = cache.find(stack_id);
      if (c == cache.end()) c = cache.emplace(stack_id, symbolize_stack(p.pid(), sym, stack_id)).first;
      symbolize::StackSample s;
      s.stack = c->second;
      s.values = {w.bytes, w.count, w.live_bytes};
      s.pid = p.pid();
      samples.push_back(std::move(s));
    }
  }
}

void StacksExtension::finalize(model::Process& p) {
  auto it = tracked_.find(p.pid());
  symbolize::ProcessSymbolizer* sym = it == tracked_.end() ? nullptr : it->second.symbolizer.get();
  if (sym) (void)sym->refresh_perf_map();
  js_.scan(std::chrono::milliseconds(0));
  collect_kernel_stacks(p);
  symbolize_into(p, p.stacks, sym, samples_);
  p.stacks.clear();
  bool no_perf_map_names = !sym || !sym->perf_map() || sym->perf_map()->size() == 0;
  // A perf map that could not be used is said either way (a hostile or broken file is worth knowing of),
  // with what named the JS frames instead, if anything did.
  bool from_v8 = js_.reads_js_frames(p.pid());
  if (sym && no_perf_map_names && !sym->perf_map_problem().empty() &&
      p.comm.find("node") != std::string::npos && !(from_v8 && sym->perf_map_absent()))
    p.notes.push_back(from_v8 ? "JS frames are named from V8's metadata, not from the perf map: " +
                                    sym->perf_map_problem()
                              : "JS frames are unnamed: " + sym->perf_map_problem());
  js_.forget(p);
  tracked_.erase(p.pid());
}

std::vector<symbolize::StackProfile> StacksExtension::live_profiles(const model::Trace& trace,
                                                                    model::Process& p,
                                                                    const model::StackTable* since) {
  auto it = tracked_.find(p.pid());
  symbolize::ProcessSymbolizer* sym = it == tracked_.end() ? nullptr : it->second.symbolizer.get();
  if (sym) (void)sym->refresh_perf_map();
  js_.scan(std::chrono::milliseconds(0));
  collect_kernel_stacks(p);
  model::StackTable table = p.stacks;
  if (since) {
    // What accrued since the earlier copy: the counts' differences; live bytes stay as they are now.
    for (auto& [kind, by_stack] : table) {
      auto before = since->find(kind);
      if (before == since->end()) continue;
      for (auto& [id, w] : by_stack)
        if (auto b = before->second.find(id); b != before->second.end()) {
          w.bytes -= b->second.bytes;
          w.count -= b->second.count;
        }
    }
  }
  std::map<std::string, std::vector<symbolize::StackSample>> samples;
  symbolize_into(p, table, sym, samples);
  return build_profiles(trace, samples, true);
}

void StacksExtension::forget(pid_t pid) {
  for (auto& [kind, samples] : samples_)
    std::erase_if(samples, [pid](const symbolize::StackSample& s) { return s.pid == pid; });
}

std::vector<symbolize::StackProfile> StacksExtension::profiles(const model::Trace& trace) const {
  return build_profiles(trace, samples_, false);
}

std::vector<symbolize::StackProfile> StacksExtension::build_profiles(
    const model::Trace& trace, const std::map<std::string, std::vector<symbolize::StackSample>>& by_kind,
    bool keep_empty) {
  std::vector<symbolize::StackProfile> out;
  for (const auto& [kind, samples] : by_kind) {
    if (samples.empty() && !keep_empty) continue;  // nothing of this kind was seen: no empty files
    symbolize::StackProfile prof;
    prof.kind = kind;
    bool faults = kind == model::stack_kind::kPageFaults;
    bool counts_only =
        kind == model::stack_kind::kFdOpens;  // fds still open, by opening stack: a count, no bytes
    if (counts_only)
      prof.sample_types = {{"fds", "count"}};
    else
      prof.sample_types = {
          {"bytes", "bytes"}, {faults ? "faults" : "count", "count"}, {"live_bytes", "bytes"}};
    // Live bytes only mean something where frees are known per stack: a mapping still mapped at the end
    // keeps its creating stack. A backing store's free (even probed) does not know its allocation stack.
    if (!counts_only && kind != model::stack_kind::kMmapGrowth) prof.sample_types.pop_back();
    for (const auto& s : samples) {
      symbolize::StackSample copy = s;
      if (counts_only) copy.values = {s.values.size() > 1 ? s.values[1] : 0};
      copy.values.resize(prof.sample_types.size());
      prof.samples.push_back(std::move(copy));
    }
    prof.duration_ns = static_cast<int64_t>(trace.info.duration_s * 1e9);
    prof.time_ns = trace.info.started_unix_ns;
    out.push_back(std::move(prof));
  }
  return out;
}

}  // namespace memlens::collect
