#include "proc/procfs.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <filesystem>

#include "common/safe_file.h"
#include "proc/page_scan.h"

namespace memlens::proc {

namespace {

std::string_view next_token(std::string_view& s) {
  size_t i = 0;
  while (i < s.size() && s[i] == ' ') ++i;
  size_t j = i;
  while (j < s.size() && s[j] != ' ') ++j;
  std::string_view tok = s.substr(i, j - i);
  s.remove_prefix(j);
  return tok;
}

template <typename T>
bool parse_num(std::string_view s, T& out, int base = 10) {
  if (s.empty()) return false;
  auto r = std::from_chars(s.data(), s.data() + s.size(), out, base);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

bool parse_map_line(std::string_view line, MapEntry& e) {
  std::string_view rest = line;
  std::string_view range = next_token(rest);
  std::string_view perms = next_token(rest);
  std::string_view offset = next_token(rest);
  std::string_view dev = next_token(rest);
  std::string_view inode = next_token(rest);
  size_t dash = range.find('-');
  size_t colon = dev.find(':');
  if (dash == std::string_view::npos || colon == std::string_view::npos || perms.size() < 4) return false;
  if (!parse_num(range.substr(0, dash), e.start, 16) || !parse_num(range.substr(dash + 1), e.end, 16))
    return false;
  if (e.end < e.start) return false;
  if (!parse_num(offset, e.offset, 16)) return false;
  if (!parse_num(dev.substr(0, colon), e.dev_major, 16) || !parse_num(dev.substr(colon + 1), e.dev_minor, 16))
    return false;
  if (!parse_num(inode, e.inode)) return false;
  e.read = perms[0] == 'r';
  e.write = perms[1] == 'w';
  e.exec = perms[2] == 'x';
  e.shared = perms[3] == 's';
  size_t i = 0;
  while (i < rest.size() && rest[i] == ' ') ++i;
  e.path = std::string(rest.substr(i));
  return true;
}

// "Rss:                 123 kB" -> bytes
bool parse_kb_field(std::string_view line, std::string_view& key, uint64_t& bytes) {
  size_t colon = line.find(':');
  if (colon == std::string_view::npos) return false;
  key = line.substr(0, colon);
  std::string_view rest = line.substr(colon + 1);
  std::string_view num = next_token(rest);
  uint64_t v = 0;
  if (!parse_num(num, v)) return false;
  std::string_view unit = next_token(rest);
  bytes = unit == "kB" ? v * 1024 : v;
  return true;
}

bool is_smaps_header(std::string_view line) {
  // Header lines start with a hex range "start-end "; field lines start with a capitalised key.
  size_t dash = line.find('-');
  if (dash == 0 || dash == std::string_view::npos || dash > 16) return false;
  for (size_t i = 0; i < dash; ++i)
    if (!isxdigit(static_cast<unsigned char>(line[i]))) return false;
  return true;
}

template <typename F>
void for_each_line(std::string_view text, F&& f) {
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    f(line);
    if (nl == std::string_view::npos) break;
    text.remove_prefix(nl + 1);
  }
}

Error proc_error(pid_t pid, const char* what, const Error& e) {
  int err = e.errno_value == ENOENT ? ESRCH : e.errno_value;
  return make_error(fmt::format("cannot read /proc/{}/{}", pid, what), err);
}

}  // namespace

bool MapEntry::deleted() const {
  constexpr std::string_view suffix = " (deleted)";
  return path.size() >= suffix.size() &&
         path.compare(path.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::vector<MapEntry> parse_maps(std::string_view text, ParseStats* stats) {
  std::vector<MapEntry> out;
  for_each_line(text, [&](std::string_view line) {
    if (line.empty()) return;
    if (stats) ++stats->lines;
    MapEntry e;
    if (parse_map_line(line, e))
      out.push_back(std::move(e));
    else if (stats)
      ++stats->malformed;
  });
  return out;
}

std::vector<SmapsEntry> parse_smaps(std::string_view text, ParseStats* stats) {
  std::vector<SmapsEntry> out;
  SmapsEntry* cur = nullptr;
  for_each_line(text, [&](std::string_view line) {
    if (line.empty()) return;
    if (stats) ++stats->lines;
    if (is_smaps_header(line)) {
      SmapsEntry e;
      if (parse_map_line(line, e.map)) {
        out.push_back(std::move(e));
        cur = &out.back();
      } else {
        cur = nullptr;
        if (stats) ++stats->malformed;
      }
      return;
    }
    if (!cur) return;
    std::string_view key;
    uint64_t bytes = 0;
    if (line.starts_with("VmFlags:")) return;
    if (line.starts_with("THPeligible:")) {
      cur->thp_eligible = line.find('1') != std::string_view::npos;
      return;
    }
    if (!parse_kb_field(line, key, bytes)) return;
    if (key == "Rss")
      cur->rss = bytes;
    else if (key == "Pss")
      cur->pss = bytes;
    else if (key == "Anonymous")
      cur->anonymous = bytes;
    else if (key == "Swap")
      cur->swap = bytes;
    else if (key == "Shared_Clean")
      cur->shared_clean = bytes;
    else if (key == "Shared_Dirty")
      cur->shared_dirty = bytes;
    else if (key == "Private_Clean")
      cur->private_clean = bytes;
    else if (key == "Private_Dirty")
      cur->private_dirty = bytes;
  });
  return out;
}

std::optional<Status> parse_status(std::string_view text) {
  Status s;
  bool any = false;
  for_each_line(text, [&](std::string_view line) {
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) return;
    std::string_view key = line.substr(0, colon);
    std::string_view rest = line.substr(colon + 1);
    while (!rest.empty() && (rest.front() == ' ' || rest.front() == '\t')) rest.remove_prefix(1);
    if (key == "Name") {
      s.name = std::string(rest);
      any = true;
      return;
    }
    if (key == "SigPnd" || key == "ShdPnd") {
      uint64_t mask = 0;
      auto [end, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), mask, 16);
      if (ec == std::errc()) (key == "SigPnd" ? s.sig_pending : s.shared_sig_pending) = mask;
      return;
    }
    if (key == "NSpid") {
      // One pid per namespace level, outermost first: the last is the pid the process sees itself as.
      std::string_view inner =
          rest.substr(rest.find_last_of(" \t") == std::string_view::npos ? 0 : rest.find_last_of(" \t") + 1);
      uint64_t v = 0;
      if (parse_num(inner, v)) s.ns_pid = static_cast<pid_t>(v);
      return;
    }
    std::string_view num = rest.substr(0, rest.find_first_of(" \t"));
    uint64_t v = 0;
    if (!parse_num(num, v)) return;
    uint64_t kb = v * 1024;
    if (key == "Tgid")
      s.tgid = static_cast<pid_t>(v);
    else if (key == "PPid")
      s.ppid = static_cast<pid_t>(v);
    else if (key == "Uid")
      s.uid = static_cast<uid_t>(v);
    else if (key == "VmRSS")
      s.vm_rss = kb;
    else if (key == "VmHWM")
      s.vm_hwm = kb;
    else if (key == "RssAnon")
      s.rss_anon = kb;
    else if (key == "RssFile")
      s.rss_file = kb;
    else if (key == "RssShmem")
      s.rss_shmem = kb;
    else if (key == "VmSwap")
      s.vm_swap = kb;
    else if (key == "VmSize")
      s.vm_size = kb;
    else if (key == "Threads")
      s.threads = static_cast<uint32_t>(v);
  });
  if (!any) return std::nullopt;
  return s;
}

std::optional<Stat> parse_stat(std::string_view text) {
  // "pid (comm) state ppid ..." where comm may hold spaces and parentheses: the last ')' ends it.
  size_t open = text.find('(');
  size_t close = text.rfind(')');
  if (open == std::string_view::npos || close == std::string_view::npos || close < open) return std::nullopt;
  Stat st;
  std::string_view pid_text = text.substr(0, open);
  while (!pid_text.empty() && pid_text.back() == ' ') pid_text.remove_suffix(1);
  if (!parse_num(pid_text, st.pid)) return std::nullopt;
  st.comm = std::string(text.substr(open + 1, close - open - 1));
  std::string_view rest = text.substr(close + 1);
  std::vector<std::string_view> f;  // f[0] is field 3 (state)
  while (true) {
    std::string_view tok = next_token(rest);
    if (tok.empty()) break;
    if (tok.back() == '\n') tok.remove_suffix(1);
    f.push_back(tok);
  }
  if (f.size() < 22) return std::nullopt;
  st.state = f[0].empty() ? '?' : f[0][0];
  bool ok = parse_num(f[1], st.ppid) && parse_num(f[7], st.minflt) && parse_num(f[9], st.majflt) &&
            parse_num(f[11], st.utime_ticks) && parse_num(f[12], st.stime_ticks) &&
            parse_num(f[19], st.start_time_ticks) && parse_num(f[21], st.rss_pages);
  if (!ok) return std::nullopt;
  (void)parse_num(f[17], st.num_threads);
  (void)parse_num(f[6], st.flags);
  if (f.size() > 49) (void)parse_num(f[49], st.exit_code);
  return st;
}

namespace {

bool state_is_dead(char state) {
  return state == 'Z' || state == 'X' || state == 'x';
}

// The state letter of a /proc/.../stat text (after the command, which may hold spaces and parentheses).
char state_of_stat(const std::string& text) {
  auto close = text.rfind(')');
  return close != std::string::npos && close + 2 < text.size() ? text[close + 2] : '?';
}

// A leader that called pthread_exit keeps its pid, but its own /proc files have no address space (no maps,
// no VmRSS) while the other threads run on in it: those are read through a live thread's task directory.
std::optional<std::string> live_thread_dir(pid_t pid) {
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(fmt::format("/proc/{}/task", pid), ec)) {
    auto text = read_text_file(e.path().string() + "/stat", 4096);
    if (text && !state_is_dead(state_of_stat(*text))) return e.path().string();
  }
  return std::nullopt;
}

// /proc/PID/<file> with the process's memory figures; for a dead leader, the same file of a live thread.
// marker: what the file holds only while there is an address space (null: any content). dir: the
// directory it was read from.
struct MemoryFile {
  std::string text, dir;
};
Result<MemoryFile> read_memory_file(pid_t pid, const char* file, size_t max_bytes, const char* marker) {
  std::string dir = fmt::format("/proc/{}", pid);
  auto text = read_text_file(dir + "/" + file, max_bytes);
  if (!text) return proc_error(pid, file, text.error());
  bool has_memory = marker ? text->find(marker) != std::string::npos : !text->empty();
  if (has_memory) return MemoryFile{std::move(*text), std::move(dir)};
  if (auto live = live_thread_dir(pid))
    if (auto alt = read_text_file(*live + "/" + file, max_bytes)) return MemoryFile{std::move(*alt), *live};
  return MemoryFile{std::move(*text), std::move(dir)};
}

}  // namespace

Result<std::vector<MapEntry>> read_maps(pid_t pid) {
  auto f = read_memory_file(pid, "maps", 64 << 20, nullptr);
  if (!f) return f.error();
  return parse_maps(f->text);
}

Result<std::vector<SmapsEntry>> read_smaps(pid_t pid) {
  auto f = read_memory_file(pid, "smaps", 256 << 20, nullptr);
  if (!f) return f.error();
  return parse_smaps(f->text);
}

namespace {

// Whether this kernel's PAGEMAP_SCAN gives what smaps gives: from 6.16. Before, a huge zero page came back
// present (smaps leaves it out; fixed in June 2025), and the pagemap of a process whose leader has exited
// could be opened without an address space, which the ioctl then dereferenced.
bool scan_like_smaps() {
  static const bool ok = [] {
    unsigned major = 0, minor = 0;
    return std::sscanf(kernel_release().c_str(), "%u.%u", &major, &minor) == 2 &&
           (major > 6 || (major == 6 && minor >= 16));
  }();
  return ok;
}

// maps (read just before) with the resident bytes of each, from the pagemap in dir. ESRCH: no address
// space there (the process is gone, or dir is an exited leader's).
Result<std::vector<SmapsEntry>> scan_resident(const std::string& dir, std::vector<MapEntry> maps) {
  // The address space's user half: [vsyscall] lies above it, where the scan refuses to look (it has
  // nothing resident of the process's own).
  uint64_t start = 0, end = 0;
  for (const auto& m : maps) {
    if (m.path == "[vsyscall]") continue;
    if (end == 0) start = m.start;
    end = std::max(end, m.end);
  }
  if (end == 0) return make_error(dir + " has no address space", ESRCH);  // a zombie's maps are empty
  UniqueFd fd(::open((dir + "/pagemap").c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return errno_error("cannot open " + dir + "/pagemap");
  // The address space is the one the open found, if any, and a pagemap whose address space is gone (or
  // was never there) reads as empty. Read before the scan, none is dereferenced; read after it, the
  // address space was still in use all along (its users never rise again from none): a scan that raced
  // the process's exit, and saw its pages go, is not taken for a reading.
  static const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  auto in_use = [&]() -> memlens::Status {
    uint64_t entry = 0;
    ssize_t n = ::pread(fd.get(), &entry, sizeof(entry), static_cast<off_t>(start / page * sizeof(entry)));
    if (n < 0) return errno_error("cannot read " + dir + "/pagemap");
    if (n != sizeof(entry)) return make_error(dir + " has no address space", ESRCH);
    return {};
  };
  if (auto s = in_use(); !s.ok()) return s.error();
  auto present = scan_present(fd.get(), start, end);
  if (!present) return present.error();
  if (auto s = in_use(); !s.ok()) return s.error();
  return resident_by_mapping(std::move(maps), *present);
}

bool gone(const Error& e) {
  return e.errno_value == ESRCH || e.errno_value == ENOENT;
}

}  // namespace

Result<ResidentRead> read_resident(pid_t pid, const std::vector<MapEntry>* maps) {
  if (scan_like_smaps()) {
    std::optional<Error> failed;
    if (maps && !maps->empty()) {
      auto r = scan_resident(fmt::format("/proc/{}", pid), *maps);
      // A leader that has exited has no address space: the caller's maps came through a live thread.
      if (!r && gone(r.error()))
        if (auto live = live_thread_dir(pid)) r = scan_resident(*live, *maps);
      if (r) return ResidentRead{std::move(*r), true, true};
      failed = r.error();
    }
    // Read afresh: for a leader that has exited, the maps and the pagemap of a live thread.
    if (!failed || gone(*failed)) {
      auto f = read_memory_file(pid, "maps", 64 << 20, nullptr);
      if (!f) return f.error();
      auto r = scan_resident(f->dir, parse_maps(f->text));
      if (r) return ResidentRead{std::move(*r), true};
      failed = r.error();
      if (gone(*failed)) return proc_error(pid, "pagemap", *failed);
    }
    // Whatever else stops the scan leaves smaps for this read: pagemap is its owner's alone, where smaps
    // is anyone's who may trace the process; a kernel may refuse the call.
  }
  auto smaps = read_smaps(pid);
  if (!smaps) return smaps.error();
  return ResidentRead{std::move(*smaps), false};
}

Result<uint64_t> resident_bytes(pid_t pid, uint64_t start, uint64_t end) {
  static const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  UniqueFd fd(open(fmt::format("/proc/{}/pagemap", pid).c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return make_error(fmt::format("cannot open /proc/{}/pagemap", pid), errno);
  uint64_t resident = 0;
  std::vector<uint64_t> entries(4096);
  for (uint64_t at = start / page; at < (end + page - 1) / page;) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(entries.size(), (end + page - 1) / page - at));
    ssize_t got = pread(fd.get(), entries.data(), n * 8, static_cast<off_t>(at * 8));
    if (got <= 0) return make_error(fmt::format("cannot read /proc/{}/pagemap", pid), got < 0 ? errno : EIO);
    for (size_t i = 0; i < static_cast<size_t>(got) / 8; ++i)
      if (entries[i] >> 63) resident += page;  // bit 63: present in RAM
    at += static_cast<uint64_t>(got) / 8;
  }
  return resident;
}

Result<Status> read_status(pid_t pid) {
  auto text = read_memory_file(pid, "status", 4 << 20, "VmRSS:");
  if (!text) return text.error();
  auto s = parse_status(text->text);
  if (!s) return make_error(fmt::format("cannot parse /proc/{}/status", pid), EINVAL);
  return *s;
}

Result<Stat> read_stat(pid_t pid) {
  auto text = read_text_file(fmt::format("/proc/{}/stat", pid));
  if (!text) return proc_error(pid, "stat", text.error());
  auto s = parse_stat(*text);
  if (!s) return make_error(fmt::format("cannot parse /proc/{}/stat", pid), EINVAL);
  return *s;
}

Result<Stat> read_thread_stat(pid_t pid, pid_t tid) {
  auto text = read_text_file(fmt::format("/proc/{}/task/{}/stat", pid, tid));
  if (!text) return proc_error(pid, "task stat", text.error());
  auto s = parse_stat(*text);
  if (!s) return make_error(fmt::format("cannot parse /proc/{}/task/{}/stat", pid, tid), EINVAL);
  return *s;
}

Result<std::vector<std::string>> read_cmdline(pid_t pid) {
  auto text = read_text_file(fmt::format("/proc/{}/cmdline", pid), 1 << 20);
  if (!text) return proc_error(pid, "cmdline", text.error());
  std::vector<std::string> args;
  std::string_view t = *text;
  while (!t.empty()) {
    size_t z = t.find('\0');
    args.emplace_back(t.substr(0, z));
    if (z == std::string_view::npos) break;
    t.remove_prefix(z + 1);
  }
  return args;
}

Result<std::string> read_link(const std::string& path) {
  char buf[4096];
  ssize_t n = ::readlink(path.c_str(), buf, sizeof(buf) - 1);
  if (n < 0) return errno_error("cannot read " + path);
  return std::string(buf, static_cast<size_t>(n));
}

Result<std::string> read_exe(pid_t pid) {
  return read_link(fmt::format("/proc/{}/exe", pid));
}

Result<uint64_t> read_start_time_ns(pid_t pid) {
  auto st = read_stat(pid);
  if (!st) return st.error();
  long hz = sysconf(_SC_CLK_TCK);
  if (hz <= 0) hz = 100;
  return st->start_time_ticks * (1000000000ull / static_cast<uint64_t>(hz));
}

std::vector<pid_t> list_children(pid_t pid) {
  std::vector<pid_t> out;
  std::error_code ec;
  for (auto& task : std::filesystem::directory_iterator(fmt::format("/proc/{}/task", pid), ec)) {
    auto text = read_text_file(task.path().string() + "/children", 1 << 20);
    if (!text) continue;
    std::string_view t = *text;
    while (true) {
      std::string_view tok = next_token(t);
      if (tok.empty()) break;
      pid_t c = 0;
      if (parse_num(tok, c)) out.push_back(c);
    }
  }
  return out;
}

std::vector<pid_t> list_threads(pid_t pid) {
  std::vector<pid_t> out;
  std::error_code ec;
  for (auto& task : std::filesystem::directory_iterator(fmt::format("/proc/{}/task", pid), ec)) {
    pid_t tid = 0;
    if (parse_num(task.path().filename().string(), tid)) out.push_back(tid);
  }
  return out;
}

std::string environ_value(std::string_view text, std::string_view name) {
  while (!text.empty()) {
    size_t z = text.find('\0');
    std::string_view entry = text.substr(0, z);
    if (entry.size() > name.size() && entry.starts_with(name) && entry[name.size()] == '=')
      return std::string(entry.substr(name.size() + 1));
    if (z == std::string_view::npos) break;
    text.remove_prefix(z + 1);
  }
  return "";
}

bool process_exists(pid_t pid) {
  return pid > 0 && (::kill(pid, 0) == 0 || errno == EPERM);
}

bool process_running(pid_t pid) {
  auto st = read_stat(pid);
  if (!st) return false;
  // A leader that called pthread_exit is a zombie while its other threads run on in the same address
  // space: the process lives as long as one of its threads does.
  return !state_is_dead(st->state) || live_thread_dir(pid).has_value();
}

bool process_dying(pid_t pid) {
  constexpr uint64_t kSigkillBit = 1ull << (SIGKILL - 1);
  constexpr uint64_t kPfExiting = 0x4;  // include/linux/sched.h
  auto status = read_status(pid);
  if (!status) return true;
  if ((status->sig_pending | status->shared_sig_pending) & kSigkillBit) return true;
  // Exiting: no thread left that is neither dead nor exiting. Each thread is looked at, the leader too: a
  // leader that called pthread_exit is dead and exiting while the process runs on in its other threads,
  // and a thread in do_exit keeps its R or D state while it gives back its memory.
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(fmt::format("/proc/{}/task", pid), ec)) {
    auto text = read_text_file(e.path().string() + "/stat", 4096);
    if (!text) continue;
    auto st = parse_stat(*text);
    if (st && !state_is_dead(st->state) && !(st->flags & kPfExiting)) return false;
  }
  return true;
}

std::string kernel_release() {
  struct utsname u {};
  if (uname(&u) != 0) return "unknown";
  return u.release;
}

}  // namespace memlens::proc
