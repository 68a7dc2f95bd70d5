#include "host/node_processes.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>

#include <cctype>
#include <filesystem>
#include <mutex>
#include <set>
#include <tuple>

#include "common/safe_file.h"
#include "elf/elf_file.h"
#include "model/attribution.h"
#include "proc/procfs.h"

namespace memlens::host {

namespace {

bool all_digits(const std::string& s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
  return true;
}

// What a listing shows of a Node process: its names, its pid inside its namespace, its cgroup and container.
NodeProcess describe(pid_t pid, const proc::Stat& st, const std::string& exe) {
  NodeProcess p;
  p.pid = pid;
  p.start_time_ticks = st.start_time_ticks;
  p.comm = st.comm;
  p.exe = exe;
  p.libnode = !model::looks_like_node(exe);
  auto status = proc::read_status(pid);
  p.ns_pid = status && status->ns_pid ? status->ns_pid : pid;
  if (auto argv = proc::read_cmdline(pid)) p.command = short_command(*argv, 60);
  if (auto cg = read_text_file(fmt::format("/proc/{}/cgroup", pid), 64 << 10)) {
    auto membership = parse_proc_cgroup(*cg);
    if (membership.memory_v1)
      p.cgroup_path = *membership.memory_v1;
    else if (membership.unified)
      p.cgroup_path = *membership.unified;
    // Runtimes name the container in every hierarchy; the unified one is there on v1 and v2 hosts.
    p.container = container_from_cgroup_path(p.cgroup_path);
    if (!p.container && membership.unified) p.container = container_from_cgroup_path(*membership.unified);
  }
  return p;
}

}  // namespace

namespace {

// A program embedding Node (Debian's nodejs, Electron-like hosts) maps libnode.so.
bool maps_libnode(pid_t pid) {
  auto maps = proc::read_maps(pid);
  if (!maps) return false;
  for (const auto& m : *maps)
    if (m.path.find("/libnode.so") != std::string::npos) return true;
  return false;
}

// Whether the open executable names libnode.so among its DT_NEEDED, decided once per file.
bool needs_libnode(int fd, const struct stat& st, const std::string& what) {
  using Identity = std::tuple<dev_t, ino_t, off_t, int64_t>;
  static std::mutex mu;
  static std::map<Identity, bool> decided;
  Identity id{st.st_dev, st.st_ino, st.st_size, st.st_mtim.tv_sec * 1'000'000'000LL + st.st_mtim.tv_nsec};
  {
    std::lock_guard<std::mutex> lock(mu);
    if (auto it = decided.find(id); it != decided.end()) return it->second;
  }
  bool needs = false;
  if (auto elf = elf::ElfFile::open(fd, what); elf.ok())
    for (const auto& n : (*elf)->dynamic_info().needed) needs = needs || n.starts_with("libnode.so");
  std::lock_guard<std::mutex> lock(mu);
  if (decided.size() >= 1024) decided.clear();
  decided[id] = needs;
  return needs;
}

}  // namespace

Result<Executable> read_executable(pid_t pid) {
  std::string link = fmt::format("/proc/{}/exe", pid);
  Executable e;
  struct stat st {};
  UniqueFd fd(open(link.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    // An executable memlens may run but not read (exec-only, a root-squashed mount): its name alone.
    if (errno != EACCES && errno != EPERM) return errno_error("cannot open " + link);
    auto path = proc::read_exe(pid);
    if (!path) return path.error();
    if (stat(link.c_str(), &st) != 0) return errno_error("cannot stat " + link);
    e.path = std::move(*path);
    e.is_node = model::looks_like_node(e.path);
  } else {
    // The path of the file opened, not /proc/PID/exe read once more: the process may have exec'd since.
    auto path = proc::read_link(fmt::format("/proc/self/fd/{}", fd.get()));
    if (!path) return path.error();
    if (fstat(fd.get(), &st) != 0) return errno_error("cannot stat " + link);
    e.path = std::move(*path);
    e.is_node = model::looks_like_node(e.path);
    e.needs_libnode = !e.is_node && needs_libnode(fd.get(), st, link);
  }
  e.device = st.st_dev;
  e.inode = st.st_ino;
  return e;
}

bool maps_libnode(pid_t pid, const Executable& exe) {
  if (!maps_libnode(pid)) return false;
  // Its maps were read after its executable: the same program only if it has not exec'd between.
  struct stat st {};
  return stat(fmt::format("/proc/{}/exe", pid).c_str(), &st) == 0 && st.st_dev == exe.device &&
         st.st_ino == exe.inode;
}

std::optional<NodeProcess> describe_node_process(pid_t pid) {
  auto st = proc::read_stat(pid);
  if (!st || st->state == 'Z' || st->state == 'X') return std::nullopt;
  auto exe = read_executable(pid);
  if (!exe || (!exe->runs_node() && !maps_libnode(pid, *exe))) return std::nullopt;
  return describe(pid, *st, exe->path);
}

std::string short_command(const std::vector<std::string>& argv, size_t max_chars) {
  std::string out;
  for (size_t i = 1; i < argv.size(); ++i) {
    // node's own flags before the script say nothing about which service this is.
    if (out.empty() && !argv[i].empty() && argv[i][0] == '-') continue;
    if (!out.empty()) {
      out += ' ' + argv[i];
      continue;
    }
    // The script's name says which service it is; its directory seldom fits in a column.
    auto slash = argv[i].rfind('/');
    out = slash == std::string::npos || slash + 1 == argv[i].size() ? argv[i] : argv[i].substr(slash + 1);
  }
  if (out.empty() && !argv.empty()) out = argv[0];
  if (out.size() > max_chars) out = out.substr(0, max_chars > 3 ? max_chars - 3 : 0) + "...";
  return out;
}

std::vector<NodeProcess> NodeProcessFinder::scan() {
  std::vector<NodeProcess> found;
  std::set<std::pair<pid_t, uint64_t>> seen;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/proc", ec)) {
    std::string name = e.path().filename().string();
    if (!all_digits(name)) continue;
    pid_t pid = static_cast<pid_t>(std::stol(name));
    auto st = proc::read_stat(pid);
    if (!st || st->state == 'Z' || st->state == 'X') continue;
    std::pair<pid_t, uint64_t> key{pid, st->start_time_ticks};
    seen.insert(key);
    auto exe = proc::read_exe(pid);
    if (!exe) continue;  // kernel threads have none
    auto it = known_.find(key);
    if (it == known_.end() || it->second.exe != *exe) {
      // A new process, or one that exec'd another program since.
      auto look = read_executable(pid);
      if (!look) continue;
      Known k{look->runs_node() || maps_libnode(pid, *look), look->path};
      it = known_.insert_or_assign(key, k).first;
    }
    if (!it->second.is_node) continue;
    NodeProcess p = describe(pid, *st, it->second.exe);
    found.push_back(std::move(p));
  }
  // Forget processes that are gone: the cache stays as large as the host's process table.
  for (auto it = known_.begin(); it != known_.end();)
    it = seen.count(it->first) ? std::next(it) : known_.erase(it);
  return found;
}

}  // namespace memlens::host
