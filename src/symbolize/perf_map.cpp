#include "symbolize/perf_map.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <limits>
#include <queue>

#include "common/safe_file.h"

namespace memlens::symbolize {

namespace {

// Hex without 0x (V8's format); a 0x prefix is tolerated. At most 16 digits: more cannot fit 64 bits.
bool parse_hex(std::string_view& s, uint64_t& out) {
  if (s.size() >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) s.remove_prefix(2);
  size_t i = 0;
  uint64_t v = 0;
  for (; i < s.size(); ++i) {
    char c = s[i];
    unsigned d;
    if (c >= '0' && c <= '9')
      d = static_cast<unsigned>(c - '0');
    else if (c >= 'a' && c <= 'f')
      d = static_cast<unsigned>(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F')
      d = static_cast<unsigned>(c - 'A' + 10);
    else
      break;
    if (i >= 16) return false;
    v = (v << 4) | d;
  }
  if (i == 0) return false;
  s.remove_prefix(i);
  out = v;
  return true;
}

}  // namespace

bool PerfMap::parse_line(std::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  uint64_t start = 0, size = 0;
  if (!parse_hex(line, start)) return false;
  if (line.empty() || line.front() != ' ') return false;
  while (!line.empty() && line.front() == ' ') line.remove_prefix(1);
  if (!parse_hex(line, size)) return false;
  if (line.empty() || line.front() != ' ') return false;
  line.remove_prefix(1);  // one separator: the name itself may begin or contain spaces
  if (line.empty() || size == 0) return false;
  if (start > std::numeric_limits<uint64_t>::max() - size) {
    ++stats_.overflowing;
    return false;
  }
  if (line.size() > kMaxNameBytes) {
    line = line.substr(0, kMaxNameBytes);
    ++stats_.names_cut;
  }
  if (names_.size() + line.size() > std::numeric_limits<uint32_t>::max() ||
      entries_.size() >= std::numeric_limits<uint32_t>::max())
    return false;
  entries_.push_back(
      Entry{start, size, static_cast<uint32_t>(names_.size()), static_cast<uint32_t>(line.size())});
  names_.append(line);
  return true;
}

void PerfMap::parse_one(std::string_view line) {
  ++stats_.lines;
  if (line.empty()) return;
  if (line.size() > kMaxLineBytes) {
    ++stats_.too_long;
  } else if (parse_line(line)) {
    ++stats_.entries;
    index_dirty_ = true;
  } else {
    ++stats_.malformed;
  }
}

size_t PerfMap::parse(std::string_view text, bool final) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) {
      if (!final) break;
      nl = text.size();
    }
    std::string_view line = text.substr(pos, nl - pos);
    pos = nl < text.size() ? nl + 1 : nl;
    parse_one(line);
  }
  return pos;
}

void PerfMap::feed(std::string_view chunk) {
  if (skipping_) {
    size_t nl = chunk.find('\n');
    if (nl == std::string_view::npos) return;
    chunk.remove_prefix(nl + 1);
    skipping_ = false;
  }
  if (!partial_.empty()) {
    size_t nl = chunk.find('\n');
    size_t rest_of_line = nl == std::string_view::npos ? chunk.size() : nl;
    if (partial_.size() + rest_of_line > kMaxLineBytes) {
      partial_.clear();
      partial_.shrink_to_fit();
      ++stats_.lines;
      ++stats_.too_long;
      if (nl == std::string_view::npos) {
        skipping_ = true;
        return;
      }
    } else {
      partial_.append(chunk.substr(0, rest_of_line));
      if (nl == std::string_view::npos) return;
      std::string line = std::move(partial_);
      partial_.clear();
      parse_one(line);
    }
    chunk.remove_prefix(nl + 1);
  }
  std::string_view rest = chunk.substr(parse(chunk));
  if (rest.size() > kMaxLineBytes) {
    ++stats_.lines;
    ++stats_.too_long;
    skipping_ = true;
  } else {
    partial_.assign(rest);
  }
}

void PerfMap::restart_stream() {
  partial_.clear();
  partial_.shrink_to_fit();
  skipping_ = false;
}

void PerfMap::rebuild_index() const {
  index_.clear();
  index_dirty_ = false;
  if (entries_.empty()) return;
  std::vector<uint64_t> points;
  points.reserve(entries_.size() * 2);
  for (const Entry& e : entries_) {
    points.push_back(e.start);
    points.push_back(e.start + e.size);
  }
  std::sort(points.begin(), points.end());
  points.erase(std::unique(points.begin(), points.end()), points.end());
  std::vector<uint32_t> by_start(entries_.size());
  for (uint32_t i = 0; i < by_start.size(); ++i) by_start[i] = i;
  std::stable_sort(by_start.begin(), by_start.end(),
                   [this](uint32_t a, uint32_t b) { return entries_[a].start < entries_[b].start; });
  // Sweep over the boundaries keeping the active entries in a max-heap by file position: the top is the
  // latest line covering the current span. Expired entries leave the heap when they reach the top.
  std::priority_queue<uint32_t> active;
  size_t next = 0;
  for (size_t p = 0; p + 1 < points.size(); ++p) {
    uint64_t x = points[p];
    while (next < by_start.size() && entries_[by_start[next]].start <= x) active.push(by_start[next++]);
    while (!active.empty() && entries_[active.top()].start + entries_[active.top()].size <= x) active.pop();
    if (active.empty()) continue;
    uint32_t owner = active.top();
    if (!index_.empty() && index_.back().entry == owner && index_.back().end == x)
      index_.back().end = points[p + 1];
    else
      index_.push_back(Segment{x, points[p + 1], owner});
  }
  index_.shrink_to_fit();
}

std::optional<PerfMapSymbol> PerfMap::lookup(uint64_t address) const {
  if (index_dirty_) rebuild_index();
  auto it = std::upper_bound(index_.begin(), index_.end(), address,
                             [](uint64_t a, const Segment& s) { return a < s.start; });
  if (it == index_.begin()) return std::nullopt;
  --it;
  if (address >= it->end) return std::nullopt;
  const Entry& e = entries_[it->entry];
  return PerfMapSymbol{e.start, e.size, std::string_view(names_).substr(e.name_offset, e.name_len)};
}

size_t PerfMap::memory_bytes() const {
  return entries_.capacity() * sizeof(Entry) + names_.capacity() + index_.capacity() * sizeof(Segment) +
         partial_.capacity();
}

void PerfMap::clear() {
  entries_.clear();
  names_.clear();
  index_.clear();
  index_dirty_ = false;
  stats_ = {};
  restart_stream();
}

std::optional<ProcessIdentity> parse_process_identity(std::string_view text, pid_t pid) {
  ProcessIdentity id;
  id.ns_pid = pid;
  bool have_uid = false;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) nl = text.size();
    std::string_view line = text.substr(pos, nl - pos);
    pos = nl + 1;
    auto numbers = [](std::string_view rest) {
      std::vector<uint64_t> out;
      uint64_t v = 0;
      bool in = false;
      for (char c : rest) {
        if (c >= '0' && c <= '9') {
          if (v > (std::numeric_limits<uint64_t>::max() - 9) / 10) return std::vector<uint64_t>{};
          v = v * 10 + static_cast<uint64_t>(c - '0');
          in = true;
        } else if (c == ' ' || c == '\t') {
          if (in) out.push_back(v);
          v = 0;
          in = false;
        } else {
          return std::vector<uint64_t>{};
        }
      }
      if (in) out.push_back(v);
      return out;
    };
    if (line.substr(0, 6) == "NSpid:") {
      auto v = numbers(line.substr(6));
      if (!v.empty() && v.back() > 0 && v.back() <= static_cast<uint64_t>(std::numeric_limits<pid_t>::max()))
        id.ns_pid = static_cast<pid_t>(v.back());
    } else if (line.substr(0, 4) == "Uid:") {
      auto v = numbers(line.substr(4));
      for (uint64_t u : v)
        if (u <= std::numeric_limits<uid_t>::max()) id.uids.push_back(static_cast<uid_t>(u));
      have_uid = !id.uids.empty();
    }
  }
  if (!have_uid) return std::nullopt;
  return id;
}

Result<PerfMapReader> PerfMapReader::for_process(pid_t pid, PerfMapOptions options) {
  auto status = read_text_file(fmt::format("/proc/{}/status", pid));
  if (!status) return status.error();
  auto id = parse_process_identity(*status, pid);
  if (!id) return make_error(fmt::format("cannot parse /proc/{}/status", pid), EINVAL);
  return PerfMapReader(pid, fmt::format("/tmp/perf-{}.map", id->ns_pid), id->uids, options);
}

PerfMapReader::PerfMapReader(pid_t pid, std::string path_in_process, std::vector<uid_t> allowed_uids,
                             PerfMapOptions options)
    : pid_(pid),
      path_(std::move(path_in_process)),
      allowed_uids_(std::move(allowed_uids)),
      options_(options) {}

Status PerfMapReader::refresh() {
  auto opened = open_in_process_root(pid_, path_, /*no_symlinks=*/true);
  if (!opened) {
    const Error& e = opened.error();
    return make_error(fmt::format("perf map {}: {}", path_, e.message), e.errno_value);
  }
  uid_t owner = opened->owner_uid;
  if (owner != 0 && std::find(allowed_uids_.begin(), allowed_uids_.end(), owner) == allowed_uids_.end()) {
    std::string allowed;
    for (uid_t u : allowed_uids_) allowed += (allowed.empty() ? "" : ", ") + std::to_string(u);
    return make_error(fmt::format("perf map {} (process {}) is owned by uid {}, not by root or the process's "
                                  "uids ({}); refused",
                                  path_, pid_, owner, allowed),
                      EPERM);
  }
  uint64_t size = static_cast<uint64_t>(opened->size);
  bool replaced = (inode_ != 0 && (opened->inode != inode_ || opened->device != device_)) || size < offset_;
  if (replaced) {
    // Frames recorded earlier may point into code the old file named: keep its entries (the new file's
    // lines come later and win where they overlap), drop only its partial line.
    map_.restart_stream();
    offset_ = 0;
    ++map_.mutable_stats().replaced;
  }
  inode_ = opened->inode;
  device_ = opened->device;
  if (size <= offset_) return {};
  if (read_total_ >= options_.max_bytes) {
    map_.mutable_stats().truncated = true;
    return {};
  }
  if (lseek(opened->fd.get(), static_cast<off_t>(offset_), SEEK_SET) < 0)
    return errno_error("cannot seek in perf map " + path_);
  // Small chunks through the streaming parser: memory stays at one chunk plus one line whatever the
  // budget, and the next refresh resumes at offset_.
  constexpr size_t kChunkBytes = 64 << 10;
  uint64_t budget = std::min<uint64_t>(options_.refresh_bytes, options_.max_bytes - read_total_);
  std::vector<char> chunk(static_cast<size_t>(std::min<uint64_t>(kChunkBytes, budget)));
  while (budget > 0) {
    ssize_t n =
        read(opened->fd.get(), chunk.data(), static_cast<size_t>(std::min<uint64_t>(chunk.size(), budget)));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno_error("cannot read perf map " + path_);
    if (n == 0) break;
    auto got = static_cast<uint64_t>(n);
    map_.feed(std::string_view(chunk.data(), got));
    offset_ += got;
    read_total_ += got;
    budget -= got;
    map_.mutable_stats().bytes += got;
  }
  if (read_total_ >= options_.max_bytes && size > offset_) map_.mutable_stats().truncated = true;
  return {};
}

}  // namespace memlens::symbolize
