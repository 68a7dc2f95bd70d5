#include "collect/decode.h"

#include <cstring>

#include "memlens/abi.h"

namespace memlens::collect {

namespace {

template <typename T>
bool read_record(const void* data, size_t size, T& out) {
  if (size < sizeof(T)) return false;
  std::memcpy(&out, data, sizeof(T));
  return true;
}

std::string bounded_string(const char* s, size_t max) {
  return std::string(s, strnlen(s, max));
}

Decoded decode_proc(const ml_event_header& h, const void* data, size_t size) {
  ml_proc_event e;
  if (!read_record(data, size, e)) return Malformed{h.type, static_cast<pid_t>(h.pid)};
  ProcEvent out;
  out.kind = h.type == ML_EV_FORK   ? ProcEvent::Kind::kFork
             : h.type == ML_EV_EXEC ? ProcEvent::Kind::kExec
                                    : ProcEvent::Kind::kExit;
  out.ts_ns = h.ts_ns;
  out.pid = static_cast<pid_t>(h.pid);
  out.ppid = static_cast<pid_t>(e.ppid);
  out.start_time_ns = e.start_time_ns;
  out.exit_code = e.exit_code;
  out.minflt = e.minflt;
  out.majflt = e.majflt;
  out.comm = bounded_string(e.comm, sizeof(e.comm));
  out.flags = e.flags;
  out.hold_error = e.hold_error;
  return Event(std::move(out));
}

Decoded decode_mm(const ml_event_header& h, const void* data, size_t size) {
  ml_mm_event e;
  if (!read_record(data, size, e)) return Malformed{h.type, static_cast<pid_t>(h.pid)};
  MmEvent out;
  switch (h.type) {
    case ML_EV_MMAP:
      out.kind = MmEvent::Kind::kMmap;
      break;
    case ML_EV_MUNMAP:
      out.kind = MmEvent::Kind::kMunmap;
      break;
    case ML_EV_MREMAP:
      out.kind = MmEvent::Kind::kMremap;
      break;
    case ML_EV_BRK:
      out.kind = MmEvent::Kind::kBrk;
      break;
    default:
      out.kind = MmEvent::Kind::kMadvise;
      break;
  }
  out.ts_ns = h.ts_ns;
  out.pid = static_cast<pid_t>(h.pid);
  out.addr = e.addr;
  out.len_bytes = e.len_bytes;
  out.new_len_bytes = e.new_len_bytes;
  out.result = e.result;
  out.prot = e.prot;
  out.flags = e.flags;
  out.fd = e.fd;
  out.advice = e.advice;
  out.offset = e.offset;
  out.stack_id = e.stack_id;
  out.stack_sample_bytes = e.stack_sample_bytes;
  out.caller_ip = e.caller_ip;
  return Event(out);
}

Decoded decode_gc(const ml_event_header& h, const void* data, size_t size) {
  ml_v8_event e;
  if (!read_record(data, size, e)) return Malformed{h.type, static_cast<pid_t>(h.pid)};
  GcEvent out;
  out.ts_ns = h.ts_ns;
  out.pid = static_cast<pid_t>(h.pid);
  out.start_ns = e.start_ns;
  out.kind = e.kind;
  out.usdt = (e.flags & ML_V8_GC_USDT) != 0;
  if (e.flags & ML_V8_GC_HEAP_BEFORE) out.heap_used_before_bytes = e.heap_used_before_bytes;
  if (e.flags & ML_V8_GC_HEAP_AFTER) out.heap_used_after_bytes = e.heap_used_after_bytes;
  out.stack_id = e.stack_id;
  out.stack_weight = e.stack_weight ? e.stack_weight : 1;
  return Event(out);
}

Decoded decode_notice(const ml_event_header& h, const void* data, size_t size) {
  ml_v8_ab_notice n;
  if (!read_record(data, size, n)) return Malformed{h.type, static_cast<pid_t>(h.pid)};
  return Event(ArrayBufferNotice{h.ts_ns, static_cast<pid_t>(h.pid), n.kind, n.addr});
}

Decoded decode_fd(const ml_event_header& h, const void* data, size_t size) {
  ml_fd_event e;
  if (!read_record(data, size, e)) return Malformed{h.type, static_cast<pid_t>(h.pid)};
  FdEvent out;
  out.ts_ns = h.ts_ns;
  out.pid = static_cast<pid_t>(h.pid);
  out.close = h.type == ML_EV_FD_CLOSE;
  out.kind = e.kind;
  out.result = e.result;
  for (size_t i = 0; i < out.args.size(); ++i) out.args[i] = e.args[i];
  out.fds = {e.fds[0], e.fds[1]};
  out.stack_id = e.stack_id;
  out.caller_ip = e.caller_ip;
  if (!out.close && size >= sizeof(ml_fd_path_event))
    out.path = bounded_string(static_cast<const char*>(data) + offsetof(ml_fd_path_event, path), ML_PATH_LEN);
  return Event(std::move(out));
}

}  // namespace

Decoded decode_event(const void* data, size_t size) {
  ml_event_header h;
  if (!read_record(data, size, h)) return Malformed{};
  switch (h.type) {
    case ML_EV_FORK:
    case ML_EV_EXEC:
    case ML_EV_EXIT:
      return decode_proc(h, data, size);
    case ML_EV_MMAP:
    case ML_EV_MUNMAP:
    case ML_EV_MREMAP:
    case ML_EV_BRK:
    case ML_EV_MADVISE:
      return decode_mm(h, data, size);
    case ML_EV_V8_GC:
      return decode_gc(h, data, size);
    case ML_EV_V8_AB_NOTICE:
      return decode_notice(h, data, size);
    case ML_EV_FD_OPEN:
    case ML_EV_FD_CLOSE:
      return decode_fd(h, data, size);
    default:
      return Malformed{h.type, static_cast<pid_t>(h.pid)};
  }
}

const char* event_source(uint32_t event_type) {
  switch (event_type) {
    case ML_EV_V8_GC:
    case ML_EV_V8_AB_NOTICE:
      return "v8";
    case ML_EV_FD_OPEN:
    case ML_EV_FD_CLOSE:
      return "fds";
    default:
      return "tracer";
  }
}

const char* event_source(const Event& e) {
  if (std::holds_alternative<GcEvent>(e) || std::holds_alternative<ArrayBufferNotice>(e)) return "v8";
  if (std::holds_alternative<FdEvent>(e)) return "fds";
  return "tracer";
}

pid_t event_pid(const Event& e) {
  return std::visit([](const auto& v) { return v.pid; }, e);
}

uint64_t event_ts_ns(const Event& e) {
  return std::visit([](const auto& v) { return v.ts_ns; }, e);
}

}  // namespace memlens::collect
