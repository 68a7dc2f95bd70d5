#include "proc/fd_scan.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstring>

#include "common/safe_file.h"

namespace memlens::proc {

namespace {

std::vector<std::string_view> split_ws(std::string_view line) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    size_t j = i;
    while (j < line.size() && line[j] != ' ' && line[j] != '\t') ++j;
    if (j > i) out.push_back(line.substr(i, j - i));
    i = j;
  }
  return out;
}

template <typename Fn>
void for_each_line(std::string_view text, Fn fn) {
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    fn(line);
    if (nl == std::string_view::npos) break;
    text.remove_prefix(nl + 1);
  }
}

template <typename T>
bool parse_num(std::string_view s, T& out, int base = 10) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out, base);
  return ec == std::errc() && p == s.data() + s.size();
}

const char* tcp_state(unsigned st) {
  static const char* names[] = {"",          "ESTABLISHED", "SYN_SENT",    "SYN_RECV",   "FIN_WAIT1",
                                "FIN_WAIT2", "TIME_WAIT",   "CLOSE",       "CLOSE_WAIT", "LAST_ACK",
                                "LISTEN",    "CLOSING",     "NEW_SYN_RECV"};
  return st < sizeof(names) / sizeof(names[0]) ? names[st] : "";
}

// "0100007F:1F90" (IPv4, address in the kernel's byte order as a 32-bit hex word) or 32 hex digits for
// IPv6 (four such words).
std::optional<std::string> parse_inet_address(std::string_view s, bool v6) {
  size_t colon = s.find(':');
  if (colon == std::string_view::npos) return std::nullopt;
  std::string_view addr = s.substr(0, colon);
  unsigned port = 0;
  if (!parse_num(s.substr(colon + 1), port, 16) || port > 65535) return std::nullopt;
  char buf[INET6_ADDRSTRLEN] = {};
  if (!v6) {
    uint32_t a = 0;
    if (addr.size() != 8 || !parse_num(addr, a, 16)) return std::nullopt;
    in_addr in{};
    in.s_addr = a;  // the kernel printed the word in host order of its network-order value
    if (!inet_ntop(AF_INET, &in, buf, sizeof(buf))) return std::nullopt;
    return fmt::format("{}:{}", buf, port);
  }
  if (addr.size() != 32) return std::nullopt;
  in6_addr in6{};
  for (int w = 0; w < 4; ++w) {
    uint32_t word = 0;
    if (!parse_num(addr.substr(static_cast<size_t>(w) * 8, 8), word, 16)) return std::nullopt;
    std::memcpy(&in6.s6_addr[w * 4], &word, 4);
  }
  if (!inet_ntop(AF_INET6, &in6, buf, sizeof(buf))) return std::nullopt;
  return fmt::format("[{}]:{}", buf, port);
}

bool is_unspecified(const std::string& a) {
  return a == "0.0.0.0:0" || a == "[::]:0";
}

}  // namespace

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
  if (!parse_num(target.substr(open + 2, target.size() - open - 3), ino)) return 0;
  return ino;
}

std::optional<FdInfoFields> parse_fdinfo(std::string_view text) {
  FdInfoFields f;
  bool have_flags = false;
  for_each_line(text, [&](std::string_view line) {
    auto parts = split_ws(line);
    if (parts.size() < 2) return;
    if (parts[0] == "pos:") parse_num(parts[1], f.pos);
    if (parts[0] == "flags:") have_flags = parse_num(parts[1], f.flags, 8);
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
    if (!parse_num(std::string_view(e->d_name), fd) || fd < 0) continue;
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
    if (!parse_num(std::string_view(e->d_name), fd) || fd < 0) continue;
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

std::vector<SocketEntry> parse_net_inet(std::string_view text, bool v6, std::string_view protocol) {
  std::vector<SocketEntry> out;
  for_each_line(text, [&](std::string_view line) {
    auto f = split_ws(line);
    // sl local rem st tx:rx tr:when retrnsmt uid timeout inode ...
    if (f.size() < 10 || !f[0].ends_with(":")) return;
    SocketEntry s;
    s.family = v6 ? "inet6" : "inet";
    s.protocol = std::string(protocol);
    auto local = parse_inet_address(f[1], v6);
    auto remote = parse_inet_address(f[2], v6);
    unsigned st = 0;
    if (!local || !remote || !parse_num(f[3], st, 16) || !parse_num(f[9], s.inode) || s.inode == 0) return;
    s.local = *local;
    if (!is_unspecified(*remote)) s.remote = *remote;
    if (protocol == "tcp") s.state = tcp_state(st);
    out.push_back(std::move(s));
  });
  return out;
}

std::vector<SocketEntry> parse_net_unix(std::string_view text) {
  std::vector<SocketEntry> out;
  for_each_line(text, [&](std::string_view line) {
    // Num RefCount Protocol Flags Type St Inode [Path]
    auto f = split_ws(line);
    if (f.size() < 7 || !f[0].ends_with(":")) return;
    SocketEntry s;
    s.family = "unix";
    unsigned type = 0, st = 0;
    if (!parse_num(f[4], type, 16) || !parse_num(f[5], st, 16) || !parse_num(f[6], s.inode) || s.inode == 0)
      return;
    s.protocol = type == 1 ? "stream" : type == 2 ? "dgram" : type == 5 ? "seqpacket" : "other";
    s.state = st == 1   ? "unconnected"
              : st == 2 ? "connecting"
              : st == 3 ? "connected"
              : st == 4 ? "disconnecting"
                        : "";
    if (f.size() >= 8) {
      // The path is the rest of the line (it may hold spaces): find it after the inode field.
      size_t at = static_cast<size_t>(f[7].data() - line.data());
      s.local = std::string(line.substr(at));
    }
    out.push_back(std::move(s));
  });
  return out;
}

std::unordered_map<uint64_t, SocketEntry> read_sockets(pid_t pid) {
  std::unordered_map<uint64_t, SocketEntry> out;
  struct Table {
    const char* file;
    bool v6;
    const char* protocol;
  };
  const Table tables[] = {
      {"tcp", false, "tcp"}, {"tcp6", true, "tcp"}, {"udp", false, "udp"}, {"udp6", true, "udp"}};
  for (const auto& t : tables) {
    auto text = read_text_file(fmt::format("/proc/{}/net/{}", pid, t.file), 64 << 20);
    if (!text) continue;
    for (auto& s : parse_net_inet(*text, t.v6, t.protocol)) out.emplace(s.inode, std::move(s));
  }
  if (auto text = read_text_file(fmt::format("/proc/{}/net/unix", pid), 64 << 20))
    for (auto& s : parse_net_unix(*text)) out.emplace(s.inode, std::move(s));
  return out;
}

}  // namespace memlens::proc
