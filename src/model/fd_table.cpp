#include "model/fd_table.h"

#include <fcntl.h>

#include <algorithm>
#include <tuple>

namespace memlens::model {

FdType effective_type(const FdEntry& e) {
  if (e.type != FdType::kUnknown) return e.type;
  if (e.flags & O_DIRECTORY) return FdType::kDirectory;
  if (e.path.starts_with("/dev/")) return FdType::kCharDevice;
  return FdType::kFile;
}

void FdTable::insert(FdEntry e) {
  int fd = e.fd;
  fds_[fd] = std::move(e);
  peak_ = std::max<uint64_t>(peak_, fds_.size());
}

void FdTable::erase(std::map<int, FdEntry>::iterator it, bool unseen) {
  fds_.erase(it);
  if (unseen)
    ++closed_unseen_;
  else
    ++closed_seen_;
}

void FdTable::forget_found(std::map<int, FdEntry>::iterator it) {
  if (it->second.before_tracing)
    --seeded_total_;
  else
    --opened_unseen_;
  fds_.erase(it);
}

void FdTable::open(FdEntry e) {
  if (e.fd < 0) return;
  if (auto it = fds_.find(e.fd); it != fds_.end()) {
    if (it->second.seeded && it->second.opened_at_s >= e.opened_at_s)
      forget_found(it);  // /proc was read after this call returned: the found entry is this very fd
    else
      erase(it, true);
  }
  recent_unseen_closes_.erase(e.fd);
  ++opened_seen_;
  insert(std::move(e));
}

void FdTable::duplicate(int oldfd, int newfd, bool cloexec, bool closes_target, double t_s, int32_t stack_id,
                        const std::string& call, uint64_t caller_ip) {
  if (newfd < 0 || oldfd == newfd) return;  // dup2(fd, fd) does nothing
  FdEntry copy;
  if (auto it = fds_.find(oldfd); it != fds_.end()) {
    copy = it->second;
  } else {
    copy = FdEntry{};  // resolved later from /proc
  }
  copy.fd = newfd;
  copy.cloexec = cloexec;
  if (cloexec)
    copy.flags |= O_CLOEXEC;
  else
    copy.flags &= ~static_cast<uint32_t>(O_CLOEXEC);
  copy.opened_at_s = t_s;
  copy.seeded = false;
  copy.before_tracing = false;
  copy.stack_id = stack_id;
  copy.opened_by = call;
  copy.caller_ip = caller_ip;
  if (auto it = fds_.find(newfd);
      it != fds_.end() && closes_target && !(it->second.seeded && it->second.opened_at_s >= t_s))
    erase(it, false);  // dup2/dup3 close the target first
  open(std::move(copy));
}

bool FdTable::claim_recent_close(int fd, double t_s) {
  auto it = recent_unseen_closes_.find(fd);
  if (it == recent_unseen_closes_.end() || it->second < t_s) return false;
  recent_unseen_closes_.erase(it);
  --closed_unseen_;
  ++closed_seen_;
  return true;
}

bool FdTable::close(int fd, double t_s) {
  auto it = fds_.find(fd);
  if (it == fds_.end()) {
    if (claim_recent_close(fd, t_s)) return true;
    ++unknown_closes_;
    return false;
  }
  erase(it, false);
  return true;
}

size_t FdTable::close_range(uint32_t first, uint32_t last, double t_s) {
  if (first > last) return 0;
  size_t n = 0;
  auto it = fds_.lower_bound(static_cast<int>(std::min<uint32_t>(first, INT32_MAX)));
  while (it != fds_.end() && static_cast<uint32_t>(it->first) <= last) {
    auto next = std::next(it);
    erase(it, false);
    ++n;
    it = next;
  }
  std::vector<int> recent;
  for (auto r = recent_unseen_closes_.lower_bound(static_cast<int>(std::min<uint32_t>(first, INT32_MAX)));
       r != recent_unseen_closes_.end() && static_cast<uint32_t>(r->first) <= last; ++r)
    recent.push_back(r->first);
  for (int fd : recent)
    if (claim_recent_close(fd, t_s)) ++n;
  return n;
}

void FdTable::set_cloexec_range(uint32_t first, uint32_t last, bool cloexec) {
  if (first > last) return;
  for (auto it = fds_.lower_bound(static_cast<int>(std::min<uint32_t>(first, INT32_MAX)));
       it != fds_.end() && static_cast<uint32_t>(it->first) <= last; ++it) {
    it->second.cloexec = cloexec;
    if (cloexec)
      it->second.flags |= O_CLOEXEC;
    else
      it->second.flags &= ~static_cast<uint32_t>(O_CLOEXEC);
  }
}

size_t FdTable::exec() {
  size_t n = 0;
  for (auto it = fds_.begin(); it != fds_.end();) {
    auto next = std::next(it);
    if (it->second.cloexec) {
      erase(it, false);
      ++n;
    }
    it = next;
  }
  return n;
}

namespace {

// Whether /proc's view of an fd contradicts the entry: the number now refers to something else.
bool contradicts(const FdEntry& e, const proc::ProcFd& f) {
  if (e.inode != 0 && f.inode != 0) return e.inode != f.inode;
  if (e.type == FdType::kUnknown) {
    // Opened by path: /proc must show a path too.
    return !f.target.starts_with("/") && f.type != FdType::kMemfd;
  }
  return e.type != f.type;
}

void apply_proc(FdEntry& e, const proc::ProcFd& f) {
  e.type = f.type;
  e.inode = f.inode;
  // Keep the path as opened for files (it says what the program asked for) unless /proc has a better
  // one: /proc's is absolute and follows renames.
  if (!f.target.empty()) e.path = f.target;
  if (f.flags) {
    e.flags = *f.flags;
    e.cloexec = f.cloexec();
  }
  e.resolved = true;
  if (e.type == FdType::kSocket && !e.socket) e.socket = SocketAddress{};
}

}  // namespace

void FdTable::resolve(const proc::ProcFd& f) {
  auto it = fds_.find(f.fd);
  if (it == fds_.end()) return;
  if (contradicts(it->second, f)) return;  // the number was reused since; its events will tell
  apply_proc(it->second, f);
}

void FdTable::reconcile(const std::vector<proc::ProcFd>& listing, double t_s, bool at_start) {
  std::map<int, const proc::ProcFd*> live;
  for (const auto& f : listing) live[f.fd] = &f;
  recent_unseen_closes_.clear();
  for (auto it = fds_.begin(); it != fds_.end();) {
    auto next = std::next(it);
    if (!live.count(it->first)) {
      recent_unseen_closes_[it->first] = t_s;
      erase(it, true);
    }
    it = next;
  }
  for (const auto& [fd, f] : live) {
    auto it = fds_.find(fd);
    if (it != fds_.end() && contradicts(it->second, *f)) {
      erase(it, true);
      it = fds_.end();
    }
    if (it != fds_.end()) {
      apply_proc(it->second, *f);
      continue;
    }
    if (at_start) {
      FdEntry e;
      e.fd = fd;
      e.opened_at_s = t_s;
      e.seeded = true;
      e.before_tracing = true;
      e.opened_by = "/proc";
      apply_proc(e, *f);
      ++seeded_total_;
      insert(std::move(e));
    } else {
      add_unseen(*f, t_s);
    }
  }
}

std::vector<int> FdTable::reconcile_numbers(const std::vector<int>& listed, double t_s) {
  recent_unseen_closes_.clear();
  std::vector<int> missing;
  auto it = fds_.begin();
  for (int fd : listed) {
    while (it != fds_.end() && it->first < fd) {
      recent_unseen_closes_[it->first] = t_s;
      auto next = std::next(it);
      erase(it, true);
      it = next;
    }
    if (it != fds_.end() && it->first == fd)
      ++it;
    else
      missing.push_back(fd);
  }
  while (it != fds_.end()) {
    recent_unseen_closes_[it->first] = t_s;
    auto next = std::next(it);
    erase(it, true);
    it = next;
  }
  return missing;
}

void FdTable::add_unseen(const proc::ProcFd& f, double t_s) {
  if (f.fd < 0 || fds_.count(f.fd)) return;
  FdEntry e;
  e.fd = f.fd;
  e.opened_at_s = t_s;
  e.seeded = true;
  e.opened_by = "/proc";
  apply_proc(e, f);
  ++opened_unseen_;
  insert(std::move(e));
}

void FdTable::set_socket_addresses(const std::unordered_map<uint64_t, proc::SocketEntry>& sockets) {
  for (auto& [fd, e] : fds_) {
    if (e.type != FdType::kSocket || e.inode == 0) continue;
    auto it = sockets.find(e.inode);
    if (it == sockets.end()) continue;
    const auto& s = it->second;
    e.socket = SocketAddress{s.family, s.protocol, s.local, s.remote, s.state};
  }
}

const FdEntry* FdTable::find(int fd) const {
  auto it = fds_.find(fd);
  return it == fds_.end() ? nullptr : &it->second;
}

uint64_t FdTable::sockets_open() const {
  uint64_t n = 0;
  for (const auto& [fd, e] : fds_)
    if (effective_type(e) == FdType::kSocket) ++n;
  return n;
}

std::map<std::string, uint64_t> FdTable::by_type() const {
  std::map<std::string, uint64_t> out;
  for (const auto& [fd, e] : fds_) ++out[std::string(proc::fd_type_name(effective_type(e)))];
  return out;
}

std::vector<int> FdTable::unresolved(size_t max) const {
  std::vector<int> out;
  for (const auto& [fd, e] : fds_) {
    if (out.size() >= max) break;
    if (!e.resolved) out.push_back(fd);
  }
  return out;
}

void FdTable::record_sample(double t_s) {
  fds_series.emplace_back(t_s, fds_.size());
  sockets_series.emplace_back(t_s, sockets_open());
}

FdTable::Counters FdTable::counters() const {
  return {peak_, opened_seen_, opened_unseen_, closed_seen_, closed_unseen_, seeded_total_, unknown_closes_};
}

void FdTable::restore(std::map<int, FdEntry> entries, const Counters& c) {
  fds_ = std::move(entries);
  recent_unseen_closes_.clear();
  peak_ = c.peak;
  opened_seen_ = c.opened_seen;
  opened_unseen_ = c.opened_unseen;
  closed_seen_ = c.closed_seen;
  closed_unseen_ = c.closed_unseen;
  seeded_total_ = c.seeded_total;
  unknown_closes_ = c.unknown_closes;
}

std::vector<uint64_t> opening_addresses(const FdTable& table, const FdEntry& e) {
  if (e.stack_id < 0) return {};
  auto it = table.stacks.find(e.stack_id);
  if (it == table.stacks.end() || it->second.empty()) return {};
  std::vector<uint64_t> addrs = it->second;
  // A frame-pointer walk from a function's first instruction misses its caller unless the kernel adds
  // it: the return address read at entry fills the gap.
  if (e.caller_ip != 0 && (addrs.size() < 2 || addrs[1] != e.caller_ip))
    addrs.insert(addrs.begin() + 1, e.caller_ip);
  for (size_t i = 1; i < addrs.size(); ++i) addrs[i] -= 1;
  return addrs;
}

std::vector<const FdEntry*> longest_open(const FdTable& table, size_t n) {
  std::vector<const FdEntry*> all;
  for (const auto& [fd, e] : table.entries()) all.push_back(&e);
  auto key = [](const FdEntry* e) { return std::make_tuple(!e->before_tracing, e->opened_at_s, e->fd); };
  size_t k = std::min(n, all.size());
  std::partial_sort(all.begin(), all.begin() + static_cast<long>(k), all.end(),
                    [&](const auto* a, const auto* b) { return key(a) < key(b); });
  all.resize(k);
  return all;
}

}  // namespace memlens::model
