// A process's sockets asked of the kernel over NETLINK_SOCK_DIAG, in the process's own network namespace.
// The kernel filters by state and port before it writes anything: /proc/PID/net/tcp would format every
// socket of the namespace, and a host that serves short connections holds tens of thousands in TIME_WAIT,
// none of which an fd can hold (reading them cost more CPU than the rest of a --js-objects run).
// When sock_diag cannot answer (a kernel without it), the same questions are answered from /proc/PID/net
// text, filtered here.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/result.h"

namespace memlens::proc {

// The kernel's TCP states (include/net/tcp_states.h), as sock_diag and /proc/net/tcp number them.
constexpr uint8_t kTcpEstablished = 1;
constexpr uint8_t kTcpTimeWait = 6;
constexpr uint8_t kTcpClose = 7;
constexpr uint8_t kTcpListen = 10;
constexpr uint32_t tcp_state_bit(uint8_t state) {
  return 1u << state;
}
constexpr uint32_t kAllTcpStates = ~0u;
// States in which a socket may be held by an fd: not TIME_WAIT, which has no inode (a TIME_WAIT entry
// still in FIN_WAIT2 is sent, with inode 0, and dropped by the callers that want inodes). SYN_RECV stays:
// a TCP Fast Open connection is accepted in that state; the kernel then sends pending requests too, with
// inode 0. The fd table asks for these only.
constexpr uint32_t kTcpStatesWithInode = ~tcp_state_bit(kTcpTimeWait);

// A socket as the fd table names it.
struct SocketEntry {
  uint64_t inode = 0;
  std::string family;    // "inet", "inet6", "unix"
  std::string protocol;  // "tcp", "udp" (inet); "stream", "dgram", "seqpacket" (unix)
  std::string local;     // "127.0.0.1:8080", "[::1]:443", unix path ("@name" for abstract), "" unknown
  std::string remote;    // "" when unconnected
  std::string state;  // tcp: "LISTEN", "ESTABLISHED", ...; unix: "listening", "connected", "unconnected", ...
};

struct InetSocket {
  bool v6 = false;
  std::string protocol;       // "tcp", "udp"
  std::string local_address;  // inet_ntop text: "127.0.0.1", "::1", "::ffff:10.0.0.1"
  uint16_t local_port = 0;
  std::string remote_address;  // "0.0.0.0" or "::" when unconnected
  uint16_t remote_port = 0;
  uint8_t state = 0;  // the kernel's TCP state (UDP: 1 connected, 7 not)
  uint64_t inode = 0;
};

// The query: one protocol, both address families, the states wanted (a mask of tcp_state_bit), and
// optionally one local port.
struct InetQuery {
  std::string protocol = "tcp";  // "tcp" or "udp"
  uint32_t states = kAllTcpStates;
  std::optional<uint16_t> local_port;
};

// How a query was answered, for callers that report it.
enum class SocketSource { kSockDiag, kProcNet };

// The sockets of pid's network namespace that match the query. An error when the namespace cannot be
// entered (pid gone) and neither sock_diag nor /proc/PID/net answers.
Result<std::vector<InetSocket>> inet_sockets(pid_t pid, const InetQuery& query,
                                             SocketSource* source = nullptr);
// The unix sockets of pid's network namespace, named as the fd table names them.
Result<std::vector<SocketEntry>> unix_sockets(pid_t pid, SocketSource* source = nullptr);

// /proc/net/tcp, tcp6, udp, udp6 text (protocol names what the file holds); malformed lines are skipped.
std::vector<InetSocket> parse_proc_net_inet(std::string_view text, bool v6, std::string_view protocol);
// An InetSocket as the fd table names it ("127.0.0.1:8080", "[::1]:443", "LISTEN").
SocketEntry describe(const InetSocket& s);
// /proc/net/unix text (the fallback of unix_sockets).
std::vector<SocketEntry> parse_net_unix(std::string_view text);

// Every socket of pid's network namespace that an fd can hold, by inode: TCP (not TIME_WAIT), UDP and
// unix. A table that cannot be read is skipped. source, when given, says kProcNet if any table fell back.
std::unordered_map<uint64_t, SocketEntry> read_sockets(pid_t pid, SocketSource* source = nullptr);

// The name of a TCP state ("LISTEN", "ESTABLISHED", ...), "" when unknown.
const char* tcp_state_name(unsigned state);

// A socket created inside pid's network namespace (a short-lived thread enters it: setns changes only the
// calling thread); the socket stays in that namespace whichever thread uses it.
Result<int> socket_in_namespace(pid_t pid, int domain, int type, int protocol);

}  // namespace memlens::proc
