#include "inspector/signal_check.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fmt/format.h>

#include <csignal>
#include <cstring>

#include "common/safe_file.h"
#include "memlens/sighand_abi.h"
#include "proc/procfs.h"
#include "sighand.skel.h"
#include "symbolize/symbolizer.h"

namespace memlens::inspector {

namespace {

std::vector<std::string> split_words(const std::string& s) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : s) {
    if (c == ' ' || c == '\t' || c == '\n') {
      if (!cur.empty()) out.push_back(std::move(cur));
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) out.push_back(std::move(cur));
  return out;
}

// "[host:]port" of --inspect=..., --inspect-port=...
void parse_host_port(const std::string& v, InspectorFlags& f) {
  std::string port = v;
  auto colon = v.rfind(':');
  if (colon != std::string::npos) {
    f.host = v.substr(0, colon);
    if (f.host.size() > 2 && f.host.front() == '[' && f.host.back() == ']')
      f.host = f.host.substr(1, f.host.size() - 2);
    port = v.substr(colon + 1);
  } else if (v.find_first_not_of("0123456789") != std::string::npos) {
    f.host = v;  // a host alone
    return;
  }
  if (!port.empty() && port.size() <= 5 && port.find_first_not_of("0123456789") == std::string::npos) {
    unsigned long p = std::stoul(port);
    if (p <= 65535) f.port = static_cast<uint16_t>(p);
  }
}

void apply_option(const std::string& a, InspectorFlags& f) {
  auto value_of = [&](std::string_view name) -> std::optional<std::string> {
    if (a.size() > name.size() && a.compare(0, name.size(), name) == 0 && a[name.size()] == '=')
      return a.substr(name.size() + 1);
    return std::nullopt;
  };
  if (a == "--disable-sigusr1") f.disable_sigusr1 = true;
  if (a == "--permission" || a == "--experimental-permission") f.permission = true;
  if (a == "--allow-inspector") f.allow_inspector = true;
  for (std::string_view opt : {"--inspect", "--inspect-brk", "--inspect-wait"}) {
    if (a == opt) f.inspect_at_start = true;
    if (auto v = value_of(opt)) {
      f.inspect_at_start = true;
      parse_host_port(*v, f);
    }
  }
  for (std::string_view opt : {"--inspect-port", "--debug-port"})
    if (auto v = value_of(opt)) parse_host_port(*v, f);
}

}  // namespace

InspectorFlags parse_inspector_flags(const std::vector<std::string>& argv, const std::string& node_options) {
  InspectorFlags f;
  for (const auto& w : split_words(node_options)) apply_option(w, f);
  // Node's options end at the script, at -e/-p code, or at "--".
  for (size_t i = 1; i < argv.size(); ++i) {
    const std::string& a = argv[i];
    if (a == "--" || a.empty() || a[0] != '-') break;
    if (a == "-e" || a == "--eval" || a == "-p" || a == "--print" || a == "-r" || a == "--require") {
      if (a == "-r" || a == "--require") {
        ++i;
        continue;
      }
      break;
    }
    if ((a == "--inspect-port" || a == "--debug-port") && i + 1 < argv.size()) {
      parse_host_port(argv[++i], f);
      continue;
    }
    apply_option(a, f);
  }
  return f;
}

Result<InspectorFlags> read_inspector_flags(pid_t pid) {
  auto argv = proc::read_cmdline(pid);
  if (!argv) return argv.error();
  std::string node_options;
  if (auto env = read_text_file(fmt::format("/proc/{}/environ", pid), 1 << 20)) {
    const std::string& e = *env;
    size_t pos = 0;
    while (pos < e.size()) {
      size_t end = e.find('\0', pos);
      if (end == std::string::npos) end = e.size();
      std::string_view kv(e.data() + pos, end - pos);
      if (kv.starts_with("NODE_OPTIONS=")) node_options = std::string(kv.substr(13));
      pos = end + 1;
    }
  }
  return parse_inspector_flags(*argv, node_options);
}

bool is_loopback_host(const std::string& host) {
  return host.empty() || host == "localhost" || host.starts_with("127.") || host == "::1" ||
         host == "0:0:0:0:0:0:0:1";
}

const char* handler_owner_name(HandlerOwner o) {
  switch (o) {
    case HandlerOwner::kNodeInspector:
      return "node_inspector";
    case HandlerOwner::kAppListener:
      return "app_listener";
    case HandlerOwner::kDefault:
      return "default";
    case HandlerOwner::kIgnored:
      return "ignored";
    case HandlerOwner::kUnknown:
      break;
  }
  return "unknown";
}

HandlerOwner classify_handler(uint64_t address, const std::string& symbol) {
  if (address == reinterpret_cast<uint64_t>(SIG_DFL)) return HandlerOwner::kDefault;
  if (address == reinterpret_cast<uint64_t>(SIG_IGN)) return HandlerOwner::kIgnored;
  if (symbol.find("uv__signal_handler") != std::string::npos) return HandlerOwner::kAppListener;
  if (symbol.find("StartIoThreadWakeup") != std::string::npos) return HandlerOwner::kNodeInspector;
  return HandlerOwner::kUnknown;
}

Result<uint64_t> read_signal_handler(pid_t pid, int signo) {
  struct Skel {
    sighand_bpf* s = nullptr;
    ~Skel() { sighand_bpf__destroy(s); }
  } skel;
  skel.s = sighand_bpf__open_and_load();
  if (!skel.s) return errno_error("cannot load the BPF program that reads a signal's handler");
  ml_sigaction_query q{};
  q.pid = pid;
  q.signo = signo;
  LIBBPF_OPTS(bpf_test_run_opts, opts, .ctx_in = &q, .ctx_size_in = sizeof(q));
  if (bpf_prog_test_run_opts(bpf_program__fd(skel.s->progs.read_signal_action), &opts) != 0)
    return errno_error("cannot run the BPF program that reads a signal's handler");
  if (!q.found) return make_error(fmt::format("pid {} not found by the kernel", pid), ESRCH);
  return q.handler;
}

HandlerCheck check_sigusr1_handler(pid_t pid) {
  HandlerCheck c;
  auto h = read_signal_handler(pid, SIGUSR1);
  if (!h) {
    c.detail = h.error().describe();
    return c;
  }
  c.address = *h;
  if (c.address > 1) {
    auto sym = symbolize::ProcessSymbolizer::create(pid);
    if (!sym) {
      c.detail = sym.error().describe();
      return c;
    }
    symbolize::Frame f = (*sym)->symbolize({c.address}).front();
    if (f.kind == symbolize::FrameKind::kNative) c.symbol = f.function;
  }
  c.owner = classify_handler(c.address, c.symbol);
  if (c.owner == HandlerOwner::kUnknown)
    c.detail = c.symbol.empty() ? fmt::format("handler at {:#x} could not be named", c.address)
                                : fmt::format("handler {} is neither node's nor libuv's", c.symbol);
  return c;
}

}  // namespace memlens::inspector
