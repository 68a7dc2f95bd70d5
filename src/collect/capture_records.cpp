#include "collect/capture_records.h"

#include <fmt/format.h>

#include <cstring>
#include <type_traits>

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
  return w.take();
}

std::string encode(const GcEvent& e) {
  Writer w;
  w.put(e.ts_ns).put(e.pid).put(e.start_ns).put(e.kind).put(static_cast<uint8_t>(e.usdt));
  put_optional(w, e.heap_used_before_bytes);
  put_optional(w, e.heap_used_after_bytes);
  w.put(e.stack_id);
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

}  // namespace memlens::collect
