// Sockets by inode: the /proc/net text parsers on fixtures, and sock_diag's answers for sockets this test
// opens itself, checked against the kernel's other account of the same sockets (/proc/PID/net/*) and
// against fstat of the fds.
#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "common/safe_file.h"
#include "proc/sock_diag.h"

namespace memlens::proc {
namespace {

bool in_ci() {
  const char* ci = std::getenv("CI");
  return ci && std::string(ci) == "true";
}

std::string fixture(const std::string& name) {
  std::ifstream in(std::string(MEMLENS_TEST_DATA) + "/fd/" + name);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

uint64_t inode_of(int fd) {
  struct stat st {};
  return fstat(fd, &st) == 0 ? st.st_ino : 0;
}

uint16_t port_of(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return 0;
  return ntohs(ss.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port
                                        : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
}

int tcp_listener(int family) {
  int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  int rc;
  if (family == AF_INET6) {
    sockaddr_in6 a{};
    a.sin6_family = AF_INET6;
    a.sin6_addr = in6addr_loopback;
    rc = bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  } else {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    rc = bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  }
  if (rc != 0 || listen(fd, 16) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

int tcp_connect(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// The kernel's other account: /proc/PID/net's tables, every socket with an inode, described as the fd
// table names them.
std::map<uint64_t, SocketEntry> from_proc_net(pid_t pid) {
  std::map<uint64_t, SocketEntry> out;
  for (const char* proto : {"tcp", "udp"})
    for (bool v6 : {false, true})
      if (auto text = read_text_file(fmt::format("/proc/{}/net/{}{}", pid, proto, v6 ? "6" : ""), 64 << 20))
        for (const auto& s : parse_proc_net_inet(*text, v6, proto))
          if (s.inode != 0) out.emplace(s.inode, describe(s));
  if (auto text = read_text_file(fmt::format("/proc/{}/net/unix", pid), 64 << 20))
    for (const auto& s : parse_net_unix(*text)) out.emplace(s.inode, s);
  return out;
}

std::string text_of(const SocketEntry& s) {
  return fmt::format("{} {} local={} remote={} state={}", s.family, s.protocol, s.local, s.remote, s.state);
}

TEST(ProcNetText, ParsesTcpTables) {
  auto s = parse_proc_net_inet(fixture("tcp.txt"), false, "tcp");
  ASSERT_EQ(s.size(), 2u);  // the garbage line is skipped
  EXPECT_EQ(s[0].inode, 41234u);
  EXPECT_EQ(s[0].local_address, "127.0.0.1");
  EXPECT_EQ(s[0].local_port, 8080);
  EXPECT_EQ(s[0].state, kTcpListen);
  SocketEntry e = describe(s[0]);
  EXPECT_EQ(e.local, "127.0.0.1:8080");
  EXPECT_EQ(e.remote, "");
  EXPECT_EQ(e.state, "LISTEN");
  EXPECT_EQ(e.family, "inet");
  e = describe(s[1]);
  EXPECT_EQ(e.local, "127.0.0.1:50000");
  EXPECT_EQ(e.remote, "127.0.0.1:8080");
  EXPECT_EQ(e.state, "ESTABLISHED");

  auto s6 = parse_proc_net_inet(fixture("tcp6.txt"), true, "tcp");
  ASSERT_EQ(s6.size(), 1u);
  EXPECT_EQ(s6[0].local_address, "::1");
  EXPECT_EQ(describe(s6[0]).local, "[::1]:443");
  EXPECT_EQ(describe(s6[0]).family, "inet6");
  EXPECT_EQ(s6[0].inode, 51000u);
}

TEST(ProcNetText, ParsesUnixTable) {
  auto s = parse_net_unix(fixture("unix.txt"));
  ASSERT_EQ(s.size(), 3u);
  EXPECT_EQ(s[0].local, "/run/my app.sock");  // a path with a space
  EXPECT_EQ(s[0].protocol, "stream");
  EXPECT_EQ(s[0].state, "listening");  // St says unconnected; the accept-connections flag says listening
  EXPECT_EQ(s[1].local, "");
  EXPECT_EQ(s[1].state, "connected");
  EXPECT_EQ(s[2].protocol, "dgram");
  EXPECT_EQ(s[2].state, "unconnected");
  EXPECT_EQ(s[2].local, "@abstract");
}

// Every kind of socket this process opens is named by sock_diag exactly as /proc/self/net names it.
TEST(SockDiag, NamesThisProcessSocketsAsProcNetDoes) {
  std::vector<int> fds;
  int l4 = tcp_listener(AF_INET);
  ASSERT_GE(l4, 0);
  fds.push_back(l4);
  if (int l6 = tcp_listener(AF_INET6); l6 >= 0) fds.push_back(l6);  // no ::1 in some namespaces
  int client = tcp_connect(port_of(l4));
  ASSERT_GE(client, 0);
  int accepted = accept4(l4, nullptr, nullptr, SOCK_CLOEXEC);
  ASSERT_GE(accepted, 0);
  fds.insert(fds.end(), {client, accepted});
  int udp = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  to.sin_port = htons(port_of(l4));
  ASSERT_EQ(connect(udp, reinterpret_cast<sockaddr*>(&to), sizeof(to)), 0);
  fds.push_back(udp);
  // A UDP socket is in the tables once bound (an unbound one is in neither account).
  int udp6 = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_in6 any6{};
  any6.sin6_family = AF_INET6;
  if (udp6 >= 0 && bind(udp6, reinterpret_cast<sockaddr*>(&any6), sizeof(any6)) == 0) fds.push_back(udp6);
  int ux = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un abstract{};
  abstract.sun_family = AF_UNIX;
  std::string name = fmt::format("memlens-test-{}", getpid());
  std::memcpy(abstract.sun_path + 1, name.data(), name.size());
  ASSERT_EQ(bind(ux, reinterpret_cast<sockaddr*>(&abstract),
                 static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size())),
            0);
  ASSERT_EQ(listen(ux, 4), 0);
  fds.push_back(ux);
  int pair[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
  fds.insert(fds.end(), {pair[0], pair[1]});
  std::string path = fmt::format("/tmp/memlens-sock-diag-{}.sock", getpid());
  unlink(path.c_str());
  int ud = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_un named{};
  named.sun_family = AF_UNIX;
  std::snprintf(named.sun_path, sizeof(named.sun_path), "%s", path.c_str());
  ASSERT_EQ(bind(ud, reinterpret_cast<sockaddr*>(&named), sizeof(named)), 0);
  fds.push_back(ud);

  // Each table from sock_diag, none from the /proc fallback (which would make this compare /proc with
  // itself): this kernel has tcp_diag, udp_diag and unix_diag.
  SocketSource source = SocketSource::kProcNet;
  auto diag = read_sockets(getpid(), &source);
  EXPECT_EQ(source, SocketSource::kSockDiag) << "a table fell back to /proc/self/net";
  auto truth = from_proc_net(getpid());
  for (int fd : fds) {
    uint64_t ino = inode_of(fd);
    SCOPED_TRACE(fmt::format("fd {} inode {}", fd, ino));
    ASSERT_TRUE(truth.count(ino)) << "not in /proc/self/net";
    ASSERT_TRUE(diag.count(ino)) << "not named by sock_diag; /proc says " << text_of(truth[ino]);
    EXPECT_EQ(text_of(diag[ino]), text_of(truth[ino]));
  }
  // Spot checks that the comparison above compares something.
  EXPECT_EQ(diag[inode_of(l4)].state, "LISTEN");
  EXPECT_EQ(diag[inode_of(l4)].local, fmt::format("127.0.0.1:{}", port_of(l4)));
  EXPECT_EQ(diag[inode_of(accepted)].remote, fmt::format("127.0.0.1:{}", port_of(client)));
  EXPECT_EQ(diag[inode_of(udp)].protocol, "udp");
  EXPECT_EQ(diag[inode_of(ux)].local, "@" + name);
  EXPECT_EQ(diag[inode_of(ux)].state, "listening");
  EXPECT_EQ(diag[inode_of(pair[0])].state, "connected");
  EXPECT_EQ(diag[inode_of(ud)].local, path);
  // A TCP socket bound and nothing more: /proc/self/net/tcp leaves it out; sock_diag names it on kernels
  // that keep such sockets in a table it walks (6.8 and later).
  int bound = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in here{};
  here.sin_family = AF_INET;
  here.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(bound, reinterpret_cast<sockaddr*>(&here), sizeof(here)), 0);
  utsname u{};
  int major = 0, minor = 0;
  ASSERT_EQ(uname(&u), 0);
  ASSERT_EQ(sscanf(u.release, "%d.%d", &major, &minor), 2);
  EXPECT_FALSE(from_proc_net(getpid()).count(inode_of(bound)));
  if (major > 6 || (major == 6 && minor >= 8)) {
    auto again = read_sockets(getpid());
    ASSERT_TRUE(again.count(inode_of(bound)));
    EXPECT_EQ(again[inode_of(bound)].state, "CLOSE");  // its sk_state; the filter matched it as bound
    EXPECT_EQ(again[inode_of(bound)].local, fmt::format("127.0.0.1:{}", port_of(bound)));
  }
  close(bound);
  for (int fd : fds) close(fd);
  unlink(path.c_str());
}

// A connection closed first by this side lingers in TIME_WAIT with no inode: the fd table's query leaves
// it out; asking for every state shows it, as /proc/self/net/tcp does.
TEST(SockDiag, StateMaskLeavesOutTimeWait) {
  int l = tcp_listener(AF_INET);
  ASSERT_GE(l, 0);
  int client = tcp_connect(port_of(l));
  ASSERT_GE(client, 0);
  int accepted = accept4(l, nullptr, nullptr, SOCK_CLOEXEC);
  ASSERT_GE(accepted, 0);
  uint16_t client_port = port_of(client);
  close(client);  // the active close: this end goes to TIME_WAIT once the other end closes
  close(accepted);
  auto time_wait_in = [&](const std::vector<InetSocket>& all) {
    return std::any_of(all.begin(), all.end(), [&](const InetSocket& s) {
      return s.local_port == client_port && s.remote_port == port_of(l) && s.state == kTcpTimeWait;
    });
  };
  bool in_proc = false;
  for (int i = 0; i < 100 && !in_proc; ++i) {
    auto text = read_text_file("/proc/self/net/tcp", 64 << 20);
    ASSERT_TRUE(text);
    in_proc = time_wait_in(parse_proc_net_inet(*text, false, "tcp"));
    if (!in_proc) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(in_proc) << "the closed connection never reached TIME_WAIT in /proc/self/net/tcp";
  SocketSource source = SocketSource::kProcNet;
  auto all = inet_sockets(getpid(), InetQuery{}, &source);
  ASSERT_TRUE(all) << all.error().describe();
  EXPECT_EQ(source, SocketSource::kSockDiag);
  EXPECT_TRUE(time_wait_in(*all));
  InetQuery with_inode;
  with_inode.states = kTcpStatesWithInode;
  source = SocketSource::kProcNet;
  auto held = inet_sockets(getpid(), with_inode, &source);
  ASSERT_TRUE(held);
  EXPECT_EQ(source, SocketSource::kSockDiag);
  EXPECT_FALSE(time_wait_in(*held));
  for (const auto& s : *held) EXPECT_NE(s.state, kTcpTimeWait);
  // The listener is still there in the narrower answer.
  EXPECT_TRUE(std::any_of(held->begin(), held->end(), [&](const InetSocket& s) {
    return s.inode == inode_of(l) && s.state == kTcpListen;
  }));
  close(l);
}

// The kernel's port filter: the established sockets whose local port is the server's, and no other.
TEST(SockDiag, PortFilterKeepsOnlyThatLocalPort) {
  int l = tcp_listener(AF_INET);
  ASSERT_GE(l, 0);
  uint16_t port = port_of(l);
  std::set<uint64_t> accepted_inodes;
  std::vector<int> fds{l};
  for (int i = 0; i < 3; ++i) {
    int c = tcp_connect(port);
    ASSERT_GE(c, 0);
    int a = accept4(l, nullptr, nullptr, SOCK_CLOEXEC);
    ASSERT_GE(a, 0);
    accepted_inodes.insert(inode_of(a));
    fds.insert(fds.end(), {c, a});
  }
  InetQuery q;
  q.states = tcp_state_bit(kTcpEstablished);
  q.local_port = port;
  SocketSource source = SocketSource::kProcNet;
  auto got = inet_sockets(getpid(), q, &source);
  ASSERT_TRUE(got) << got.error().describe();
  // The kernel ran the port filter: a bytecode it refused would have fallen back to /proc.
  EXPECT_EQ(source, SocketSource::kSockDiag);
  std::set<uint64_t> got_inodes;
  for (const auto& s : *got) {
    EXPECT_EQ(s.local_port, port);
    EXPECT_EQ(s.state, kTcpEstablished);
    got_inodes.insert(s.inode);
  }
  // /proc/self/net/tcp, filtered by hand, says the same.
  std::set<uint64_t> truth;
  auto text = read_text_file("/proc/self/net/tcp", 64 << 20);
  ASSERT_TRUE(text);
  for (const auto& s : parse_proc_net_inet(*text, false, "tcp"))
    if (s.local_port == port && s.state == kTcpEstablished) truth.insert(s.inode);
  EXPECT_EQ(got_inodes, truth);
  EXPECT_EQ(got_inodes, accepted_inodes);
  for (int fd : fds) close(fd);
}

// A process in its own network namespace: its listener is found there (as its /proc/PID/net/tcp lists
// it), not in this namespace, and a socket made for it lives in its namespace.
TEST(SockDiag, AsksInTheTargetsNetworkNamespace) {
  if (geteuid() != 0) {
    if (in_ci()) FAIL() << "CI=true: needs root to make a network namespace";
    GTEST_SKIP() << "needs root to make a network namespace";
  }
  int to_parent[2], to_child[2];
  ASSERT_EQ(pipe2(to_parent, O_CLOEXEC), 0);
  ASSERT_EQ(pipe2(to_child, O_CLOEXEC), 0);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    uint64_t answer[2] = {0, 0};
    if (unshare(CLONE_NEWNET) == 0) {
      int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_in a{};
      a.sin_family = AF_INET;  // 0.0.0.0: the new namespace's loopback is down
      if (fd >= 0 && bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 && listen(fd, 1) == 0)
        answer[0] = inode_of(fd), answer[1] = port_of(fd);
    }
    (void)!write(to_parent[1], answer, sizeof(answer));
    char c;
    (void)!read(to_child[0], &c, 1);
    _exit(0);
  }
  // However the test ends, the child is let go and reaped.
  struct Release {
    int to_parent[2], to_child[2];
    pid_t child;
    ~Release() {
      (void)!write(to_child[1], "x", 1);
      waitpid(child, nullptr, 0);
      for (int fd : {to_parent[0], to_parent[1], to_child[0], to_child[1]}) close(fd);
    }
  } release{{to_parent[0], to_parent[1]}, {to_child[0], to_child[1]}, child};
  uint64_t answer[2] = {};
  ASSERT_EQ(read(to_parent[0], answer, sizeof(answer)), static_cast<ssize_t>(sizeof(answer)));
  ASSERT_NE(answer[0], 0u) << "the child could not make a namespace and listen in it";
  auto listeners = [](pid_t pid) {
    InetQuery q;
    q.states = tcp_state_bit(kTcpListen);
    std::set<std::pair<uint64_t, uint16_t>> out;
    SocketSource source = SocketSource::kProcNet;
    if (auto got = inet_sockets(pid, q, &source))
      for (const auto& s : *got) out.insert({s.inode, s.local_port});
    EXPECT_EQ(source, SocketSource::kSockDiag) << "pid " << pid;
    return out;
  };
  std::pair<uint64_t, uint16_t> theirs{answer[0], static_cast<uint16_t>(answer[1])};
  auto in_child = listeners(child);
  EXPECT_TRUE(in_child.count(theirs));
  EXPECT_FALSE(listeners(getpid()).count(theirs));
  // /proc/CHILD/net/tcp is the child's namespace's table: the same listeners.
  std::set<std::pair<uint64_t, uint16_t>> truth;
  auto text = read_text_file(fmt::format("/proc/{}/net/tcp", child), 64 << 20);
  ASSERT_TRUE(text);
  for (const auto& s : parse_proc_net_inet(*text, false, "tcp"))
    if (s.state == kTcpListen) truth.insert({s.inode, s.local_port});
  EXPECT_EQ(in_child, truth);
  // A socket made for the child is in the child's namespace (SIOCGSKNS opens the socket's namespace).
  auto made = socket_in_namespace(child, AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_TRUE(made) << made.error().describe();
  int ns = ioctl(*made, SIOCGSKNS);
  ASSERT_GE(ns, 0);
  struct stat sock_ns {
  }, child_ns{};
  ASSERT_EQ(fstat(ns, &sock_ns), 0);
  ASSERT_EQ(stat(fmt::format("/proc/{}/ns/net", child).c_str(), &child_ns), 0);
  EXPECT_EQ(sock_ns.st_ino, child_ns.st_ino);
  close(ns);
  close(*made);
}

// A process that is gone: a clear error, not an empty answer.
TEST(SockDiag, GonePidIsAnError) {
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) _exit(0);
  waitpid(child, nullptr, 0);
  EXPECT_FALSE(inet_sockets(child, InetQuery{}));
  EXPECT_FALSE(unix_sockets(child));
}

}  // namespace
}  // namespace memlens::proc
