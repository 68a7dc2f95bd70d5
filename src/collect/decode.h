// Ring-buffer records to typed events, decoded once. Pure functions of the bytes they are given: no /proc,
// no probe, no clock, so a live trace and a replay decode alike, and the decoder can be unit-tested and
// fuzzed. What the events mean for the model is applied elsewhere (collect/apply.h, the extensions).
#pragma once

#include <sys/types.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <variant>

namespace memlens::collect {

// fork, exec or exit of a tracked process (struct ml_proc_event).
struct ProcEvent {
  enum class Kind : uint8_t { kFork, kExec, kExit };
  Kind kind = Kind::kFork;
  uint64_t ts_ns = 0;
  pid_t pid = 0;
  pid_t ppid = 0;                   // fork: the parent
  uint64_t start_time_ns = 0;       // task start, CLOCK_BOOTTIME: with the pid, which process
  int32_t exit_code = 0;            // exit: wait status as waitpid gives it
  uint64_t minflt = 0, majflt = 0;  // exit: the kernel's fault counts of all threads
  std::string comm;
  uint32_t flags = 0;      // ML_PROC_*
  int32_t hold_error = 0;  // with ML_PROC_HOLD_FAILED: the negative errno
};

// An address-space call of the C library, at its return (struct ml_mm_event).
struct MmEvent {
  enum class Kind : uint8_t { kMmap, kMunmap, kMremap, kBrk, kMadvise };
  Kind kind = Kind::kMmap;
  uint64_t ts_ns = 0;
  pid_t pid = 0;
  uint64_t addr = 0;
  uint64_t len_bytes = 0;
  uint64_t new_len_bytes = 0;  // mremap
  int64_t result = 0;          // mmap/mremap: the address or -errno; others 0 or -1
  uint32_t prot = 0, flags = 0;
  int32_t fd = -1;
  uint32_t advice = 0;
  uint64_t offset = 0;
  int32_t stack_id = -1;
  // 0: a growing call has its stack whenever stacks are on; else stacks are sampled, one per this many
  // bytes of growth on average (model/growth_sampling.h).
  uint32_t stack_sample_bytes = 0;
  uint64_t caller_ip = 0;
};

// One completed V8 garbage collection (struct ml_v8_event).
struct GcEvent {
  uint64_t ts_ns = 0;  // its end
  pid_t pid = 0;
  uint64_t start_ns = 0;  // its start
  uint32_t kind = 0;      // V8's GarbageCollector, or v8::GCType bits when usdt
  bool usdt = false;
  std::optional<uint64_t> heap_used_before_bytes, heap_used_after_bytes;
  int32_t stack_id = -1;
  uint32_t stack_weight = 1;  // GCs of its kind the stack stands for: GCs' stacks are sampled
};

// An ArrayBuffer sampling window's notice (struct ml_v8_ab_notice).
struct ArrayBufferNotice {
  uint64_t ts_ns = 0;
  pid_t pid = 0;
  uint32_t kind = 0;  // ML_V8_AB_NOTICE_*
  uint64_t addr = 0;  // ML_V8_AB_NOTICE_ALLOCATOR: the allocator object
};

// An fd-creating call that succeeded, or a close (struct ml_fd_event, ml_fd_path_event).
struct FdEvent {
  uint64_t ts_ns = 0;
  pid_t pid = 0;
  bool close = false;  // ML_EV_FD_CLOSE
  uint32_t kind = 0;   // enum ml_fd_kind
  int64_t result = 0;
  std::array<uint64_t, 3> args{};
  std::array<int32_t, 2> fds{-1, -1};
  int32_t stack_id = -1;
  uint64_t caller_ip = 0;
  std::string path;  // open, openat, creat, memfd_create: as the process passed it
};

using Event = std::variant<ProcEvent, MmEvent, GcEvent, ArrayBufferNotice, FdEvent>;

// A record that could not be decoded: shorter than its type needs, or of a type this build does not know.
// Counted as malformed by the source that owns the type (event_source).
struct Malformed {
  uint32_t type = 0;  // 0 when even the header is cut
  pid_t pid = 0;
};

using Decoded = std::variant<Event, Malformed>;

// Decodes one ring-buffer record.
Decoded decode_event(const void* data, size_t size);

// Which loss source (model/loss.h) counts a malformed record of this type: "v8", "fds" or "tracer".
const char* event_source(uint32_t event_type);
const char* event_source(const Event& e);

pid_t event_pid(const Event& e);
uint64_t event_ts_ns(const Event& e);

}  // namespace memlens::collect
