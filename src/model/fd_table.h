// A process's open file descriptors: what each is, when and by whom it was opened. Fed by the traced
// fd calls (open, socket, dup2, close, ...), seeded and reconciled from /proc (fds that existed before
// memlens, or that a call memlens does not see created).
//
// Counters: open() == seeded_total + opened_total - closed_total at every moment.
//  - opened_total: fds created by traced calls (a pipe creates two);
//  - closed_total: fds that went away while traced: close, close_range, the target of dup2/dup3, a
//    close-on-exec fd at exec, and fds that /proc no longer lists (missed_closes counts those and the
//    reuse of a number whose close was not seen);
//  - seeded_total: fds found in /proc without their opening being seen.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "proc/fd_scan.h"

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
  uint64_t inode = 0;      // once resolved from /proc
  uint32_t flags = 0;      // open flags as known (O_CLOEXEC among them)
  bool cloexec = false;    // dies at exec
  double opened_at_s = 0;  // trace time; for seeded fds, when memlens found them
  bool seeded = false;     // found in /proc: who opened it is unknown
  bool resolved = false;   // type and path confirmed from /proc
  int32_t stack_id = -1;   // opening user stack (fd stack table), -1 unknown
  uint64_t caller_ip = 0;  // return address of the opening call (completes stacks without frame pointers)
  std::string opened_by;   // the call: "openat", "socket", "accept4", "dup2", ...; "/proc" when seeded
};

class FdTable {
 public:
  // An fd created by a traced call. A number that is already open had its close missed: it is replaced.
  void open(FdEntry e);
  // Creates newfd as a copy of oldfd's description (dup, dup2, dup3, fcntl F_DUPFD). An open newfd is
  // closed first (dup2's implicit close). The copy is opened now, by `call`, with its own stack.
  void duplicate(int oldfd, int newfd, bool cloexec, double t_s, int32_t stack_id, const std::string& call,
                 uint64_t caller_ip = 0);
  // Returns whether the fd was known.
  bool close(int fd);
  // close_range(first, last): closes every known fd in [first, last]; returns how many.
  size_t close_range(uint32_t first, uint32_t last);
  // close_range with CLOSE_RANGE_CLOEXEC, fcntl F_SETFD.
  void set_cloexec_range(uint32_t first, uint32_t last, bool cloexec);
  // exec: every close-on-exec fd is gone. Returns how many.
  size_t exec();
  // Makes the table what /proc lists now: unknown fds are added (seeded), fds /proc does not list are
  // removed, fds whose /proc identity differs from the entry (another file under the number) are replaced;
  // known fds gain their /proc type, path and inode. t_s is the time of the listing.
  void reconcile(const std::vector<proc::ProcFd>& listing, double t_s);
  // Fills in type/path/inode of one fd from /proc (lazy resolution of fds opened by path).
  void resolve(const proc::ProcFd& f);
  // Names the open sockets whose inode is known from the namespace's socket tables (by inode).
  void set_socket_addresses(const std::unordered_map<uint64_t, proc::SocketEntry>& sockets);

  const std::map<int, FdEntry>& entries() const { return fds_; }
  const FdEntry* find(int fd) const;
  uint64_t open_count() const { return fds_.size(); }
  uint64_t sockets_open() const;
  uint64_t peak() const { return peak_; }
  uint64_t opened_total() const { return opened_total_; }
  uint64_t closed_total() const { return closed_total_; }
  uint64_t seeded_total() const { return seeded_total_; }
  uint64_t missed_closes() const { return missed_closes_; }
  uint64_t unknown_closes() const { return unknown_closes_; }  // close of an fd the table did not hold
  // Open fds by type name (unresolved fds under their best guess).
  std::map<std::string, uint64_t> by_type() const;
  // Fds whose type or path is not confirmed from /proc yet, at most max.
  std::vector<int> unresolved(size_t max) const;

  // Per-sample open counts (trace time, count), for the analysis of steady growth.
  void record_sample(double t_s);
  std::vector<std::pair<double, uint64_t>> fds_series, sockets_series;
  // User stacks of the stack ids entries refer to (innermost first), copied from the kernel's table at the
  // end of the trace while it is still loaded.
  std::map<int32_t, std::vector<uint64_t>> stacks;

 private:
  void insert(FdEntry e);
  void erase(std::map<int, FdEntry>::iterator it);
  std::map<int, FdEntry> fds_;
  uint64_t peak_ = 0, opened_total_ = 0, closed_total_ = 0, seeded_total_ = 0, missed_closes_ = 0,
           unknown_closes_ = 0;
};

// The type an fd has, or its best guess when unresolved (a path opened with O_DIRECTORY is a directory,
// other paths files).
FdType effective_type(const FdEntry& e);

}  // namespace memlens::model
