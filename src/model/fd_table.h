// A process's open file descriptors: what each is, when and by whom it was opened. Fed by the traced
// fd calls (open, socket, dup2, close, ...), seeded from /proc when tracing starts, and reconciled with
// /proc at every sample: closes made past the C library's close() (libuv closes every fd with
// syscall(SYS_close), which is not traced) and fds created by calls memlens does not see are found there,
// or earlier when a traced call returns a number the table still holds.
//
// Counters: open() == seeded_total + opened_total - closed_total at every moment.
//  - seeded_total: fds found in /proc when tracing started (open before memlens came);
//  - opened_total: fds created while traced: by traced calls (a pipe creates two), plus opened_unseen,
//    the fds /proc listed later that no traced call created;
//  - closed_total: fds that went away while traced: close, close_range, the target of dup2/dup3, a
//    close-on-exec fd at exec, plus closed_unseen, the fds that went without a traced close (their number
//    returned by a traced call while still held, or /proc no longer listing them).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "proc/fd_scan.h"
#include "proc/sock_diag.h"

namespace memlens::model {

using proc::FdType;

struct SocketAddress {
  std::string family;    // "inet", "inet6", "unix", "netlink", ... (from socket() or /proc/net)
  std::string protocol;  // "tcp", "udp", "stream", "dgram", ...
  std::string local, remote, state;
};

struct FdEntry {
  int fd = -1;
  FdType type = FdType::kUnknown;
  std::string path;  // files, directories, devices: the path; memfd: "/memfd:name"; others: the /proc link
  std::optional<SocketAddress> socket;
  uint64_t inode = 0;           // once resolved from /proc
  uint32_t flags = 0;           // open flags as known (O_CLOEXEC among them)
  bool cloexec = false;         // dies at exec
  double opened_at_s = 0;       // trace time; for fds found in /proc, when memlens found them
  bool seeded = false;          // found in /proc: who opened it is unknown
  bool before_tracing = false;  // seeded when tracing started: open before memlens came
  bool resolved = false;        // type and path confirmed from /proc
  int32_t stack_id = -1;        // opening user stack (fd stack table), -1 unknown
  uint64_t caller_ip = 0;  // return address of the opening call (completes stacks without frame pointers)
  std::string opened_by;   // the call: "openat", "socket", "accept4", "dup2", ...; "/proc" when seeded
};

class FdTable {
 public:
  // An fd created by a traced call. A number the table still holds had its close missed (closed_unseen),
  // unless the held entry is this very fd, found in /proc after the call returned.
  void open(FdEntry e);
  // Creates newfd as a copy of oldfd's description (dup, dup2, dup3, fcntl F_DUPFD). closes_target: the
  // call closes an open newfd first (dup2, dup3), a traced close; for dup and F_DUPFD an open newfd is a
  // missed close. The copy is opened now, by `call`, with its own stack.
  void duplicate(int oldfd, int newfd, bool cloexec, bool closes_target, double t_s, int32_t stack_id,
                 const std::string& call, uint64_t caller_ip = 0);
  // A traced close at trace time t_s. Returns whether the fd was known. A close of an fd the last /proc
  // reconciliation removed after t_s is that fd's close, seen late: it counts as seen, not as unseen.
  bool close(int fd, double t_s);
  // close_range(first, last): closes every known fd in [first, last]; returns how many.
  size_t close_range(uint32_t first, uint32_t last, double t_s);
  // close_range with CLOSE_RANGE_CLOEXEC, fcntl F_SETFD.
  void set_cloexec_range(uint32_t first, uint32_t last, bool cloexec);
  // exec: every close-on-exec fd is gone. Returns how many.
  size_t exec();
  // Makes the table what /proc lists now (a full listing: link targets, fdinfo): unknown fds are added
  // (seeded when at_start, else opened_unseen), fds /proc does not list are removed, fds whose /proc
  // identity differs from the entry (another file under the number) are replaced; known fds gain their
  // /proc type, path and inode. t_s is the time of the listing, taken after it was read.
  void reconcile(const std::vector<proc::ProcFd>& listing, double t_s, bool at_start);
  // The cheap reconciliation of every sample, from the fd numbers alone (sorted, from readdir of
  // /proc/PID/fd; t_s taken after the listing was read): fds the table holds that are not listed are
  // closed (closed_unseen). Returns the listed numbers the table does not hold, for the caller to read
  // (readlink) and pass to add_unseen. A number both hold is taken to be the same fd: a close and
  // reopen between two samples shows as such when the reopening call is traced.
  std::vector<int> reconcile_numbers(const std::vector<int>& listed, double t_s);
  // An fd /proc lists that no traced call created (opened_unseen), found at t_s.
  void add_unseen(const proc::ProcFd& f, double t_s);
  // Fills in type/path/inode of one fd from /proc (lazy resolution of fds opened by path).
  void resolve(const proc::ProcFd& f);
  // Names the open sockets whose inode is known from the namespace's socket tables (by inode).
  void set_socket_addresses(const std::unordered_map<uint64_t, proc::SocketEntry>& sockets);

  const std::map<int, FdEntry>& entries() const { return fds_; }
  const FdEntry* find(int fd) const;
  uint64_t open_count() const { return fds_.size(); }
  uint64_t sockets_open() const;
  uint64_t peak() const { return peak_; }
  uint64_t opened_total() const { return opened_seen_ + opened_unseen_; }
  uint64_t closed_total() const { return closed_seen_ + closed_unseen_; }
  uint64_t seeded_total() const { return seeded_total_; }
  uint64_t opened_unseen() const { return opened_unseen_; }
  uint64_t closed_unseen() const { return closed_unseen_; }
  uint64_t unknown_closes() const { return unknown_closes_; }  // close of an fd the table did not hold
  // Open fds by type name (unresolved fds under their best guess).
  std::map<std::string, uint64_t> by_type() const;
  // Fds whose type or path is not confirmed from /proc yet, at most max.
  std::vector<int> unresolved(size_t max) const;

  // Set when a call that creates fds is not traced (accept and accept4 by default, see --fd-stacks): the
  // fds it creates and closes between two samples are not counted, so opened_total and closed_total are
  // lower bounds; the table itself stays exact at each sample (reconciled with /proc).
  bool totals_lower_bound = false;

  // Per-sample open counts (trace time, count), for the analysis of steady growth.
  void record_sample(double t_s);
  std::vector<std::pair<double, uint64_t>> fds_series, sockets_series;
  // User stacks of the stack ids entries refer to (innermost first), copied from the kernel's table at the
  // end of the trace while it is still loaded.
  std::map<int32_t, std::vector<uint64_t>> stacks;
  // The frame names of opening stacks (by stack id and caller address, as opening_addresses makes them),
  // resolved at the end of the trace while the process's binaries are there: a report names them from
  // here, live or replayed from a capture.
  std::map<std::pair<int32_t, uint64_t>, std::vector<std::string>> stack_labels;

  // The counters, for a capture to record the table as it stands and a replay to restore it.
  struct Counters {
    uint64_t peak = 0, opened_seen = 0, opened_unseen = 0, closed_seen = 0, closed_unseen = 0,
             seeded_total = 0, unknown_closes = 0;
  };
  Counters counters() const;
  // The table as a capture recorded it: its entries and counters (nothing else is replaced).
  void restore(std::map<int, FdEntry> entries, const Counters& c);

 private:
  void insert(FdEntry e);
  // Removes an entry; unseen: no traced call closed it.
  void erase(std::map<int, FdEntry>::iterator it, bool unseen);
  // Removes an entry found in /proc that turns out to be the fd a late event describes: it was never
  // another fd, so neither a close nor its own origin counts.
  void forget_found(std::map<int, FdEntry>::iterator it);
  // A traced close of an fd no longer held: the fd the last reconciliation removed, if it was removed
  // after the close happened.
  bool claim_recent_close(int fd, double t_s);
  std::map<int, FdEntry> fds_;
  // Fds the last cheap reconciliation closed, with its time.
  std::map<int, double> recent_unseen_closes_;
  uint64_t peak_ = 0, opened_seen_ = 0, opened_unseen_ = 0, closed_seen_ = 0, closed_unseen_ = 0,
           seeded_total_ = 0, unknown_closes_ = 0;
};

// The addresses of an entry's opening stack, innermost first, each a return address less one (so that it
// names the call) but the first, where the probe fired; empty when the stack is unknown (a seeded fd, or
// its capture failed).
std::vector<uint64_t> opening_addresses(const FdTable& table, const FdEntry& e);

// How many open fds a report lists as open longest (the "longest_open" list of report.json).
inline constexpr size_t kLongestOpenFds = 20;
// The open fds that were open longest (seeded ones first, by fd number), at most n.
std::vector<const FdEntry*> longest_open(const FdTable& table, size_t n);

// The type an fd has, or its best guess when unresolved (a path opened with O_DIRECTORY is a directory,
// other paths files).
FdType effective_type(const FdEntry& e);

}  // namespace memlens::model
