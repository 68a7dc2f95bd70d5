// The target's TCP sockets as its own network namespace sees them (/proc/PID/net/tcp{,6}), which of them
// the target owns (its fds' socket inodes), and connections made from inside that namespace.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/result.h"

namespace memlens::inspector {

struct TcpSocket {
  std::string local_address;  // "127.0.0.1", "::1", "0.0.0.0", ...
  uint16_t local_port = 0;
  std::string remote_address;
  uint16_t remote_port = 0;
  int state = 0;  // the kernel's TCP state: 1 established, 10 listen
  uint64_t inode = 0;
  bool ipv6 = false;
};
constexpr int kTcpEstablished = 1;
constexpr int kTcpListen = 10;

// Parses /proc/net/tcp or tcp6 text.
std::vector<TcpSocket> parse_proc_net_tcp(const std::string& text, bool ipv6);
// Every TCP socket of pid's network namespace.
Result<std::vector<TcpSocket>> namespace_tcp_sockets(pid_t pid);
// Inodes of the sockets pid holds open.
std::vector<uint64_t> socket_inodes(pid_t pid);
// The listening sockets pid owns.
Result<std::vector<TcpSocket>> listening_sockets(pid_t pid);

// A TCP connection to address:port made inside pid's network namespace (a thread enters it, connects,
// and hands the socket back). Connect and I/O timeouts are set on the socket.
Result<int> connect_in_namespace(pid_t pid, const std::string& address, uint16_t port, int timeout_ms);
// The same from a process with one thread (the watchdog): enters the namespace itself.
Result<int> connect_in_namespace_here(int netns_fd, const std::string& address, uint16_t port,
                                      int timeout_ms);

}  // namespace memlens::inspector
