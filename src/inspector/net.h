// The target's TCP sockets as its own network namespace sees them (asked of the kernel through
// proc/sock_diag, filtered there), which of them the target owns (its fds' socket inodes), and
// connections made from inside that namespace.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/result.h"
#include "proc/sock_diag.h"

namespace memlens::inspector {

using TcpSocket = proc::InetSocket;

// The listening TCP sockets of pid's network namespace, whoever owns them.
Result<std::vector<TcpSocket>> namespace_listening_sockets(pid_t pid);
// The listening sockets pid owns.
Result<std::vector<TcpSocket>> listening_sockets(pid_t pid);
// pid's established connections whose local port is port, but for the one from except_remote_port
// (memlens's own): the other clients of a server pid runs. pid's fds are listed only when the kernel
// names such a connection in pid's namespace.
Result<std::vector<TcpSocket>> other_connections_to_port(pid_t pid, uint16_t port,
                                                         uint16_t except_remote_port);

// An IPv4 address written as v4-mapped IPv6 ("::ffff:127.0.0.1") as IPv4; any other address as it is.
std::string unmapped(const std::string& address);
// The address to connect to for a socket listening on listen_address: loopback for a wildcard, the IPv4
// address of a v4-mapped one.
std::string connect_host(const std::string& listen_address);

// A TCP connection to address:port made inside pid's network namespace (the socket is created there).
// Connect and I/O timeouts are set on the socket.
Result<int> connect_in_namespace(pid_t pid, const std::string& address, uint16_t port, int timeout_ms);
// The same from a process with one thread (the watchdog): enters the namespace itself.
Result<int> connect_in_namespace_here(int netns_fd, const std::string& address, uint16_t port,
                                      int timeout_ms);

}  // namespace memlens::inspector
