#include "collect/capture_records.h"

#include <fmt/format.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <map>
#include <tuple>
#include <type_traits>

#include "collect/end_state_cbor.h"

namespace memlens::collect {

namespace {

// The unsigned integer of T's width (T an integer or an enum).
template <typename T, bool = std::is_enum_v<T>>
struct Bits {
  using type = std::make_unsigned_t<T>;
};
template <typename T>
struct Bits<T, true> {
  using type = std::make_unsigned_t<std::underlying_type_t<T>>;
};

class Writer {
 public:
  template <typename T>
  Writer& put(T v) {
    static_assert(std::is_integral_v<T> || std::is_enum_v<T>);
    using U = typename Bits<T>::type;
    auto u = static_cast<U>(v);
    for (size_t i = 0; i < sizeof(U); ++i)
      out_.push_back(static_cast<char>((static_cast<uint64_t>(u) >> (8 * i)) & 0xff));
    return *this;
  }
  Writer& put_string(const std::string& s) {
    put(static_cast<uint32_t>(s.size()));
    out_ += s;
    return *this;
  }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  template <typename T>
  Reader& get(T& v) {
    using U = typename Bits<T>::type;
    if (in_.size() < sizeof(U)) {
      ok_ = false;
      return *this;
    }
    uint64_t u = 0;
    for (size_t i = 0; i < sizeof(U); ++i)
      u |= static_cast<uint64_t>(static_cast<uint8_t>(in_[i])) << (8 * i);
    in_.remove_prefix(sizeof(U));
    v = static_cast<T>(static_cast<U>(u));
    return *this;
  }
  // A flag byte: 0 or 1, anything else refused (one encoding per value).
  Reader& get_bool(bool& b) {
    uint8_t v = 0;
    get(v);
    if (v > 1) ok_ = false;
    b = v == 1;
    return *this;
  }
  void fail() { ok_ = false; }
  Reader& get_string(std::string& s, size_t max) {
    uint32_t n = 0;
    get(n);
    if (!ok_ || n > in_.size() || n > max) {
      ok_ = false;
      return *this;
    }
    s.assign(in_.data(), n);
    in_.remove_prefix(n);
    return *this;
  }
  bool ok() const { return ok_; }
  bool at_end() const { return in_.empty(); }

 private:
  std::string_view in_;
  bool ok_ = true;
};

// The longest string a record carries (paths, comm): what the kernel side can send, with room to spare.
constexpr size_t kMaxString = 4096;

void put_optional(Writer& w, const std::optional<uint64_t>& v) {
  w.put(static_cast<uint8_t>(v.has_value())).put(v.value_or(0));
}

void get_optional(Reader& r, std::optional<uint64_t>& v) {
  bool has = false;
  uint64_t x = 0;
  r.get_bool(has).get(x);
  if (has)
    v = x;
  else if (x != 0)
    r.fail();  // an absent value is written as 0
}

std::string encode(const ProcEvent& e) {
  Writer w;
  w.put(e.kind).put(e.ts_ns).put(e.pid).put(e.ppid).put(e.start_time_ns).put(e.exit_code).put(e.minflt);
  w.put(e.majflt).put(e.flags).put(e.hold_error).put_string(e.comm);
  return w.take();
}

std::string encode(const MmEvent& e) {
  Writer w;
  w.put(e.kind).put(e.ts_ns).put(e.pid).put(e.addr).put(e.len_bytes).put(e.new_len_bytes).put(e.result);
  w.put(e.prot).put(e.flags).put(e.fd).put(e.advice).put(e.offset).put(e.stack_id).put(e.caller_ip);
  w.put(e.stack_sample_bytes);  // last: a capture without it (every stack kept) is read as 0
  return w.take();
}

std::string encode(const GcEvent& e) {
  Writer w;
  w.put(e.ts_ns).put(e.pid).put(e.start_ns).put(e.kind).put(static_cast<uint8_t>(e.usdt));
  put_optional(w, e.heap_used_before_bytes);
  put_optional(w, e.heap_used_after_bytes);
  w.put(e.stack_id);
  w.put(e.stack_weight);  // last: a capture without it (every GC's stack kept) is read as 1
  return w.take();
}

std::string encode(const ArrayBufferNotice& e) {
  Writer w;
  w.put(e.ts_ns).put(e.pid).put(e.kind).put(e.addr);
  return w.take();
}

std::string encode(const FdEvent& e) {
  Writer w;
  w.put(e.ts_ns).put(e.pid).put(static_cast<uint8_t>(e.close)).put(e.kind).put(e.result);
  for (uint64_t a : e.args) w.put(a);
  for (int32_t f : e.fds) w.put(f);
  w.put(e.stack_id).put(e.caller_ip).put_string(e.path);
  return w.take();
}

template <typename E>
Result<Event> finish(Reader& r, E&& e, const char* what) {
  if (!r.ok()) return make_error(fmt::format("a {} record is cut short", what), EINVAL);
  return Event(std::forward<E>(e));
}

}  // namespace

bool is_event_record(uint16_t type) {
  return type >= kRecordProcEvent && type <= kRecordFdEvent;
}

uint16_t event_record_type(const Event& e) {
  switch (e.index()) {
    case 0:
      return kRecordProcEvent;
    case 1:
      return kRecordMmEvent;
    case 2:
      return kRecordGcEvent;
    case 3:
      return kRecordArrayBufferNotice;
    default:
      return kRecordFdEvent;
  }
}

std::string encode_event(const Event& e) {
  return std::visit([](const auto& v) { return encode(v); }, e);
}

Result<Event> decode_event_record(uint16_t type, std::string_view payload) {
  Reader r(payload);
  switch (type) {
    case kRecordProcEvent: {
      ProcEvent e;
      r.get(e.kind).get(e.ts_ns).get(e.pid).get(e.ppid).get(e.start_time_ns).get(e.exit_code).get(e.minflt);
      r.get(e.majflt).get(e.flags).get(e.hold_error).get_string(e.comm, kMaxString);
      if (r.ok() && static_cast<uint8_t>(e.kind) > static_cast<uint8_t>(ProcEvent::Kind::kExit))
        return make_error("a process event record has an unknown kind", EINVAL);
      return finish(r, std::move(e), "process event");
    }
    case kRecordMmEvent: {
      MmEvent e;
      r.get(e.kind).get(e.ts_ns).get(e.pid).get(e.addr).get(e.len_bytes).get(e.new_len_bytes).get(e.result);
      r.get(e.prot).get(e.flags).get(e.fd).get(e.advice).get(e.offset).get(e.stack_id).get(e.caller_ip);
      if (!r.at_end()) r.get(e.stack_sample_bytes);
      if (r.ok() && static_cast<uint8_t>(e.kind) > static_cast<uint8_t>(MmEvent::Kind::kMadvise))
        return make_error("an address-space event record has an unknown kind", EINVAL);
      return finish(r, e, "address-space event");
    }
    case kRecordGcEvent: {
      GcEvent e;
      r.get(e.ts_ns).get(e.pid).get(e.start_ns).get(e.kind).get_bool(e.usdt);
      get_optional(r, e.heap_used_before_bytes);
      get_optional(r, e.heap_used_after_bytes);
      r.get(e.stack_id);
      if (!r.at_end()) r.get(e.stack_weight);
      if (r.ok() && e.stack_weight == 0) return make_error("a GC event record weighs its stack 0", EINVAL);
      return finish(r, e, "GC event");
    }
    case kRecordArrayBufferNotice: {
      ArrayBufferNotice e;
      r.get(e.ts_ns).get(e.pid).get(e.kind).get(e.addr);
      return finish(r, e, "ArrayBuffer notice");
    }
    case kRecordFdEvent: {
      FdEvent e;
      r.get(e.ts_ns).get(e.pid).get_bool(e.close).get(e.kind).get(e.result);
      for (auto& a : e.args) r.get(a);
      for (auto& f : e.fds) r.get(f);
      r.get(e.stack_id).get(e.caller_ip).get_string(e.path, kMaxString);
      return finish(r, std::move(e), "fd event");
    }
    default:
      return make_error(fmt::format("record type {} is not an event", type), EINVAL);
  }
}

std::string encode_track_start(const TrackStart& t) {
  Writer w;
  w.put(t.ts_ns).put(t.pid).put(t.ppid).put(t.start_time_ns);
  w.put(static_cast<uint8_t>(t.attached_late)).put(static_cast<uint8_t>(t.before_command_exec));
  return w.take();
}

Result<TrackStart> decode_track_start(std::string_view payload) {
  TrackStart t;
  Reader r(payload);
  r.get(t.ts_ns).get(t.pid).get(t.ppid).get(t.start_time_ns).get_bool(t.attached_late);
  r.get_bool(t.before_command_exec);
  if (!r.ok()) return make_error("a process-tracked record is shorter than its fields", EINVAL);
  return t;
}

bool is_host_answer_record(uint16_t type) {
  return (type >= kRecordProcessIdentity && type <= kRecordProcessEndState) || type == kRecordV8EndState ||
         type == kRecordCapabilitiesEndState || type == kRecordAddressSpaceUnmapped;
}

uint16_t host_answer_record_type(const HostAnswer& a) {
  static constexpr uint16_t kTypes[] = {
      kRecordProcessIdentity, kRecordProcessSample,        kRecordAddressSpaceSeed,    kRecordProcessEndState,
      kRecordV8EndState,      kRecordCapabilitiesEndState, kRecordAddressSpaceUnmapped};
  return kTypes[a.index()];
}

namespace {

// The longest command line a record carries, in arguments.
constexpr uint32_t kMaxArgs = 4096;
// Attribution categories in one sample, at most.
constexpr uint32_t kMaxCategories = 256;
// Notes of one process, at most.
constexpr uint32_t kMaxNotes = 4096;
// Mappings in one seed, at most (the kernel's default vm.max_map_count is 65530).
constexpr uint32_t kMaxMappings = 1u << 20;

// A time or duration in seconds as memlens writes it: finite, and within the range of a trace.
bool finite_time(double s) {
  return std::isfinite(s) && std::fabs(s) < 1e9;
}

std::string encode(const ProcessIdentity& id) {
  Writer w;
  w.put(id.pid).put(id.start_time_ns).put(static_cast<uint8_t>(id.new_process));
  w.put(std::bit_cast<uint64_t>(id.first_seen_s));
  w.put_string(id.comm).put_string(id.exe).put(static_cast<uint32_t>(id.cmdline.size()));
  for (const auto& a : id.cmdline) w.put_string(a);
  w.put(id.minflt_at_start).put(id.majflt_at_start).put(id.thread_minflt_at_start);
  w.put(id.thread_majflt_at_start);
  return w.take();
}

std::string encode(const ProcessSample& s) {
  Writer w;
  const auto& m = s.sample;
  w.put(s.pid).put(s.start_time_ns).put(std::bit_cast<uint64_t>(m.t_s));
  w.put(m.rss.anon_bytes).put(m.rss.file_bytes).put(m.rss.shmem_bytes).put(m.rss.swap_bytes);
  w.put(m.faults).put(m.events);
  put_optional(w, m.js_heap_used_bytes);
  put_optional(w, m.array_buffers_bytes);
  put_optional(w, m.fds_open);
  w.put(static_cast<uint32_t>(m.categories.size()));
  for (const auto& [name, bytes] : m.categories) w.put_string(name).put(bytes);
  w.put(s.rss_peak_bytes).put(s.minflt).put(s.majflt).put(s.faults_user).put(s.faults_kernel);
  w.put(s.fault_sample_period).put(static_cast<uint8_t>(s.has_kernel_fault_counts));
  w.put(s.lost_ring_full).put(s.lost_map_full);
  w.put(static_cast<uint8_t>(s.at_exit)).put(static_cast<uint8_t>(s.exit_event)).put(s.wait_status);
  w.put(static_cast<uint8_t>(s.figures_only));
  return w.take();
}

// A mapping's permissions as bits: read, write, exec, shared.
uint8_t map_bits(const proc::MapEntry& m) {
  return static_cast<uint8_t>(m.read | m.write << 1 | m.exec << 2 | m.shared << 3);
}

std::string encode(const AddressSpaceSeed& seed) {
  Writer w;
  w.put(seed.pid).put(seed.start_time_ns).put(seed.now_ns).put(static_cast<uint32_t>(seed.maps.size()));
  for (const auto& m : seed.maps) {
    w.put(m.start).put(m.end).put(map_bits(m)).put(m.offset).put(m.dev_major).put(m.dev_minor).put(m.inode);
    w.put_string(m.path);
  }
  return w.take();
}

std::string encode(const AddressSpaceUnmapped& u) {
  Writer w;
  w.put(u.pid).put(u.start_time_ns).put(u.now_ns).put(static_cast<uint32_t>(u.ranges.size()));
  for (const auto& [start, len] : u.ranges) w.put(start).put(len);
  return w.take();
}

std::string encode(const ProcessEndState& s) {
  Writer w;
  w.put(s.pid).put(s.start_time_ns).put(static_cast<uint32_t>(s.notes.size()));
  for (const auto& n : s.notes) w.put_string(n);
  w.put(s.holds).put(std::bit_cast<uint64_t>(s.held_s)).put(std::bit_cast<uint64_t>(s.untraced_s));
  w.put_string(s.untraced_reason).put(static_cast<uint32_t>(s.lost_by_source.size()));
  for (const auto& [source, l] : s.lost_by_source) {
    w.put_string(source);
    for (const auto& [cause, n] : l.by_cause()) w.put(n);
  }
  return w.take();
}

// The V8 state's fields beside its GCs, in one order for both directions: flags, strings, figures.
template <typename V>
auto v8_flags(V& v) {
  return std::tie(v.probed, v.array_buffers_probed, v.array_buffers_counting,
                  v.array_buffers_baseline_unknown, v.external_probed);
}
template <typename V>
auto v8_strings(V& v) {
  return std::tie(v.probe_source, v.holder_path, v.array_buffers_source);
}
template <typename V>
auto v8_figures(V& v) {
  return std::tie(v.array_buffer_live_bytes, v.array_buffer_peak_bytes, v.array_buffer_allocators,
                  v.array_buffer_allocated_total, v.array_buffer_freed_total, v.array_buffer_allocations,
                  v.array_buffer_frees, v.external_adjustments_bytes, v.external_adjustments);
}

std::string encode(const V8EndState& s) {
  Writer w;
  w.put(s.pid).put(s.start_time_ns);
  std::apply([&](const auto&... b) { (w.put(static_cast<uint8_t>(b)), ...); }, v8_flags(s.v8));
  std::apply([&](const auto&... str) { (w.put_string(str), ...); }, v8_strings(s.v8));
  std::apply([&](const auto&... n) { (w.put(n), ...); }, v8_figures(s.v8));
  put_optional(w, s.v8.heap_used_bytes);
  put_optional(w, s.v8.heap_size_limit_bytes);
  return w.take();
}

std::string encode(const CapabilitiesEndState& s) {
  return encode_capabilities_end_state(s);
}

}  // namespace

std::string encode_host_answer(const HostAnswer& a) {
  return std::visit([](const auto& v) { return encode(v); }, a);
}

Result<HostAnswer> decode_host_answer(uint16_t type, std::string_view payload) {
  Reader r(payload);
  if (type == kRecordProcessIdentity) {
    ProcessIdentity id;
    uint32_t argc = 0;
    uint64_t seen_bits = 0;
    r.get(id.pid).get(id.start_time_ns).get_bool(id.new_process).get(seen_bits);
    id.first_seen_s = std::bit_cast<double>(seen_bits);
    if (!finite_time(id.first_seen_s)) r.fail();
    r.get_string(id.comm, kMaxString).get_string(id.exe, kMaxString).get(argc);
    if (argc > kMaxArgs) r.fail();
    for (uint32_t i = 0; r.ok() && i < argc; ++i) r.get_string(id.cmdline.emplace_back(), kMaxString);
    r.get(id.minflt_at_start).get(id.majflt_at_start).get(id.thread_minflt_at_start);
    r.get(id.thread_majflt_at_start);
    if (!r.ok()) return make_error("a process identity record is shorter than its fields", EINVAL);
    return HostAnswer{std::move(id)};
  }
  if (type == kRecordProcessSample) {
    ProcessSample s;
    auto& m = s.sample;
    uint64_t t_bits = 0;
    uint32_t n = 0;
    r.get(s.pid).get(s.start_time_ns).get(t_bits);
    m.t_s = std::bit_cast<double>(t_bits);
    if (!finite_time(m.t_s)) r.fail();  // the analyses sort and fit by time
    r.get(m.rss.anon_bytes).get(m.rss.file_bytes).get(m.rss.shmem_bytes).get(m.rss.swap_bytes);
    r.get(m.faults).get(m.events);
    get_optional(r, m.js_heap_used_bytes);
    get_optional(r, m.array_buffers_bytes);
    get_optional(r, m.fds_open);
    r.get(n);
    if (n > kMaxCategories) r.fail();
    for (uint32_t i = 0; r.ok() && i < n; ++i) {
      std::string name;
      uint64_t bytes = 0;
      r.get_string(name, kMaxString).get(bytes);
      // Written in order, each once: one encoding per sample.
      if (!m.categories.empty() && name <= m.categories.rbegin()->first) r.fail();
      m.categories[name] = bytes;
    }
    r.get(s.rss_peak_bytes).get(s.minflt).get(s.majflt).get(s.faults_user).get(s.faults_kernel);
    r.get(s.fault_sample_period).get_bool(s.has_kernel_fault_counts);
    r.get(s.lost_ring_full).get(s.lost_map_full);
    r.get_bool(s.at_exit).get_bool(s.exit_event).get(s.wait_status).get_bool(s.figures_only);
    if (!r.ok()) return make_error("a process sample record is shorter than its fields", EINVAL);
    return HostAnswer{std::move(s)};
  }
  if (type == kRecordAddressSpaceSeed) {
    AddressSpaceSeed seed;
    uint32_t n = 0;
    r.get(seed.pid).get(seed.start_time_ns).get(seed.now_ns).get(n);
    if (n > kMaxMappings) r.fail();
    for (uint32_t i = 0; r.ok() && i < n; ++i) {
      auto& m = seed.maps.emplace_back();
      uint8_t bits = 0;
      r.get(m.start).get(m.end).get(bits).get(m.offset).get(m.dev_major).get(m.dev_minor).get(m.inode);
      r.get_string(m.path, kMaxString);
      if (bits > 15) r.fail();
      m.read = bits & 1;
      m.write = bits & 2;
      m.exec = bits & 4;
      m.shared = bits & 8;
    }
    if (!r.ok()) return make_error("an address-space seed record is shorter than its fields", EINVAL);
    return HostAnswer{std::move(seed)};
  }
  if (type == kRecordAddressSpaceUnmapped) {
    AddressSpaceUnmapped u;
    uint32_t n = 0;
    r.get(u.pid).get(u.start_time_ns).get(u.now_ns).get(n);
    if (n > kMaxMappings) r.fail();
    for (uint32_t i = 0; r.ok() && i < n; ++i) {
      auto& [start, len] = u.ranges.emplace_back();
      r.get(start).get(len);
    }
    if (!r.ok()) return make_error("an address-space unmapped record is shorter than its fields", EINVAL);
    return HostAnswer{std::move(u)};
  }
  if (type == kRecordCapabilitiesEndState) {
    auto s = decode_capabilities_end_state(payload);
    if (!s) return s.error();
    return HostAnswer{std::move(*s)};
  }
  if (type == kRecordV8EndState) {
    V8EndState s;
    r.get(s.pid).get(s.start_time_ns);
    std::apply([&](auto&... b) { (r.get_bool(b), ...); }, v8_flags(s.v8));
    std::apply([&](auto&... str) { (r.get_string(str, kMaxString), ...); }, v8_strings(s.v8));
    std::apply([&](auto&... n) { (r.get(n), ...); }, v8_figures(s.v8));
    get_optional(r, s.v8.heap_used_bytes);
    get_optional(r, s.v8.heap_size_limit_bytes);
    if (!r.ok()) return make_error("a V8 end-state record is shorter than its fields", EINVAL);
    return HostAnswer{std::move(s)};
  }
  if (type == kRecordProcessEndState) {
    ProcessEndState s;
    uint32_t n = 0, sources = 0;
    uint64_t held = 0, untraced = 0;
    r.get(s.pid).get(s.start_time_ns).get(n);
    if (n > kMaxNotes) r.fail();
    for (uint32_t i = 0; r.ok() && i < n; ++i) r.get_string(s.notes.emplace_back(), kMaxString);
    r.get(s.holds).get(held).get(untraced).get_string(s.untraced_reason, kMaxString).get(sources);
    s.held_s = std::bit_cast<double>(held);
    s.untraced_s = std::bit_cast<double>(untraced);
    if (!finite_time(s.held_s) || !finite_time(s.untraced_s)) r.fail();
    if (sources > kMaxCategories) r.fail();
    for (uint32_t i = 0; r.ok() && i < sources; ++i) {
      std::string source;
      model::EventLoss l;
      r.get_string(source, kMaxString).get(l.ring_full).get(l.map_full).get(l.malformed);
      r.get(l.unknown_process).get(l.unpaired);
      // Written in order, each once.
      if (!s.lost_by_source.empty() && source <= s.lost_by_source.rbegin()->first) r.fail();
      s.lost_by_source[source] = l;
    }
    if (!r.ok()) return make_error("a process end-state record is shorter than its fields", EINVAL);
    return HostAnswer{std::move(s)};
  }
  return make_error(fmt::format("record type {} is not a host record", type), EINVAL);
}

CaptureEvents capture_events(const Capture& capture) {
  CaptureEvents out;
  for (const auto& r : capture.records) {
    if (!is_event_record(r.type)) {
      ++out.unknown_records;
      continue;
    }
    auto e = decode_event_record(r.type, r.payload);
    if (e)
      out.events.push_back(std::move(*e));
    else
      ++out.malformed_records;
  }
  return out;
}

namespace {

// Bounds that keep a hostile record from asking for more than its own bytes can hold.
constexpr size_t kMaxFrameName = 64u << 10;

auto frame_identity(const symbolize::Frame& f) {
  return std::tie(f.kind, f.function, f.module, f.build_id, f.address, f.file_offset, f.symbol_offset);
}

}  // namespace

std::string encode_stack_profile(const symbolize::StackProfile& profile) {
  // The frame table: each distinct frame once, in order of first use.
  std::vector<const symbolize::Frame*> table;
  std::map<decltype(frame_identity(std::declval<const symbolize::Frame&>())), uint32_t> index;
  std::vector<std::vector<uint32_t>> stacks;
  for (const auto& s : profile.samples) {
    auto& ids = stacks.emplace_back();
    for (const auto& f : s.stack) {
      auto [it, added] = index.emplace(frame_identity(f), static_cast<uint32_t>(table.size()));
      if (added) table.push_back(&f);
      ids.push_back(it->second);
    }
  }
  Writer w;
  w.put_string(profile.kind).put(profile.time_ns).put(profile.duration_ns);
  w.put(static_cast<uint32_t>(profile.sample_types.size()));
  for (const auto& t : profile.sample_types) w.put_string(t.type).put_string(t.unit);
  w.put(static_cast<uint32_t>(table.size()));
  for (const auto* f : table) {
    w.put(f->kind).put_string(f->function).put_string(f->module).put_string(f->build_id);
    w.put(f->address).put(f->file_offset).put(f->symbol_offset);
  }
  w.put(static_cast<uint32_t>(profile.samples.size()));
  for (size_t i = 0; i < profile.samples.size(); ++i) {
    const auto& s = profile.samples[i];
    w.put(static_cast<int32_t>(s.pid)).put(static_cast<uint32_t>(stacks[i].size()));
    for (uint32_t id : stacks[i]) w.put(id);
    for (size_t v = 0; v < profile.sample_types.size(); ++v) w.put(v < s.values.size() ? s.values[v] : 0);
  }
  return w.take();
}

Result<symbolize::StackProfile> decode_stack_profile(std::string_view payload) {
  Reader r(payload);
  symbolize::StackProfile p;
  r.get_string(p.kind, kMaxString).get(p.time_ns).get(p.duration_ns);
  // Every count is checked against the bytes left: each element takes at least one byte per field.
  auto count = [&](uint32_t& n, size_t min_bytes) {
    r.get(n);
    if (r.ok() && static_cast<uint64_t>(n) * min_bytes > payload.size()) r.fail();
    return r.ok();
  };
  uint32_t n_types = 0;
  if (count(n_types, 8))
    for (uint32_t i = 0; i < n_types && r.ok(); ++i) {
      auto& t = p.sample_types.emplace_back();
      r.get_string(t.type, kMaxString).get_string(t.unit, kMaxString);
    }
  std::vector<symbolize::Frame> table;
  uint32_t n_frames = 0;
  if (r.ok() && count(n_frames, 37))
    for (uint32_t i = 0; i < n_frames && r.ok(); ++i) {
      auto& f = table.emplace_back();
      uint8_t kind = 0;
      r.get(kind).get_string(f.function, kMaxFrameName).get_string(f.module, kMaxString);
      r.get_string(f.build_id, kMaxString).get(f.address).get(f.file_offset).get(f.symbol_offset);
      if (kind > static_cast<uint8_t>(symbolize::FrameKind::kUnknown)) r.fail();
      f.kind = static_cast<symbolize::FrameKind>(kind);
    }
  uint32_t n_samples = 0;
  if (r.ok() && count(n_samples, 8))
    for (uint32_t i = 0; i < n_samples && r.ok(); ++i) {
      auto& s = p.samples.emplace_back();
      int32_t pid = 0;
      uint32_t depth = 0;
      r.get(pid);
      if (!count(depth, 4)) break;
      s.pid = pid;
      for (uint32_t d = 0; d < depth && r.ok(); ++d) {
        uint32_t id = 0;
        r.get(id);
        if (id >= table.size()) {
          r.fail();
          break;
        }
        s.stack.push_back(table[id]);
      }
      s.values.resize(p.sample_types.size());
      for (auto& v : s.values) r.get(v);
    }
  if (!r.ok())
    return make_error("stack profile record is shorter than its fields or names a frame it lacks", EINVAL);
  return p;
}

}  // namespace memlens::collect
