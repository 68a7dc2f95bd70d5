#include "cli/environment.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "cli/commands.h"
#include "common/safe_file.h"

namespace memlens::cli {

namespace {

constexpr int kCapDacReadSearch = 2;
constexpr int kCapSysPtrace = 19;
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

bool has_cap(uint64_t caps, int cap) {
  return (caps >> cap) & 1;
}

// CAP_SYS_ADMIN implies CAP_BPF and CAP_PERFMON for the kernel (bpf_capable, perfmon_capable).
std::string missing_tracing_caps(uint64_t caps) {
  if (has_cap(caps, kCapSysAdmin)) return "";
  std::string out;
  if (!has_cap(caps, kCapBpf)) out = "CAP_BPF";
  if (!has_cap(caps, kCapPerfmon)) out += out.empty() ? "CAP_PERFMON" : " and CAP_PERFMON";
  return out;
}

constexpr const char* kPrivilegesRemedy =
    "run memlens as root (sudo memlens ...), or grant it CAP_BPF and CAP_PERFMON (+ CAP_SYS_PTRACE and "
    "CAP_DAC_READ_SEARCH for other users' processes), e.g. setcap "
    "cap_bpf,cap_perfmon,cap_sys_ptrace,cap_dac_read_search+ep memlens";

// errno of opening path (0 when it opens).
int open_errno(const std::string& path, int flags) {
  int fd = open(path.c_str(), flags | O_CLOEXEC);
  int e = fd >= 0 ? 0 : errno;
  if (fd >= 0) close(fd);
  return e;
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
  std::string missing = missing_tracing_caps(caps);
  if (missing.empty()) {
    c.ok = true;
    c.detail = geteuid() == 0 ? "running as root" : "CAP_BPF and CAP_PERFMON present";
    if (!has_cap(caps, kCapSysPtrace))
      c.detail += fmt::format("; without CAP_SYS_PTRACE only processes of uid {} can be traced", geteuid());
    else if (!has_cap(caps, kCapDacReadSearch))
      c.detail += "; without CAP_DAC_READ_SEARCH the fds of other users' processes cannot be listed";
  } else {
    c.detail = fmt::format("uid {} lacks {} (CapEff {:#x})", geteuid(), missing, caps);
    c.remedy = kPrivilegesRemedy;
  }
  return c;
}

Check check_process_access(pid_t pid) {
  Check c{fmt::format("access to process {}", pid)};
  // What tracing reads of a process: its maps, and its files through /proc/PID/root (binaries for the
  // uprobes, the perf map). The kernel checks ptrace read access for both; CAP_PERFMON may be enough for
  // maps, root/ needs the same uid or CAP_SYS_PTRACE.
  std::string refused;
  for (const char* what : {"maps", "root"}) {
    int e = open_errno(fmt::format("/proc/{}/{}", pid, what),
                       std::string_view(what) == "root" ? O_RDONLY | O_DIRECTORY : O_RDONLY);
    if (e == EACCES || e == EPERM)
      refused += (refused.empty() ? "" : " and ") + fmt::format("/proc/{}/{}", pid, what);
  }
  if (refused.empty()) {
    c.ok = true;  // readable, or failing for another reason the caller reports itself (no such pid)
    c.detail = "its maps and files are readable";
    return c;
  }
  std::string owner;
  if (auto status = read_text_file(fmt::format("/proc/{}/status", pid)); status) {
    size_t at = status->find("\nUid:\t");
    if (at != std::string::npos)
      owner = " (uid " + status->substr(at + 6, status->find('\t', at + 6) - at - 6) + ")";
  }
  c.detail = fmt::format("permission denied reading {} of process {}{}: memlens runs as uid {}{}", refused,
                         pid, owner, geteuid(),
                         has_cap(effective_caps(), kCapSysPtrace) ? "" : " without CAP_SYS_PTRACE");
  c.remedy = "run memlens as root, as the process's user, or grant it CAP_SYS_PTRACE";
  return c;
}

Check check_fd_listing(pid_t pid) {
  Check c{fmt::format("fds of process {}", pid)};
  // A process's fd directory is its owner's (mode 0500): ptrace access is not enough to list it.
  int e = open_errno(fmt::format("/proc/{}/fd", pid), O_RDONLY | O_DIRECTORY);
  c.ok = e != EACCES && e != EPERM;
  c.detail =
      c.ok ? "listable"
           : fmt::format("permission denied listing /proc/{}/fd: memlens runs as uid {}{}", pid, geteuid(),
                         has_cap(effective_caps(), kCapDacReadSearch) ? "" : " without CAP_DAC_READ_SEARCH");
  if (!c.ok) c.remedy = "run memlens as root, as the process's user, or grant it CAP_DAC_READ_SEARCH";
  return c;
}

bool is_permission_error(const Error& e) {
  return e.errno_value == EPERM || e.errno_value == EACCES;
}

int report_kernel_failure(const std::string& prefix, const Error& e) {
  if (!is_permission_error(e)) {
    fmt::print(stderr, "{}{}\n", prefix, e.describe());
    return kExitKernel;
  }
  uint64_t caps = effective_caps();
  std::string missing = missing_tracing_caps(caps);
  fmt::print(stderr,
             "{}{}\n  the kernel refused it for lack of privileges: uid {}, CapEff {:#x}{}\n  remedy: {}\n",
             prefix, e.describe(), geteuid(), caps, missing.empty() ? "" : ", lacking " + missing,
             kPrivilegesRemedy);
  return kExitPrivileges;
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
  // Created directly rather than with libbpf_probe_bpf_map_type, which reports any failure as "not
  // supported": a refusal for lack of privileges must read as such.
  LIBBPF_OPTS(bpf_map_create_opts, opts);
  int fd = bpf_map_create(BPF_MAP_TYPE_RINGBUF, "ml_probe_rb", 0, 0, 4096, &opts);
  int e = errno;
  if (fd >= 0) {
    close(fd);
    c.ok = true;
    c.detail = "supported";
  } else if (e == EPERM || e == EACCES) {
    std::string missing = missing_tracing_caps(effective_caps());
    c.detail = fmt::format("cannot be probed: the kernel refused to create a BPF map to uid {}{} ({})",
                           geteuid(), missing.empty() ? "" : " lacking " + missing, strerror(e));
    c.remedy = kPrivilegesRemedy;
  } else {
    c.detail = fmt::format("not supported by this kernel ({})", strerror(e));
    c.remedy = "Linux >= 5.8 is needed for BPF ring buffers";
  }
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
