// A process's open file descriptors as /proc shows them: /proc/PID/fd (readlink, stat through the magic
// link) and /proc/PID/fdinfo (flags). Sockets are named by inode in proc/sock_diag.h.
// Everything here is text the kernel writes, but link targets are chosen by the traced process: parsers
// never trust them.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace memlens::proc {

// What an fd refers to, with the names report.json and the scenarios use.
enum class FdType : uint8_t {
  kUnknown,  // not resolved yet (opened by path, /proc not read since)
  kFile,
  kDirectory,
  kCharDevice,
  kSocket,
  kPipe,
  kEventfd,
  kEpoll,
  kTimerfd,
  kSignalfd,
  kInotify,
  kMemfd,
  kPidfd,
  kIoUring,
  kOther,
};

std::string_view fd_type_name(FdType t);  // "file", "directory", "char_device", "socket", ..., "unknown"

// The type of an fd from its link target ("socket:[123]", "anon_inode:[eventfd]", "/path") and, for a
// path, the st_mode of the file it refers to (0 when stat failed).
FdType classify_fd_target(std::string_view target, mode_t mode);

// The inode in "socket:[123]" or "pipe:[456]", 0 when the target is not of that form.
uint64_t bracket_inode(std::string_view target);

// /proc/PID/fdinfo/N fields.
struct FdInfoFields {
  uint64_t pos = 0;
  uint32_t flags = 0;  // O_* as open(2) flags, octal in the file; includes O_CLOEXEC
};
std::optional<FdInfoFields> parse_fdinfo(std::string_view text);

struct ProcFd {
  int fd = -1;
  std::string target;  // readlink of /proc/PID/fd/N
  FdType type = FdType::kOther;
  uint64_t inode = 0;  // st_ino of what the fd refers to
  uint64_t device = 0;
  std::optional<uint32_t> flags;  // from fdinfo, when readable
  bool cloexec() const;
};

struct FdScanOptions {
  bool read_fdinfo = true;
  size_t max_fds = 1u << 20;  // bound on the work for one process
};

// Every open fd of pid, sorted by number. An fd closed while the directory is read is left out.
Result<std::vector<ProcFd>> scan_fds(pid_t pid, const FdScanOptions& opts = {});
// The numbers of pid's open fds, sorted: readdir of /proc/PID/fd only (no readlink), cheap enough for
// every sample. An error with E2BIG when more than max_fds are open (the listing would be incomplete).
Result<std::vector<int>> list_fds(pid_t pid, size_t max_fds);
// The inodes of pid's sockets, sorted: a readlink of each fd and nothing more. An error when the fds
// cannot be listed (not an empty list: the caller would take every socket for gone).
Result<std::vector<uint64_t>> socket_inodes(pid_t pid);
// One fd of pid; an error when it is not open.
Result<ProcFd> read_fd(pid_t pid, int fd, bool read_fdinfo = false);

}  // namespace memlens::proc
