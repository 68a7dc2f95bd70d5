#include "inspector/net.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <sstream>
#include <thread>

#include "common/safe_file.h"

namespace memlens::inspector {

namespace {

std::string hex_to_address(const std::string& hex, bool ipv6) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (!ipv6 && hex.size() == 8) {
    uint32_t a = static_cast<uint32_t>(std::stoul(hex, nullptr, 16));
    in_addr in{};
    in.s_addr = a;  // the kernel prints the address in host byte order of the 32-bit word
    inet_ntop(AF_INET, &in, buf, sizeof(buf));
    return buf;
  }
  if (ipv6 && hex.size() == 32) {
    in6_addr in6{};
    for (int w = 0; w < 4; ++w) {
      uint32_t word = static_cast<uint32_t>(std::stoul(hex.substr(w * 8, 8), nullptr, 16));
      memcpy(&in6.s6_addr[w * 4], &word, 4);
    }
    inet_ntop(AF_INET6, &in6, buf, sizeof(buf));
    std::string s = buf;
    if (s.starts_with("::ffff:")) return s.substr(7);  // v4-mapped
    return s;
  }
  return hex;
}

bool parse_endpoint(const std::string& field, bool ipv6, std::string& addr, uint16_t& port) {
  auto colon = field.find(':');
  if (colon == std::string::npos) return false;
  try {
    addr = hex_to_address(field.substr(0, colon), ipv6);
    port = static_cast<uint16_t>(std::stoul(field.substr(colon + 1), nullptr, 16));
  } catch (...) {
    return false;
  }
  return true;
}

void set_timeouts(int fd, int timeout_ms) {
  timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

Result<int> connect_here(const std::string& address, uint16_t port, int timeout_ms) {
  bool v6 = address.find(':') != std::string::npos;
  int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return errno_error("socket");
  set_timeouts(fd, timeout_ms);
  int rc;
  if (v6) {
    sockaddr_in6 sa{};
    sa.sin6_family = AF_INET6;
    sa.sin6_port = htons(port);
    inet_pton(AF_INET6, address.c_str(), &sa.sin6_addr);
    rc = connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa));
  } else {
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    inet_pton(AF_INET, address.c_str(), &sa.sin_addr);
    rc = connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa));
  }
  if (rc != 0) {
    Error e = errno_error(fmt::format("cannot connect to {}:{}", address, port));
    close(fd);
    return e;
  }
  return fd;
}

}  // namespace

std::vector<TcpSocket> parse_proc_net_tcp(const std::string& text, bool ipv6) {
  std::vector<TcpSocket> out;
  std::istringstream in(text);
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string sl, local, remote, st, queues, timer, retr, uid, timeout, inode;
    if (!(ls >> sl >> local >> remote >> st >> queues >> timer >> retr >> uid >> timeout >> inode)) continue;
    TcpSocket s;
    s.ipv6 = ipv6;
    if (!parse_endpoint(local, ipv6, s.local_address, s.local_port)) continue;
    if (!parse_endpoint(remote, ipv6, s.remote_address, s.remote_port)) continue;
    try {
      s.state = static_cast<int>(std::stoul(st, nullptr, 16));
      s.inode = std::stoull(inode);
    } catch (...) {
      continue;
    }
    out.push_back(std::move(s));
  }
  return out;
}

Result<std::vector<TcpSocket>> namespace_tcp_sockets(pid_t pid) {
  std::vector<TcpSocket> all;
  bool any = false;
  Error last;
  for (bool v6 : {false, true}) {
    auto text = read_text_file(fmt::format("/proc/{}/net/{}", pid, v6 ? "tcp6" : "tcp"), 16 << 20);
    if (!text) {
      last = text.error();
      continue;
    }
    any = true;
    auto part = parse_proc_net_tcp(*text, v6);
    all.insert(all.end(), part.begin(), part.end());
  }
  if (!any) return last;
  return all;
}

std::vector<uint64_t> socket_inodes(pid_t pid) {
  std::vector<uint64_t> out;
  std::string dir = fmt::format("/proc/{}/fd", pid);
  DIR* d = opendir(dir.c_str());
  if (!d) return out;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    char buf[64];
    ssize_t n = readlinkat(dirfd(d), e->d_name, buf, sizeof(buf) - 1);
    if (n <= 0) continue;
    buf[n] = '\0';
    unsigned long long ino = 0;
    if (sscanf(buf, "socket:[%llu]", &ino) == 1) out.push_back(ino);
  }
  closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

Result<std::vector<TcpSocket>> listening_sockets(pid_t pid) {
  auto all = namespace_tcp_sockets(pid);
  if (!all) return all.error();
  auto mine = socket_inodes(pid);
  std::vector<TcpSocket> out;
  for (auto& s : *all)
    if (s.state == kTcpListen && std::binary_search(mine.begin(), mine.end(), s.inode)) out.push_back(s);
  return out;
}

Result<int> connect_in_namespace_here(int netns_fd, const std::string& address, uint16_t port,
                                      int timeout_ms) {
  if (netns_fd >= 0 && setns(netns_fd, CLONE_NEWNET) != 0)
    return errno_error("cannot enter the target's network namespace");
  return connect_here(address, port, timeout_ms);
}

Result<int> connect_in_namespace(pid_t pid, const std::string& address, uint16_t port, int timeout_ms) {
  struct stat mine {
  }, theirs{};
  std::string ns_path = fmt::format("/proc/{}/ns/net", pid);
  if (stat("/proc/self/ns/net", &mine) == 0 && stat(ns_path.c_str(), &theirs) == 0 &&
      mine.st_ino == theirs.st_ino && mine.st_dev == theirs.st_dev)
    return connect_here(address, port, timeout_ms);
  int ns = open(ns_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (ns < 0) return errno_error(fmt::format("cannot open {}", ns_path));
  // setns of a network namespace changes only the calling thread: a short-lived thread enters it, and the
  // socket it creates stays in that namespace.
  Result<int> result = make_error("not run");
  std::thread t([&]() { result = connect_in_namespace_here(ns, address, port, timeout_ms); });
  t.join();
  close(ns);
  return result;
}

}  // namespace memlens::inspector
