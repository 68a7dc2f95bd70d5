// Parsers for the /proc files memlens reads: maps, smaps, status, stat. The text comes from the kernel
// but names in it (mapping paths, comm) are chosen by the traced process: parsers never trust lengths and
// skip what they cannot parse, counting it.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace memlens::proc {

struct MapEntry {
  uint64_t start = 0;
  uint64_t end = 0;  // exclusive
  bool read = false, write = false, exec = false, shared = false;
  uint64_t offset = 0;  // file offset of start
  uint32_t dev_major = 0, dev_minor = 0;
  uint64_t inode = 0;
  std::string
      path;  // "" for anonymous; "[heap]", "[stack]", "[vdso]", ... pseudo names as the kernel writes them

  uint64_t size() const { return end - start; }
  bool is_file() const { return inode != 0 && !path.empty() && path.front() == '/'; }
  bool deleted() const;  // path ends in " (deleted)"
};

// Per-mapping resident figures from /proc/PID/smaps (bytes).
struct SmapsEntry {
  MapEntry map;
  uint64_t rss = 0, pss = 0, anonymous = 0, swap = 0;
  uint64_t shared_clean = 0, shared_dirty = 0, private_clean = 0, private_dirty = 0;
  bool thp_eligible = false;
};

struct ParseStats {
  uint64_t lines = 0;
  uint64_t malformed = 0;  // lines skipped
};

std::vector<MapEntry> parse_maps(std::string_view text, ParseStats* stats = nullptr);
std::vector<SmapsEntry> parse_smaps(std::string_view text, ParseStats* stats = nullptr);

// /proc/PID/status fields memlens uses (bytes, converted from kB).
struct Status {
  std::string name;
  pid_t tgid = 0, ppid = 0;
  pid_t ns_pid = 0;  // the pid in the process's own (innermost) PID namespace; 0 when not given
  uid_t uid = 0;
  uint64_t vm_rss = 0, vm_hwm = 0, rss_anon = 0, rss_file = 0, rss_shmem = 0, vm_swap = 0, vm_size = 0;
  uint32_t threads = 0;
  // Signals pending, as bit masks (bit N-1 for signal N): for the leader thread alone (SigPnd) and for
  // the whole process (ShdPnd, where kill(2) and the OOM killer queue theirs).
  uint64_t sig_pending = 0, shared_sig_pending = 0;
};
std::optional<Status> parse_status(std::string_view text);

// /proc/PID/stat fields memlens uses.
struct Stat {
  pid_t pid = 0, ppid = 0;
  std::string comm;
  char state = '?';
  uint64_t minflt = 0, majflt = 0;
  uint64_t utime_ticks = 0, stime_ticks = 0;
  uint64_t start_time_ticks = 0;  // since boot, in clock ticks (USER_HZ)
  uint64_t rss_pages = 0;
  uint32_t num_threads = 0;
  uint64_t flags = 0;  // the leader task's PF_* flags (field 9)
  // A zombie's wait status (field 52, Linux 3.5+): what its parent's wait would return; 0 while it runs.
  int exit_code = 0;
};
std::optional<Stat> parse_stat(std::string_view text);

// Reading a live process. Errors say whether the process is gone (ESRCH/ENOENT).
Result<std::vector<MapEntry>> read_maps(pid_t pid);
Result<std::vector<SmapsEntry>> read_smaps(pid_t pid);
// Each mapping with its resident bytes, smaps's Rss: from Linux 6.16 through /proc/PID/maps and
// PAGEMAP_SCAN (proc/page_scan.h; only map and rss are set then), else, and for a read the scan is
// refused, smaps itself. by_scan: which. ESRCH: the process has no address space (gone, or a zombie).
struct ResidentRead {
  std::vector<SmapsEntry> entries;
  bool by_scan = false;
  bool of_given_maps = false;  // entries are the caller's maps, one for one, in their order
};
// maps: the process's maps if just read (spares a read), else null.
Result<ResidentRead> read_resident(pid_t pid, const std::vector<MapEntry>* maps = nullptr);
Result<Status> read_status(pid_t pid);
Result<Stat> read_stat(pid_t pid);
Result<std::vector<std::string>> read_cmdline(pid_t pid);
Result<std::string> read_link(const std::string& path);  // readlink (up to 4,095 bytes)
Result<std::string> read_exe(pid_t pid);                 // readlink /proc/PID/exe
// Resident bytes of the pages of [start, end) in pid's address space (their present bits in
// /proc/PID/pagemap): the Rss smaps would give for those pages, without smaps' walk of every mapping.
Result<uint64_t> resident_bytes(pid_t pid, uint64_t start, uint64_t end);
// Start time in ns since boot (CLOCK_BOOTTIME, as the kernel's task->start_boottime); with pid the
// process identity: a pid reused by a later process has another start time.
Result<uint64_t> read_start_time_ns(pid_t pid);
std::vector<pid_t> list_children(pid_t pid);  // direct children (from /proc/PID/task/*/children)
std::vector<pid_t> list_threads(pid_t pid);   // its threads (/proc/PID/task), the main one included
// /proc/PID/task/TID/stat: one thread's own figures (minflt and majflt of that thread only).
Result<Stat> read_thread_stat(pid_t pid, pid_t tid);
// The value of one variable in the NUL-separated text of /proc/PID/environ; "" when absent.
std::string environ_value(std::string_view environ_text, std::string_view name);
bool process_exists(pid_t pid);
// Exists and is not exiting: a zombie (or a process in its exit) answers kill(0) but has no address space,
// no /proc/PID/root and no maps any more.
bool process_running(pid_t pid);
// Whether the process is on its way out or gone: SIGKILL pending for it (kill(2) and the OOM killer queue
// it for the whole process, where it stays until the process is reaped), no thread left that is neither
// dead nor exiting (PF_EXITING), or nothing left to read.
bool process_dying(pid_t pid);
std::string kernel_release();

}  // namespace memlens::proc
