#include "host/cgroup.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <vector>

#include "common/safe_file.h"
#include "common/text.h"

namespace memlens::host {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

// v1 reports "no limit" as PAGE_COUNTER_MAX pages (9223372036854771712 with 4 KiB pages): anything this
// large is no limit a machine can reach.
constexpr uint64_t kNoLimitAbove = uint64_t{1} << 62;

bool is_hex_id(std::string_view s) {
  return s.size() == 64 &&
         std::all_of(s.begin(), s.end(), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)); });
}

// The parent of a cgroup path: "/a/b" -> "/a", "/a" -> "/".
std::string parent_of(const std::string& path) {
  auto slash = path.rfind('/');
  return slash == 0 || slash == std::string::npos ? "/" : path.substr(0, slash);
}

std::optional<std::string> read_small(const std::string& path) {
  auto text = read_text_file(path, 64 << 10);
  if (!text) return std::nullopt;
  return *text;
}

// The oom_kill counter of a memory cgroup under its hierarchy's mount point.
std::optional<uint64_t> oom_kills_at(const std::string& root, const std::string& version,
                                     const std::string& path) {
  if (root.empty() || path.find("..") != std::string::npos) return std::nullopt;
  std::string dir = root + (path == "/" ? "" : path);
  auto text = read_small(dir + (version == "v1" ? "/memory.oom_control" : "/memory.events"));
  return text ? parse_keyed(*text, "oom_kill") : std::nullopt;
}

}  // namespace

CgroupMembership parse_proc_cgroup(std::string_view text) {
  CgroupMembership m;
  for_each_line(text, [&](std::string_view line) {
    // hierarchy-id:controller-list:path (the path may itself hold colons).
    size_t a = line.find(':');
    if (a == std::string_view::npos) return;
    size_t b = line.find(':', a + 1);
    if (b == std::string_view::npos) return;
    std::string_view controllers = line.substr(a + 1, b - a - 1);
    std::string path(line.substr(b + 1));
    if (path.empty() || path[0] != '/') return;
    if (line.substr(0, a) == "0" && controllers.empty()) {
      m.unified = path;
      return;
    }
    for (auto c : split(controllers, ','))
      if (c == "memory") m.memory_v1 = path;
  });
  return m;
}

CgroupMounts parse_mountinfo(std::string_view text) {
  CgroupMounts mounts;
  for_each_line(text, [&](std::string_view line) {
    // id parent major:minor root mount-point options [optional fields] - fstype source super-options
    size_t dash = line.find(" - ");
    if (dash == std::string_view::npos) return;
    auto before = split(line.substr(0, dash), ' ');
    auto after = split(line.substr(dash + 3), ' ');
    if (before.size() < 5 || after.size() < 3) return;
    // A mount of a sub-tree (root other than "/") would shift every path: only whole hierarchies count.
    if (before[3] != "/") return;
    std::string point(before[4]);
    if (after[0] == "cgroup2" && mounts.unified.empty()) mounts.unified = point;
    if (after[0] == "cgroup" && mounts.memory_v1.empty())
      for (auto opt : split(after[2], ','))
        if (opt == "memory") mounts.memory_v1 = point;
  });
  return mounts;
}

std::optional<uint64_t> parse_limit(std::string_view text) {
  text = trim(text);
  if (text.empty() || text == "max") return std::nullopt;
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || v >= kNoLimitAbove) return std::nullopt;
  return v;
}

std::optional<uint64_t> parse_keyed(std::string_view text, std::string_view key) {
  std::optional<uint64_t> out;
  for_each_line(text, [&](std::string_view line) {
    if (out || line.size() <= key.size() || line.substr(0, key.size()) != key || line[key.size()] != ' ')
      return;
    std::string_view v = trim(line.substr(key.size() + 1));
    uint64_t n = 0;
    auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
    if (ec == std::errc() && end == v.data() + v.size()) out = n;
  });
  return out;
}

std::optional<MemoryCgroup> memory_cgroup_at(const CgroupMembership& membership, const CgroupMounts& mounts) {
  MemoryCgroup cg;
  std::string root;
  const char* limit_file;
  const char* usage_file;
  if (membership.memory_v1 && !mounts.memory_v1.empty()) {
    cg.version = "v1";
    cg.path = *membership.memory_v1;
    root = mounts.memory_v1;
    limit_file = "memory.limit_in_bytes";
    usage_file = "memory.usage_in_bytes";
  } else if (membership.unified && !mounts.unified.empty()) {
    cg.version = "v2";
    cg.path = *membership.unified;
    root = mounts.unified;
    limit_file = "memory.max";
    usage_file = "memory.current";
  } else {
    return std::nullopt;
  }
  // The path comes from the kernel; a ".." in it would still leave the hierarchy.
  if (cg.path.find("..") != std::string::npos) return std::nullopt;
  auto dir_of = [&](const std::string& path) { return root + (path == "/" ? "" : path); };
  if (auto usage = read_small(dir_of(cg.path) + "/" + usage_file)) cg.usage_bytes = parse_limit(*usage);
  cg.oom_kills = oom_kills_at(root, cg.version, cg.path);
  // Walk up: a limit on any ancestor applies (v1 with use_hierarchy, the only mode of current kernels).
  for (std::string path = cg.path;; path = parent_of(path)) {
    if (auto text = read_small(dir_of(path) + "/" + limit_file))
      if (auto limit = parse_limit(*text); limit && (!cg.limit_bytes || *limit < *cg.limit_bytes)) {
        cg.limit_bytes = limit;
        cg.limit_set_at = path;
      }
    if (path == "/") break;
  }
  return cg;
}

const CgroupMounts& host_cgroup_mounts() {
  static const CgroupMounts mounts = [] {
    auto text = read_text_file("/proc/self/mountinfo", 1 << 20);
    return text ? parse_mountinfo(*text) : CgroupMounts{};
  }();
  return mounts;
}

std::optional<MemoryCgroup> memory_cgroup_of(pid_t pid) {
  auto text = read_text_file(fmt::format("/proc/{}/cgroup", pid), 64 << 10);
  if (!text) return std::nullopt;
  return memory_cgroup_at(parse_proc_cgroup(*text), host_cgroup_mounts());
}

std::optional<uint64_t> oom_kills_in(const std::string& version, const std::string& path) {
  const auto& mounts = host_cgroup_mounts();
  return oom_kills_at(version == "v1" ? mounts.memory_v1 : mounts.unified, version, path);
}

std::optional<uint64_t> host_oom_kills() {
  auto vmstat = read_text_file("/proc/vmstat", 64 << 10);
  return vmstat ? parse_keyed(*vmstat, "oom_kill") : std::nullopt;
}

std::optional<uint64_t> memory_usage_in(const std::string& version, const std::string& path) {
  const auto& mounts = host_cgroup_mounts();
  const std::string& root = version == "v1" ? mounts.memory_v1 : mounts.unified;
  if (root.empty() || path.empty() || path.find("..") != std::string::npos) return std::nullopt;
  auto text = read_small(root + (path == "/" ? "" : path) +
                         (version == "v1" ? "/memory.usage_in_bytes" : "/memory.current"));
  return text ? parse_limit(*text) : std::nullopt;
}

std::optional<HostMemory> parse_meminfo(std::string_view text) {
  // "MemTotal:       16318412 kB"
  std::optional<uint64_t> total, available;
  for_each_line(text, [&](std::string_view line) {
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) return;
    std::string_view key = line.substr(0, colon);
    if (key != "MemTotal" && key != "MemAvailable") return;
    std::string_view v = trim(line.substr(colon + 1));
    uint64_t n = 0;
    auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
    if (ec != std::errc() || trim(std::string_view(end, v.data() + v.size() - end)) != "kB") return;
    (key == "MemTotal" ? total : available) = n * 1024;
  });
  if (!total || !available) return std::nullopt;
  return HostMemory{*total, *available};
}

std::optional<HostMemory> host_memory() {
  auto text = read_text_file("/proc/meminfo", 64 << 10);
  return text ? parse_meminfo(*text) : std::nullopt;
}

std::optional<ContainerRef> container_from_cgroup_path(std::string_view path) {
  auto parts = split(path, '/');
  bool kubepods = path.find("kubepods") != std::string_view::npos;
  // The innermost component that names a container wins (a pod's container inside the pod's slice).
  for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
    std::string_view c = *it;
    if (c.size() > 6 && c.substr(c.size() - 6) == ".scope") c.remove_suffix(6);
    struct Prefix {
      std::string_view prefix, runtime;
    };
    static constexpr Prefix prefixes[] = {
        {"docker-", "docker"}, {"cri-containerd-", "containerd"}, {"crio-", "cri-o"}, {"libpod-", "podman"}};
    for (const auto& p : prefixes)
      if (c.substr(0, p.prefix.size()) == p.prefix && is_hex_id(c.substr(p.prefix.size())))
        return ContainerRef{kubepods ? "kubernetes" : std::string(p.runtime),
                            std::string(c.substr(p.prefix.size()))};
    if (is_hex_id(c)) {
      // A bare id: under docker's cgroupfs layout ("/docker/<id>"), containerd's ("/<namespace>/<id>") or a
      // pod's ("/kubepods/burstable/pod<uid>/<id>").
      std::string runtime = kubepods ? "kubernetes" : "containerd";
      if (it + 1 != parts.rend() && *(it + 1) == "docker") runtime = "docker";
      return ContainerRef{runtime, std::string(c)};
    }
  }
  return std::nullopt;
}

}  // namespace memlens::host
