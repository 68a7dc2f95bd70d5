#include "proc/sock_diag.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <libmnl/libmnl.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <memory>
#include <thread>

#include "common/safe_file.h"
#include "common/text.h"

namespace memlens::proc {

namespace {

std::string address_text(int family, const void* raw) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (!inet_ntop(family, raw, buf, sizeof(buf))) return "";
  return buf;
}

bool same_namespace(pid_t pid) {
  struct stat mine {
  }, theirs{};
  std::string path = fmt::format("/proc/{}/ns/net", pid);
  return stat("/proc/self/ns/net", &mine) == 0 && stat(path.c_str(), &theirs) == 0 &&
         mine.st_ino == theirs.st_ino && mine.st_dev == theirs.st_dev;
}

struct MnlCloser {
  void operator()(mnl_socket* s) const { mnl_socket_close(s); }
};
using MnlSocket = std::unique_ptr<mnl_socket, MnlCloser>;

Result<MnlSocket> open_diag(pid_t pid) {
  auto fd = socket_in_namespace(pid, AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (!fd) return fd.error();
  mnl_socket* nl = mnl_socket_fdopen(*fd);
  if (!nl) {
    Error e = errno_error("cannot use the sock_diag socket");
    close(*fd);
    return e;
  }
  if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
    Error e = errno_error("cannot bind the sock_diag socket");
    mnl_socket_close(nl);
    return e;
  }
  return MnlSocket(nl);
}

// Sends one dump request and calls on_message with each answer's payload until the kernel says done.
// A dump fills each read up to 32 KiB (the kernel sizes its messages to the reader's largest buffer).
template <typename OnMessage>
Result<void> dump(mnl_socket* nl, nlmsghdr* request, OnMessage on_message) {
  static std::atomic<uint32_t> next_seq{1};
  request->nlmsg_seq = next_seq++;
  request->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  if (mnl_socket_sendto(nl, request, request->nlmsg_len) < 0) return errno_error("sock_diag request");
  struct Context {
    OnMessage* fn;
  } context{&on_message};
  auto callback = [](const nlmsghdr* nlh, void* data) -> int {
    (*static_cast<Context*>(data)->fn)(nlh);
    return MNL_CB_OK;
  };
  std::vector<char> buf(32768);
  uint32_t portid = mnl_socket_get_portid(nl);
  for (;;) {
    ssize_t n = mnl_socket_recvfrom(nl, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;  // a signal memlens handles (its stop signals)
    if (n < 0) return errno_error("sock_diag answer");
    int rc = mnl_cb_run(buf.data(), static_cast<size_t>(n), request->nlmsg_seq, portid, callback, &context);
    if (rc == MNL_CB_ERROR) return errno_error("sock_diag answer");
    if (rc == MNL_CB_STOP) return {};
  }
}

// Bytecode the kernel runs on each socket before answering: local port == port (as >= and <=, which
// every kernel with sock_diag knows). A failed test jumps past the end, which rejects the socket.
struct PortFilter {
  inet_diag_bc_op ge{INET_DIAG_BC_S_GE, 8, 20};
  inet_diag_bc_op ge_port{0, 0, 0};
  inet_diag_bc_op le{INET_DIAG_BC_S_LE, 8, 12};
  inet_diag_bc_op le_port{0, 0, 0};
};

Result<void> dump_inet(mnl_socket* nl, int family, const InetQuery& q, std::vector<InetSocket>& out) {
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf.data());
  nlh->nlmsg_type = SOCK_DIAG_BY_FAMILY;
  auto* req = static_cast<inet_diag_req_v2*>(mnl_nlmsg_put_extra_header(nlh, sizeof(inet_diag_req_v2)));
  req->sdiag_family = static_cast<uint8_t>(family);
  req->sdiag_protocol = q.protocol == "udp" ? IPPROTO_UDP : IPPROTO_TCP;
  req->idiag_states = q.states;
  if (q.local_port) {
    PortFilter f;
    f.ge_port.no = *q.local_port;
    f.le_port.no = *q.local_port;
    mnl_attr_put(nlh, INET_DIAG_REQ_BYTECODE, sizeof(f), &f);
  }
  return dump(nl, nlh, [&](const nlmsghdr* m) {
    if (m->nlmsg_type != SOCK_DIAG_BY_FAMILY || mnl_nlmsg_get_payload_len(m) < sizeof(inet_diag_msg)) return;
    const auto* msg = static_cast<const inet_diag_msg*>(mnl_nlmsg_get_payload(m));
    if (msg->idiag_family != family) return;
    InetSocket s;
    s.v6 = family == AF_INET6;
    s.protocol = q.protocol;
    s.local_address = address_text(family, msg->id.idiag_src);
    s.remote_address = address_text(family, msg->id.idiag_dst);
    s.local_port = ntohs(msg->id.idiag_sport);
    s.remote_port = ntohs(msg->id.idiag_dport);
    s.state = msg->idiag_state;
    s.inode = msg->idiag_inode;
    out.push_back(std::move(s));
  });
}

// A unix socket's bound name as /proc/net/unix prints it: a path without the NUL the kernel keeps after
// it; '@' for the abstract namespace's leading NUL (and any NUL after it).
std::string unix_name(const char* raw, size_t len) {
  if (len > 0 && raw[0] != '\0' && raw[len - 1] == '\0') --len;
  std::string name(raw, len);
  for (char& c : name)
    if (c == '\0') c = '@';
  return name;
}

const char* unix_state_name(unsigned sk_state) {
  switch (sk_state) {
    case kTcpEstablished:
      return "connected";
    case 2:  // TCP_SYN_SENT
      return "connecting";
    case kTcpListen:
      return "listening";
    case kTcpClose:
      return "unconnected";
  }
  return "";
}

const char* unix_type_name(unsigned type) {
  return type == SOCK_STREAM      ? "stream"
         : type == SOCK_DGRAM     ? "dgram"
         : type == SOCK_SEQPACKET ? "seqpacket"
                                  : "other";
}

Result<void> dump_unix(mnl_socket* nl, std::vector<SocketEntry>& out) {
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf.data());
  nlh->nlmsg_type = SOCK_DIAG_BY_FAMILY;
  auto* req = static_cast<unix_diag_req*>(mnl_nlmsg_put_extra_header(nlh, sizeof(unix_diag_req)));
  req->sdiag_family = AF_UNIX;
  req->udiag_states = kAllTcpStates;
  req->udiag_show = UDIAG_SHOW_NAME;
  return dump(nl, nlh, [&](const nlmsghdr* m) {
    if (m->nlmsg_type != SOCK_DIAG_BY_FAMILY || mnl_nlmsg_get_payload_len(m) < sizeof(unix_diag_msg)) return;
    const auto* msg = static_cast<const unix_diag_msg*>(mnl_nlmsg_get_payload(m));
    SocketEntry s;
    s.family = "unix";
    s.inode = msg->udiag_ino;
    s.protocol = unix_type_name(msg->udiag_type);
    s.state = unix_state_name(msg->udiag_state);
    auto on_attr = [](const nlattr* a, void* data) -> int {
      if (mnl_attr_get_type(a) == UNIX_DIAG_NAME)
        *static_cast<std::string*>(data) =
            unix_name(static_cast<const char*>(mnl_attr_get_payload(a)), mnl_attr_get_payload_len(a));
      return MNL_CB_OK;
    };
    mnl_attr_parse(m, sizeof(unix_diag_msg), on_attr, &s.local);
    out.push_back(std::move(s));
  });
}

// The /proc/PID/net text fallback: every socket of the namespace, filtered here.
Result<std::vector<InetSocket>> inet_from_proc(pid_t pid, const InetQuery& q) {
  std::vector<InetSocket> out;
  bool any = false;
  Error last;
  for (bool v6 : {false, true}) {
    std::string file = fmt::format("/proc/{}/net/{}{}", pid, q.protocol, v6 ? "6" : "");
    auto text = read_text_file(file, 64 << 20);
    if (!text) {
      last = text.error();
      continue;
    }
    any = true;
    for (auto& s : parse_proc_net_inet(*text, v6, q.protocol))
      if ((q.states & tcp_state_bit(s.state)) && (!q.local_port || s.local_port == *q.local_port))
        out.push_back(std::move(s));
  }
  if (!any) return last;
  return out;
}

// "0100007F:1F90": the address as the kernel's 32-bit words in hex (each word's bytes in host order of
// its network-order value), then the port.
bool parse_proc_endpoint(std::string_view field, bool v6, std::string& address, uint16_t& port) {
  size_t colon = field.find(':');
  if (colon == std::string_view::npos) return false;
  std::string_view hex = field.substr(0, colon);
  unsigned p = 0;
  if (!parse_number(field.substr(colon + 1), p, 16) || p > 65535) return false;
  port = static_cast<uint16_t>(p);
  size_t words = v6 ? 4 : 1;
  if (hex.size() != words * 8) return false;
  unsigned char raw[16] = {};
  for (size_t w = 0; w < words; ++w) {
    uint32_t word = 0;
    if (!parse_number(hex.substr(w * 8, 8), word, 16)) return false;
    std::memcpy(&raw[w * 4], &word, 4);
  }
  address = address_text(v6 ? AF_INET6 : AF_INET, raw);
  return !address.empty();
}

// One sock_diag socket in pid's namespace for several questions; when it cannot be had, or a question
// fails, the /proc/PID/net tables answer.
class SocketAsker {
 public:
  explicit SocketAsker(pid_t pid) : pid_(pid), nl_(open_diag(pid)) {}

  static Result<void> check_protocol(const InetQuery& query) {
    if (query.protocol != "tcp" && query.protocol != "udp")
      return make_error(fmt::format("no socket table for protocol '{}'", query.protocol), EINVAL);
    return {};
  }

  Result<std::vector<InetSocket>> inet(const InetQuery& query, SocketSource* source) {
    if (auto ok = check_protocol(query); !ok) return ok.error();
    reopen_if_stale();
    if (nl_) {
      std::vector<InetSocket> out;
      auto v4 = dump_inet(nl_->get(), AF_INET, query, out);
      auto v6 = v4 ? dump_inet(nl_->get(), AF_INET6, query, out) : v4;
      if (v4 && v6) {
        if (source) *source = SocketSource::kSockDiag;
        return out;
      }
      stale_ = true;
    }
    if (source) *source = SocketSource::kProcNet;
    return inet_from_proc(pid_, query);
  }

  Result<std::vector<SocketEntry>> unix_sockets(SocketSource* source) {
    reopen_if_stale();
    if (nl_) {
      std::vector<SocketEntry> out;
      if (dump_unix(nl_->get(), out)) {
        if (source) *source = SocketSource::kSockDiag;
        return out;
      }
      stale_ = true;
    }
    if (source) *source = SocketSource::kProcNet;
    auto text = read_text_file(fmt::format("/proc/{}/net/unix", pid_), 64 << 20);
    if (!text) return text.error();
    return parse_net_unix(*text);
  }

 private:
  // A dump that failed partway may leave its answer unread on the socket: the next question, if any, gets
  // a fresh one, or the /proc tables when none can be had.
  void reopen_if_stale() {
    if (!stale_) return;
    nl_ = open_diag(pid_);
    stale_ = false;
  }

  pid_t pid_;
  Result<MnlSocket> nl_;
  bool stale_ = false;
};

}  // namespace

const char* tcp_state_name(unsigned st) {
  static const char* names[] = {"",          "ESTABLISHED", "SYN_SENT",     "SYN_RECV",      "FIN_WAIT1",
                                "FIN_WAIT2", "TIME_WAIT",   "CLOSE",        "CLOSE_WAIT",    "LAST_ACK",
                                "LISTEN",    "CLOSING",     "NEW_SYN_RECV", "BOUND_INACTIVE"};
  return st < sizeof(names) / sizeof(names[0]) ? names[st] : "";
}

Result<int> socket_in_namespace(pid_t pid, int domain, int type, int protocol) {
  if (same_namespace(pid)) {
    int fd = socket(domain, type, protocol);
    if (fd < 0) return errno_error("socket");
    return fd;
  }
  std::string ns_path = fmt::format("/proc/{}/ns/net", pid);
  UniqueFd ns(open(ns_path.c_str(), O_RDONLY | O_CLOEXEC));
  if (ns.get() < 0) return errno_error(fmt::format("cannot open {}", ns_path));
  Result<int> result = make_error("not run");
  try {
    std::thread t([&]() {
      if (setns(ns.get(), CLONE_NEWNET) != 0) {
        result = errno_error("cannot enter the target's network namespace");
        return;
      }
      int fd = socket(domain, type, protocol);
      result = fd < 0 ? Result<int>(errno_error("socket")) : Result<int>(fd);
    });
    t.join();
  } catch (const std::system_error& e) {
    return make_error(
        fmt::format("cannot start a thread to enter the target's network namespace: {}", e.what()),
        e.code().value());
  }
  return result;
}

Result<std::vector<InetSocket>> inet_sockets(pid_t pid, const InetQuery& query, SocketSource* source) {
  if (auto ok = SocketAsker::check_protocol(query); !ok) return ok.error();  // before a socket is made
  return SocketAsker(pid).inet(query, source);
}

Result<std::vector<SocketEntry>> unix_sockets(pid_t pid, SocketSource* source) {
  return SocketAsker(pid).unix_sockets(source);
}

std::vector<InetSocket> parse_proc_net_inet(std::string_view text, bool v6, std::string_view protocol) {
  std::vector<InetSocket> out;
  for_each_line(text, [&](std::string_view line) {
    auto f = split_ws(line);
    // sl local rem st tx:rx tr:when retrnsmt uid timeout inode ...
    if (f.size() < 10 || !f[0].ends_with(":")) return;
    InetSocket s;
    s.v6 = v6;
    s.protocol = std::string(protocol);
    unsigned st = 0;
    if (!parse_proc_endpoint(f[1], v6, s.local_address, s.local_port) ||
        !parse_proc_endpoint(f[2], v6, s.remote_address, s.remote_port) || !parse_number(f[3], st, 16) ||
        st > 255 || !parse_number(f[9], s.inode))
      return;
    s.state = static_cast<uint8_t>(st);
    out.push_back(std::move(s));
  });
  return out;
}

SocketEntry describe(const InetSocket& s) {
  auto endpoint = [&](const std::string& address, uint16_t port) {
    return s.v6 ? fmt::format("[{}]:{}", address, port) : fmt::format("{}:{}", address, port);
  };
  SocketEntry e;
  e.inode = s.inode;
  e.family = s.v6 ? "inet6" : "inet";
  e.protocol = s.protocol;
  e.local = endpoint(s.local_address, s.local_port);
  bool unconnected = s.remote_port == 0 && (s.remote_address == "0.0.0.0" || s.remote_address == "::");
  if (!unconnected) e.remote = endpoint(s.remote_address, s.remote_port);
  if (s.protocol == "tcp") e.state = tcp_state_name(s.state);
  return e;
}

std::vector<SocketEntry> parse_net_unix(std::string_view text) {
  std::vector<SocketEntry> out;
  for_each_line(text, [&](std::string_view line) {
    // Num RefCount Protocol Flags Type St Inode [Path]
    auto f = split_ws(line);
    if (f.size() < 7 || !f[0].ends_with(":")) return;
    SocketEntry s;
    s.family = "unix";
    unsigned flags = 0, type = 0, st = 0;
    if (!parse_number(f[3], flags, 16) || !parse_number(f[4], type, 16) || !parse_number(f[5], st, 16) ||
        !parse_number(f[6], s.inode) || s.inode == 0)
      return;
    s.protocol = unix_type_name(type);
    // St is the socket's SS_* state, which says "unconnected" of a listener: its __SO_ACCEPTCON flag
    // (0x10000) says listening, as sock_diag's TCP_LISTEN does.
    constexpr unsigned kAcceptCon = 0x10000;
    s.state = (flags & kAcceptCon) ? "listening"
              : st == 1            ? "unconnected"
              : st == 2            ? "connecting"
              : st == 3            ? "connected"
              : st == 4            ? "disconnecting"
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

std::unordered_map<uint64_t, SocketEntry> read_sockets(pid_t pid, SocketSource* source) {
  std::unordered_map<uint64_t, SocketEntry> out;
  SocketAsker ask(pid);
  SocketSource each = SocketSource::kSockDiag;
  if (source) *source = SocketSource::kSockDiag;
  for (const char* protocol : {"tcp", "udp"}) {
    InetQuery q;
    q.protocol = protocol;
    if (q.protocol == "tcp") q.states = kTcpStatesWithInode;
    auto sockets = ask.inet(q, &each);
    if (source && each == SocketSource::kProcNet) *source = SocketSource::kProcNet;
    if (sockets)
      for (const auto& s : *sockets)
        if (s.inode != 0) out.emplace(s.inode, describe(s));
  }
  auto sockets = ask.unix_sockets(&each);
  if (source && each == SocketSource::kProcNet) *source = SocketSource::kProcNet;
  if (sockets)
    for (auto& s : *sockets)
      if (s.inode != 0) out.emplace(s.inode, std::move(s));
  return out;
}

}  // namespace memlens::proc
