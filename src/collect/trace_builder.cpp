#include "collect/trace_builder.h"

#include <fmt/format.h>
#include <sys/mman.h>

namespace memlens::collect {

namespace {

uint64_t page_align_up(uint64_t len) {
  return (len + 4095) & ~uint64_t{4095};
}

bool is_error_address(int64_t result) {
  return result < 0 && result > -4096;
}

void add_growth(model::Process& p, int32_t stack_id, uint64_t bytes) {
  auto& w = p.stacks["mmap_growth"][stack_id];
  w.bytes += static_cast<int64_t>(bytes);
  w.count += 1;
}

}  // namespace

void apply_mm_event(model::Process& p, const MmEvent& e) {
  auto& as = p.address_space;
  switch (e.kind) {
    case MmEvent::Kind::kMmap: {
      ++p.events.mmap;
      if (is_error_address(e.result)) break;
      model::Mapping m;
      m.start = static_cast<uint64_t>(e.result);
      m.end = m.start + page_align_up(e.len_bytes);
      m.prot = e.prot;
      m.flags = e.flags;
      m.anonymous = (e.flags & MAP_ANONYMOUS) != 0 || e.fd < 0;
      m.file_offset = e.offset;
      m.origin = model::Origin::kMmap;
      m.stack_id = e.stack_id;
      m.caller_ip = e.caller_ip;
      m.created_ns = e.ts_ns;
      if (e.stack_id >= 0) add_growth(p, e.stack_id, m.size());
      // The event has the fd, not the path: keep the path of whatever file this range maps now.
      if (!m.anonymous) m.path = fmt::format("[fd {}]", e.fd);
      as.map(std::move(m));
      break;
    }
    case MmEvent::Kind::kMunmap:
      ++p.events.munmap;
      if (e.result == 0) as.unmap(e.addr, page_align_up(e.len_bytes));
      break;
    case MmEvent::Kind::kMremap:
      ++p.events.mremap;
      if (is_error_address(e.result)) break;
      if (e.stack_id >= 0 && e.new_len_bytes > e.len_bytes)
        add_growth(p, e.stack_id, page_align_up(e.new_len_bytes) - page_align_up(e.len_bytes));
      as.remap(e.addr, page_align_up(e.len_bytes), static_cast<uint64_t>(e.result),
               page_align_up(e.new_len_bytes));
      break;
    case MmEvent::Kind::kBrk:
      ++p.events.brk;
      if (e.result == 0) {
        uint64_t grown = as.set_brk(e.addr, e.ts_ns);
        if (grown > 0 && e.stack_id >= 0) add_growth(p, e.stack_id, grown);
      }
      break;
    case MmEvent::Kind::kMadvise:
      ++p.events.madvise;
      break;
  }
}

void apply_gc_event(const model::Trace& trace, model::Process& p, const GcEvent& e) {
  model::GcEvent g;
  g.t_s = trace.seconds_since_start(e.start_ns);
  g.pause_ms = e.ts_ns >= e.start_ns ? static_cast<double>(e.ts_ns - e.start_ns) / 1e6 : 0;
  g.kind = e.usdt ? model::gc_kind_from_gc_type(e.kind) : model::gc_kind_from_collector(e.kind);
  g.heap_used_before_bytes = e.heap_used_before_bytes;
  if (e.heap_used_after_bytes) {
    g.heap_used_after_bytes = e.heap_used_after_bytes;
    p.v8.heap_used_bytes = *e.heap_used_after_bytes;
  }
  p.v8.gcs.push_back(g);
  // What was running when the GC was triggered; its weight in bytes is what the GC freed, when known.
  if (e.stack_id >= 0) {
    auto& w = p.stacks["gc_triggers"][e.stack_id];
    w.count += 1;
    if (g.heap_used_before_bytes && g.heap_used_after_bytes &&
        *g.heap_used_before_bytes > *g.heap_used_after_bytes)
      w.bytes += static_cast<int64_t>(*g.heap_used_before_bytes - *g.heap_used_after_bytes);
  }
}

}  // namespace memlens::collect
