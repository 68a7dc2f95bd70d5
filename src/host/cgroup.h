// The memory cgroup of a process, on cgroup v1 (the memory controller's own hierarchy) or v2 (the unified
// one): its path, the effective limit (the lowest set on it or any ancestor: any of them can OOM-kill the
// process), usage and the OOM kills the kernel counted there; and the container a cgroup path names.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace memlens::host {

// What /proc/PID/cgroup says of the memory controller.
struct CgroupMembership {
  std::optional<std::string> memory_v1;  // "4:memory:/a/b" -> "/a/b"
  std::optional<std::string> unified;    // "0::/a/b" -> "/a/b"
};
CgroupMembership parse_proc_cgroup(std::string_view text);

// Where the hierarchies are mounted (from /proc/self/mountinfo): "" when not mounted.
struct CgroupMounts {
  std::string memory_v1;  // a cgroup (v1) mount with the memory controller
  std::string unified;    // the cgroup2 mount
};
CgroupMounts parse_mountinfo(std::string_view text);

// A limit file's value: "max" (v2) and v1's "unlimited" (PAGE_COUNTER_MAX pages, ~2^63) are no limit.
std::optional<uint64_t> parse_limit(std::string_view text);
// "key value" lines (memory.stat, memory.events, memory.oom_control): the value of key.
std::optional<uint64_t> parse_keyed(std::string_view text, std::string_view key);

struct MemoryCgroup {
  std::string version;                  // "v1" or "v2"
  std::string path;                     // inside its hierarchy, "/a/b"
  std::optional<uint64_t> limit_bytes;  // effective: the lowest up the hierarchy
  std::string limit_set_at;             // the path whose limit is the effective one
  std::optional<uint64_t> usage_bytes;  // the cgroup's whole usage (every process in it, page cache too)
  std::optional<uint64_t> oom_kills;    // counted by the kernel in this cgroup
};

// Where this host mounts its cgroup hierarchies (read once).
const CgroupMounts& host_cgroup_mounts();

// The memory cgroup of pid, read from the host's cgroup file systems (mounts read once per process of
// memlens). nullopt when the process is gone or no memory controller is mounted.
std::optional<MemoryCgroup> memory_cgroup_of(pid_t pid);
// The same for a known membership and mounts, under a root directory (tests).
std::optional<MemoryCgroup> memory_cgroup_at(const CgroupMembership& membership, const CgroupMounts& mounts);

// The OOM kills the kernel counted in one memory cgroup ("v1" or "v2", its path), reading that counter
// alone: cheap enough for every sample.
std::optional<uint64_t> oom_kills_in(const std::string& version, const std::string& path);
// The OOM kills of the whole host (/proc/vmstat), those of every cgroup included.
std::optional<uint64_t> host_oom_kills();

// The whole usage of one memory cgroup ("v1" or "v2", its path): memory.usage_in_bytes on v1
// (hierarchical: its descendants' too) or memory.current on v2, page cache included. One small read,
// cheap enough for every sample.
std::optional<uint64_t> memory_usage_in(const std::string& version, const std::string& path);

// The host's memory (/proc/meminfo), the limit of a process no cgroup limits.
struct HostMemory {
  uint64_t total_bytes = 0;      // MemTotal
  uint64_t available_bytes = 0;  // MemAvailable: what can be had without swapping or the OOM killer
};
std::optional<HostMemory> parse_meminfo(std::string_view text);
std::optional<HostMemory> host_memory();

// The container a cgroup path names, as container runtimes and systemd name their cgroups: docker
// (".../docker/<id>", "docker-<id>.scope"), containerd ("cri-containerd-<id>.scope"), cri-o
// ("crio-<id>.scope"), podman ("libpod-<id>.scope"), Kubernetes pods (".../kubepods.../pod<uid>/<id>").
// Conmon and other helper scopes are not containers.
struct ContainerRef {
  std::string runtime;  // "docker", "containerd", "cri-o", "podman", "kubernetes"
  std::string id;       // the full id (64 hex digits)
  std::string short_id() const { return id.substr(0, 12); }
};
std::optional<ContainerRef> container_from_cgroup_path(std::string_view path);

}  // namespace memlens::host
