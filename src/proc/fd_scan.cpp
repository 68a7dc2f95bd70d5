#include "proc/fd_scan.h"

#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include "common/safe_file.h"
#include "common/text.h"

namespace memlens::proc {

std::string_view fd_type_name(FdType t) {
  switch (t) {
    case FdType::kUnknown:
      return "unknown";
    case FdType::kFile:
      return "file";
    case FdType::kDirectory:
      return "directory";
    case FdType::kCharDevice:
      return "char_device";
    case FdType::kSocket:
      return "socket";
    case FdType::kPipe:
      return "pipe";
    case FdType::kEventfd:
      return "eventfd";
    case FdType::kEpoll:
      return "epoll";
    case FdType::kTimerfd:
      return "timerfd";
    case FdType::kSignalfd:
      return "signalfd";
    case FdType::kInotify:
      return "inotify";
    case FdType::kMemfd:
      return "memfd";
    case FdType::kPidfd:
      return "pidfd";
    case FdType::kIoUring:
      return "io_uring";
    case FdType::kOther:
      return "other";
  }
  return "other";
}

FdType classify_fd_target(std::string_view target, mode_t mode) {
  if (target.starts_with("socket:[")) return FdType::kSocket;
  if (target.starts_with("pipe:[")) return FdType::kPipe;
  if (target.starts_with("anon_inode:")) {
    std::string_view name = target.substr(11);
    if (name.starts_with("[") && name.ends_with("]")) name = name.substr(1, name.size() - 2);
    if (name == "eventfd") return FdType::kEventfd;
    if (name == "eventpoll") return FdType::kEpoll;
    if (name == "timerfd") return FdType::kTimerfd;
    if (name == "signalfd") return FdType::kSignalfd;
    if (name == "inotify") return FdType::kInotify;
    if (name == "pidfd") return FdType::kPidfd;
    if (name == "io_uring") return FdType::kIoUring;
    return FdType::kOther;
  }
  if (target.starts_with("/memfd:")) return FdType::kMemfd;
  if (target.starts_with("/")) {
    if (S_ISREG(mode)) return FdType::kFile;
    if (S_ISDIR(mode)) return FdType::kDirectory;
    if (S_ISCHR(mode)) return FdType::kCharDevice;
    return FdType::kOther;
  }
  return FdType::kOther;
}

uint64_t bracket_inode(std::string_view target) {
  size_t open = target.find(":[");
  if (open == std::string_view::npos || !target.ends_with("]")) return 0;
  uint64_t ino = 0;
  if (!parse_number(target.substr(open + 2, target.size() - open - 3), ino)) return 0;
  return ino;
}

std::optional<FdInfoFields> parse_fdinfo(std::string_view text) {
  FdInfoFields f;
  bool have_flags = false;
  for_each_line(text, [&](std::string_view line) {
    auto parts = split_ws(line);
    if (parts.size() < 2) return;
    if (parts[0] == "pos:") parse_number(parts[1], f.pos);
    if (parts[0] == "flags:") have_flags = parse_number(parts[1], f.flags, 8);
  });
  if (!have_flags) return std::nullopt;
  return f;
}

bool ProcFd::cloexec() const {
  return flags && (*flags & O_CLOEXEC) != 0;
}

Result<ProcFd> read_fd(pid_t pid, int fd, bool read_fdinfo) {
  ProcFd out;
  out.fd = fd;
  std::string link = fmt::format("/proc/{}/fd/{}", pid, fd);
  char buf[4096];
  ssize_t n = readlink(link.c_str(), buf, sizeof(buf) - 1);
  if (n < 0) return errno_error("cannot read " + link);
  out.target.assign(buf, static_cast<size_t>(n));
  struct stat st {};
  mode_t mode = 0;
  // stat through the magic link reaches the open file itself, whatever its path has become.
  if (stat(link.c_str(), &st) == 0) {
    mode = st.st_mode;
    out.inode = st.st_ino;
    out.device = st.st_dev;
  }
  out.type = classify_fd_target(out.target, mode);
  if (read_fdinfo) {
    if (auto text = read_text_file(fmt::format("/proc/{}/fdinfo/{}", pid, fd), 64 << 10))
      if (auto f = parse_fdinfo(*text)) out.flags = f->flags;
  }
  return out;
}

Result<std::vector<int>> list_fds(pid_t pid, size_t max_fds) {
  std::string dir = fmt::format("/proc/{}/fd", pid);
  DIR* d = opendir(dir.c_str());
  if (!d) return errno_error("cannot list " + dir);
  std::vector<int> numbers;
  bool too_many = false;
  errno = 0;
  while (dirent* e = readdir(d)) {
    int fd = -1;
    if (!parse_number(std::string_view(e->d_name), fd) || fd < 0) continue;
    if (numbers.size() >= max_fds) {
      too_many = true;
      break;
    }
    numbers.push_back(fd);
  }
  int err = errno;
  closedir(d);
  if (too_many) return make_error(fmt::format("{} lists more than {} fds", dir, max_fds), E2BIG);
  if (err != 0) return make_error("cannot read " + dir, err);
  std::sort(numbers.begin(), numbers.end());
  return numbers;
}

Result<std::vector<ProcFd>> scan_fds(pid_t pid, const FdScanOptions& opts) {
  std::string dir = fmt::format("/proc/{}/fd", pid);
  DIR* d = opendir(dir.c_str());
  if (!d) return errno_error("cannot list " + dir);
  std::vector<int> numbers;
  while (dirent* e = readdir(d)) {
    int fd = -1;
    if (!parse_number(std::string_view(e->d_name), fd) || fd < 0) continue;
    numbers.push_back(fd);
    if (numbers.size() >= opts.max_fds) break;
  }
  closedir(d);
  std::sort(numbers.begin(), numbers.end());
  std::vector<ProcFd> out;
  out.reserve(numbers.size());
  for (int fd : numbers)
    if (auto f = read_fd(pid, fd, opts.read_fdinfo)) out.push_back(std::move(*f));
  return out;
}

Result<std::vector<uint64_t>> socket_inodes(pid_t pid) {
  std::vector<uint64_t> out;
  std::string dir = fmt::format("/proc/{}/fd", pid);
  DIR* d = opendir(dir.c_str());
  if (!d) return errno_error("cannot list " + dir);
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    char buf[64];
    ssize_t n = readlinkat(dirfd(d), e->d_name, buf, sizeof(buf) - 1);
    if (n <= 0) continue;
    std::string_view target(buf, static_cast<size_t>(n));
    if (target.starts_with("socket:"))
      if (uint64_t ino = bracket_inode(target)) out.push_back(ino);
  }
  closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace memlens::proc
