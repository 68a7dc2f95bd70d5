// File access as a root tool must do it: files named by the traced process (perf maps, binaries) are
// opened under /proc/PID/root without following links out of it, only regular files are accepted, every
// read is bounded; output files are created exclusively and put in place by rename.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/result.h"

namespace memlens {

// An open file descriptor, closed by the destructor.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& o) noexcept : fd_(o.release()) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept;
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd();
  int get() const { return fd_; }
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }
  explicit operator bool() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

struct OpenedFile {
  UniqueFd fd;
  uid_t owner_uid = 0;
  off_t size = 0;
  dev_t device = 0;
  ino_t inode = 0;
};

// Opens path_in_process as process `pid` sees it (resolved inside /proc/PID/root: with openat2
// RESOLVE_IN_ROOT|RESOLVE_NO_MAGICLINKS where the kernel has it, so neither `..` nor an absolute link
// escapes). With no_symlinks, any symlink on the way is refused. Only a regular file is accepted.
Result<OpenedFile> open_in_process_root(pid_t pid, const std::string& path_in_process, bool no_symlinks);

// Opens a regular file on the host, refusing a symlink in the last component.
Result<OpenedFile> open_regular_file(const std::string& path);

struct BoundedRead {
  std::string data;
  bool truncated = false;  // the file was larger than the bound; data holds its first max_bytes
};
// Reads at most max_bytes from fd (from its current offset).
Result<BoundedRead> read_bounded(int fd, size_t max_bytes);
// Reads a small text file such as /proc/PID/status (host path, bounded).
Result<std::string> read_text_file(const std::string& path, size_t max_bytes = 4 << 20);

// Writes content to path atomically: a temporary file in the same directory created with
// O_EXCL|O_NOFOLLOW, fsync, then rename over path. On failure (a full disk) the old file stays intact and
// the temporary is removed.
Status write_file_atomic(const std::string& path, std::string_view content);

// Creates dir (and parents) if missing; refuses a path that exists and is not a directory.
Status ensure_directory(const std::string& dir);

// Room a trace's report files need at the least (report.json, report.html and the profiles of a short
// trace); a file system with less is refused before tracing rather than after.
inline constexpr uint64_t kMinFreeOutputBytes = 4 << 20;

// The --out directory, checked before tracing: refused when it is a symbolic link, created if missing,
// and proven writable (read-only file system, permissions, a nearly full disk) without leaving a file.
Status prepare_output_directory(const std::string& dir);

}  // namespace memlens
