#include "cli/environment.h"

#include <bpf/libbpf.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cstdarg>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "cli/commands.h"
#include "common/safe_file.h"

namespace memlens::cli {

namespace {

constexpr int kCapSysAdmin = 21;
constexpr int kCapPerfmon = 38;
constexpr int kCapBpf = 39;

uint64_t effective_caps() {
  auto text = read_text_file("/proc/self/status");
  if (!text) return 0;
  std::istringstream in(*text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("CapEff:", 0) == 0) return std::stoull(line.substr(7), nullptr, 16);
  }
  return 0;
}

bool verbose_libbpf = false;

int libbpf_print(enum libbpf_print_level level, const char* format, va_list args) {
  // libbpf's own messages are for debugging; memlens reports failures itself with a remedy.
  if (!verbose_libbpf && level != LIBBPF_WARN) return 0;
  if (!verbose_libbpf) return 0;
  return vfprintf(stderr, format, args);
}

}  // namespace

void install_libbpf_logging(bool verbose) {
  verbose_libbpf = verbose;
  libbpf_set_print(libbpf_print);
}

Check check_privileges() {
  Check c{"privileges"};
  uint64_t caps = effective_caps();
  bool has = [&](int cap) { return (caps >> cap) & 1; }(kCapSysAdmin) ||
             (((caps >> kCapBpf) & 1) && ((caps >> kCapPerfmon) & 1));
  if (geteuid() == 0 && has) {
    c.ok = true;
    c.detail = "running as root";
  } else if (has) {
    c.ok = true;
    c.detail = "CAP_BPF and CAP_PERFMON present";
  } else {
    c.detail = fmt::format("uid {} without CAP_BPF and CAP_PERFMON (CapEff {:#x})", geteuid(), caps);
    c.remedy = "run memlens as root (sudo memlens ...), or grant it CAP_BPF, CAP_PERFMON and CAP_SYS_PTRACE";
  }
  return c;
}

Check check_btf() {
  Check c{"kernel BTF"};
  if (access("/sys/kernel/btf/vmlinux", R_OK) == 0) {
    c.ok = true;
    c.detail = "/sys/kernel/btf/vmlinux";
  } else {
    c.detail = "/sys/kernel/btf/vmlinux is missing";
    c.remedy =
        "use a kernel built with CONFIG_DEBUG_INFO_BTF=y (Linux >= 5.8; most distribution kernels are)";
  }
  return c;
}

Check check_ring_buffer() {
  Check c{"BPF ring buffer"};
  int r = libbpf_probe_bpf_map_type(BPF_MAP_TYPE_RINGBUF, nullptr);
  c.ok = r == 1;
  c.detail = c.ok ? "supported" : (r == 0 ? "not supported by this kernel" : "cannot probe (no privileges?)");
  if (!c.ok) c.remedy = "Linux >= 5.8 is needed for BPF ring buffers";
  return c;
}

Check check_uprobes() {
  Check c{"uprobes"};
  if (access("/sys/bus/event_source/devices/uprobe/type", R_OK) == 0) {
    c.ok = true;
    c.detail = "uprobe PMU present";
  } else {
    c.detail = "/sys/bus/event_source/devices/uprobe is missing";
    c.remedy = "use a kernel built with CONFIG_UPROBE_EVENTS=y";
  }
  return c;
}

int preflight(bool quiet) {
  (void)quiet;
  Check priv = check_privileges();
  if (!priv.ok) {
    fmt::print(stderr, "memlens: insufficient privileges: {}\n  remedy: {}\n", priv.detail, priv.remedy);
    return kExitPrivileges;
  }
  Check btf = check_btf();
  if (!btf.ok) {
    fmt::print(stderr, "memlens: {}\n  remedy: {}\n", btf.detail, btf.remedy);
    return kExitKernel;
  }
  return 0;
}

}  // namespace memlens::cli
