#include "common/safe_file.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <memory>
#include <random>

namespace memlens {

UniqueFd& UniqueFd::operator=(UniqueFd&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = o.release();
  }
  return *this;
}

UniqueFd::~UniqueFd() {
  if (fd_ >= 0) ::close(fd_);
}

namespace {

Result<OpenedFile> finish_open(int fd, const std::string& what) {
  UniqueFd owned(fd);
  struct stat st {};
  if (fstat(fd, &st) != 0) return errno_error("cannot stat " + what);
  if (!S_ISREG(st.st_mode)) return make_error(what + " is not a regular file", EINVAL);
  OpenedFile f;
  f.fd = std::move(owned);
  f.owner_uid = st.st_uid;
  f.size = st.st_size;
  f.device = st.st_dev;
  f.inode = st.st_ino;
  return f;
}

}  // namespace

Result<OpenedFile> open_in_process_root(pid_t pid, const std::string& path_in_process, bool no_symlinks) {
  std::string root = fmt::format("/proc/{}/root", pid);
  UniqueFd root_fd(::open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!root_fd) return errno_error("cannot open " + root);
  std::string what = fmt::format("{} (in process {})", path_in_process, pid);

  open_how how{};
  how.flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | (no_symlinks ? RESOLVE_NO_SYMLINKS : 0);
  long fd = syscall(SYS_openat2, root_fd.get(), path_in_process.c_str(), &how, sizeof(how));
  if (fd >= 0) return finish_open(static_cast<int>(fd), what);
  if (errno != ENOSYS) {
    if (errno == ELOOP) return errno_error(what + " is or passes through a symbolic link; refused");
    return errno_error("cannot open " + what);
  }
  // Kernels before 5.6 have no openat2: resolve under the root path and refuse any link in the last
  // component. Intermediate links could still point outside; say so in the error path only if it fails.
  std::string rel = path_in_process;
  while (!rel.empty() && rel.front() == '/') rel.erase(0, 1);
  int legacy =
      ::openat(root_fd.get(), rel.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);
  if (legacy < 0) {
    if (errno == ELOOP) return errno_error(what + " is a symbolic link; refused");
    return errno_error("cannot open " + what);
  }
  return finish_open(legacy, what);
}

Result<OpenedFile> open_regular_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) {
    if (errno == ELOOP) return errno_error(path + " is a symbolic link; refused");
    return errno_error("cannot open " + path);
  }
  return finish_open(fd, path);
}

Result<BoundedRead> read_bounded(int fd, size_t max_bytes) {
  BoundedRead out;
  // Through a buffer left uninitialized, appended: growing the string first would clear each chunk
  // before the read overwrites it, and most reads here are of /proc files of a few hundred bytes, read
  // at every sample. 64 KiB a read: a large /proc file (smaps) is rendered afresh at every read call.
  constexpr size_t kChunk = 64 << 10;
  std::unique_ptr<char[]> chunk(new char[kChunk]);
  while (out.data.size() < max_bytes) {
    size_t want = std::min(kChunk, max_bytes - out.data.size());
    ssize_t n = ::read(fd, chunk.get(), want);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno_error("read failed");
    }
    if (n == 0) return out;
    out.data.append(chunk.get(), static_cast<size_t>(n));
  }
  char probe;
  ssize_t n = ::read(fd, &probe, 1);
  out.truncated = n > 0;
  return out;
}

Result<std::string> read_text_file(const std::string& path, size_t max_bytes) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return errno_error("cannot open " + path);
  auto r = read_bounded(fd.get(), max_bytes);
  if (!r) return make_error("cannot read " + path + ": " + r.error().describe(), r.error().errno_value);
  return std::move(r->data);
}

Status write_file_atomic(const std::string& path, std::string_view content) {
  std::filesystem::path target(path);
  std::string dir = target.has_parent_path() ? target.parent_path().string() : ".";
  std::random_device rd;
  std::string tmp = fmt::format("{}/.{}.tmp.{:08x}", dir, target.filename().string(), rd());
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644));
  if (!fd) return errno_error("cannot create " + tmp);
  auto fail = [&](const std::string& what) {
    Error e = errno_error(what + " " + path);
    ::unlink(tmp.c_str());
    return e;
  };
  size_t off = 0;
  while (off < content.size()) {
    ssize_t n = ::write(fd.get(), content.data() + off, content.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail("cannot write");
    }
    off += static_cast<size_t>(n);
  }
  if (::fsync(fd.get()) != 0) return fail("cannot flush");
  if (::close(fd.release()) != 0) return fail("cannot close");
  if (::rename(tmp.c_str(), path.c_str()) != 0) return fail("cannot rename the temporary file onto");
  return {};
}

Status ensure_directory(const std::string& dir) {
  std::error_code ec;
  if (std::filesystem::exists(dir, ec)) {
    if (!std::filesystem::is_directory(dir, ec))
      return make_error(dir + " exists and is not a directory", ENOTDIR);
    return {};
  }
  std::filesystem::create_directories(dir, ec);
  if (ec) return make_error("cannot create directory " + dir + ": " + ec.message(), ec.value());
  return {};
}

Status prepare_output_directory(const std::string& dir) {
  struct stat st {};
  if (::lstat(dir.c_str(), &st) == 0 && S_ISLNK(st.st_mode)) {
    std::error_code ec;
    auto target = std::filesystem::read_symlink(dir, ec);
    // A link could send a root tool's files anywhere (one planted in a shared directory, say): the user
    // names the real directory.
    return make_error(
        dir + " is a symbolic link" + (ec ? "" : " to " + target.string()) + "; give the directory itself",
        ELOOP);
  }
  if (auto s = ensure_directory(dir); !s) return s;
  // Writable now, not only at the end of a long trace: an unnamed temporary file leaves nothing behind.
  UniqueFd probe(::open(dir.c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600));
  if (!probe && errno != EOPNOTSUPP && errno != EISDIR) return errno_error("cannot write in " + dir);
  if (!probe && ::access(dir.c_str(), W_OK) != 0) return errno_error("cannot write in " + dir);
  struct statvfs fs {};
  if (::statvfs(dir.c_str(), &fs) == 0) {
    if (fs.f_flag & ST_RDONLY) return make_error(dir + " is on a read-only file system", EROFS);
    uint64_t free_bytes = static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize;
    if (free_bytes < kMinFreeOutputBytes)
      return make_error(
          fmt::format("the file system of {} has only {} bytes free (the report needs about {})", dir,
                      free_bytes, kMinFreeOutputBytes),
          ENOSPC);
  }
  return {};
}

}  // namespace memlens
