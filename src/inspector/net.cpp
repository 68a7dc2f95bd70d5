#include "inspector/net.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>

#include "proc/fd_scan.h"

namespace memlens::inspector {

namespace {

bool is_v6(const std::string& address) {
  return address.find(':') != std::string::npos;
}

void set_timeouts(int fd, int timeout_ms) {
  timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

// Connects fd (a stream socket of address's family); closes it when that fails.
Result<int> connect_socket(int fd, const std::string& address, uint16_t port, int timeout_ms) {
  set_timeouts(fd, timeout_ms);
  int rc;
  if (is_v6(address)) {
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

Result<std::vector<TcpSocket>> owned_by(pid_t pid, Result<std::vector<TcpSocket>> sockets) {
  if (!sockets) return sockets.error();
  if (sockets->empty()) return sockets;
  auto mine = proc::socket_inodes(pid);
  if (!mine) return mine.error();
  std::vector<TcpSocket> out;
  for (auto& s : *sockets)
    if (std::binary_search(mine->begin(), mine->end(), s.inode)) out.push_back(std::move(s));
  return out;
}

}  // namespace

Result<std::vector<TcpSocket>> namespace_listening_sockets(pid_t pid) {
  proc::InetQuery q;
  q.states = proc::tcp_state_bit(proc::kTcpListen);
  return proc::inet_sockets(pid, q);
}

Result<std::vector<TcpSocket>> listening_sockets(pid_t pid) {
  return owned_by(pid, namespace_listening_sockets(pid));
}

Result<std::vector<TcpSocket>> other_connections_to_port(pid_t pid, uint16_t port,
                                                         uint16_t except_remote_port) {
  proc::InetQuery q;
  q.states = proc::tcp_state_bit(proc::kTcpEstablished);
  q.local_port = port;
  auto sockets = proc::inet_sockets(pid, q);
  if (sockets)
    std::erase_if(*sockets, [&](const TcpSocket& s) { return s.remote_port == except_remote_port; });
  return owned_by(pid, std::move(sockets));
}

std::string unmapped(const std::string& address) {
  if (address.starts_with("::ffff:") && address.find('.') != std::string::npos) return address.substr(7);
  return address;
}

std::string connect_host(const std::string& listen_address) {
  if (listen_address == "0.0.0.0") return "127.0.0.1";
  if (listen_address == "::") return "::1";
  return unmapped(listen_address);
}

Result<int> connect_in_namespace_here(int netns_fd, const std::string& address, uint16_t port,
                                      int timeout_ms) {
  if (netns_fd >= 0 && setns(netns_fd, CLONE_NEWNET) != 0)
    return errno_error("cannot enter the target's network namespace");
  int fd = socket(is_v6(address) ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return errno_error("socket");
  return connect_socket(fd, address, port, timeout_ms);
}

Result<int> connect_in_namespace(pid_t pid, const std::string& address, uint16_t port, int timeout_ms) {
  auto fd =
      proc::socket_in_namespace(pid, is_v6(address) ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (!fd) return fd.error();
  return connect_socket(*fd, address, port, timeout_ms);
}

}  // namespace memlens::inspector
