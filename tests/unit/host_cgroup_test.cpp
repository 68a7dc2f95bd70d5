// Memory cgroups (v1 and v2) and container ids, from the texts the kernel writes and fake hierarchies.
#include <gtest/gtest.h>
#include <sys/sysinfo.h>

#include <filesystem>
#include <fstream>

#include "host/cgroup.h"

namespace memlens::host {
namespace {

namespace fs = std::filesystem;

const std::string kId = "3f4e0d1c2b3a49586776a5b4c3d2e1f00112233445566778899aabbccddeeff0";

TEST(Cgroup, ProcCgroupOfAV1Host) {
  auto m = parse_proc_cgroup(
      "9:name=systemd:/\n8:pids:/\n5:devices:/\n4:memory:/process_api/f7fe73\n3:cpuset:/\n0::/\n");
  ASSERT_TRUE(m.memory_v1);
  EXPECT_EQ(*m.memory_v1, "/process_api/f7fe73");
  ASSERT_TRUE(m.unified);
  EXPECT_EQ(*m.unified, "/");
}

TEST(Cgroup, ProcCgroupOfAV2HostAndSharedControllers) {
  auto v2 = parse_proc_cgroup("0::/system.slice/app.service\n");
  EXPECT_FALSE(v2.memory_v1);
  EXPECT_EQ(v2.unified.value_or(""), "/system.slice/app.service");
  auto shared = parse_proc_cgroup("6:cpu,memory:/a:b\n");  // a colon inside the path is kept
  EXPECT_EQ(shared.memory_v1.value_or(""), "/a:b");
  EXPECT_FALSE(parse_proc_cgroup("garbage\n\n:::\n").memory_v1);
}

TEST(Cgroup, MountsOfEachHierarchy) {
  auto mounts = parse_mountinfo(
      "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
      "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
      "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime shared:5 - cgroup cgroup rw,memory\n"
      "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n"
      "50 31 0:39 /sub /mnt/sub rw - cgroup2 cgroup2 rw\n");
  EXPECT_EQ(mounts.memory_v1, "/sys/fs/cgroup/memory");
  EXPECT_EQ(mounts.unified, "/sys/fs/cgroup/unified");
}

TEST(Cgroup, LimitsAndKeyedFiles) {
  EXPECT_FALSE(parse_limit("max\n"));
  EXPECT_FALSE(parse_limit("9223372036854771712\n"));  // v1's "unlimited"
  EXPECT_EQ(parse_limit("268435456\n"), 268435456u);
  EXPECT_FALSE(parse_limit("12ab"));
  EXPECT_EQ(parse_keyed("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n", "oom_kill"), 3u);
  EXPECT_EQ(parse_keyed("low 0\nhigh 0\nmax 2\noom 1\noom_kill 1\n", "oom"), 1u);
  EXPECT_FALSE(parse_keyed("oom_kill x\n", "oom_kill"));
}

TEST(Cgroup, HostMemoryFromMeminfo) {
  auto m = parse_meminfo(
      "MemTotal:       16318412 kB\nMemFree:         1000000 kB\nMemAvailable:    9876543 kB\n"
      "Buffers:          12345 kB\n");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->total_bytes, 16318412ull * 1024);
  EXPECT_EQ(m->available_bytes, 9876543ull * 1024);
  EXPECT_FALSE(parse_meminfo("MemTotal:       16318412 kB\n"));  // no MemAvailable (kernels before 3.14)
  EXPECT_FALSE(parse_meminfo("MemTotal: lots\nMemAvailable: 1 kB\n"));
  // The running host's agrees with sysinfo's figure.
  auto host = host_memory();
  ASSERT_TRUE(host);
  struct sysinfo si {};
  ASSERT_EQ(sysinfo(&si), 0);
  EXPECT_EQ(host->total_bytes, static_cast<uint64_t>(si.totalram) * si.mem_unit);
  EXPECT_LE(host->available_bytes, host->total_bytes);
}

class FakeHierarchy : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("memlens-cgroup-" + std::to_string(getpid()));
    fs::remove_all(root_);
  }
  void TearDown() override { fs::remove_all(root_); }
  void write(const std::string& rel, const std::string& text) {
    fs::create_directories((root_ / rel).parent_path());
    std::ofstream(root_ / rel) << text;
  }
  fs::path root_;
};

TEST_F(FakeHierarchy, V1LimitSetOnTheParentApplies) {
  write("memory.limit_in_bytes", "9223372036854771712\n");
  write("pods/memory.limit_in_bytes", "536870912\n");
  write("pods/app/memory.limit_in_bytes", "9223372036854771712\n");
  write("pods/app/memory.usage_in_bytes", "104857600\n");
  write("pods/app/memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n");
  CgroupMembership m;
  m.memory_v1 = "/pods/app";
  auto cg = memory_cgroup_at(m, CgroupMounts{root_.string(), ""});
  ASSERT_TRUE(cg);
  EXPECT_EQ(cg->version, "v1");
  EXPECT_EQ(cg->limit_bytes, 536870912u);
  EXPECT_EQ(cg->limit_set_at, "/pods");
  EXPECT_EQ(cg->usage_bytes, 104857600u);
  EXPECT_EQ(cg->oom_kills, 2u);
}

TEST_F(FakeHierarchy, V2LowestLimitUpTheHierarchy) {
  write("a/memory.max", "1073741824\n");
  write("a/b/memory.max", "2147483648\n");
  write("a/b/c/memory.max", "max\n");
  write("a/b/c/memory.current", "5000\n");
  write("a/b/c/memory.events", "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n");
  CgroupMembership m;
  m.unified = "/a/b/c";
  auto cg = memory_cgroup_at(m, CgroupMounts{"", root_.string()});
  ASSERT_TRUE(cg);
  EXPECT_EQ(cg->version, "v2");
  EXPECT_EQ(cg->limit_bytes, 1073741824u);
  EXPECT_EQ(cg->limit_set_at, "/a");
  EXPECT_EQ(cg->usage_bytes, 5000u);
  EXPECT_EQ(cg->oom_kills, 0u);
  m.unified = "/a/../../etc";  // never leaves the hierarchy
  EXPECT_FALSE(memory_cgroup_at(m, CgroupMounts{"", root_.string()}));
}

TEST(Cgroup, ContainerIdsAsRuntimesWriteThem) {
  struct Case {
    std::string path, runtime;
  };
  for (const auto& c : std::vector<Case>{
           {"/docker/" + kId, "docker"},
           {"/system.slice/docker-" + kId + ".scope", "docker"},
           {"/system.slice/cri-containerd-" + kId + ".scope", "containerd"},
           {"/machine.slice/libpod-" + kId + ".scope", "podman"},
           {"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1234.slice/crio-" + kId +
                ".scope",
            "kubernetes"},
           {"/kubepods/besteffort/pod0a1b2c3d-0000-1111-2222-333344445555/" + kId, "kubernetes"},
       }) {
    auto ref = container_from_cgroup_path(c.path);
    ASSERT_TRUE(ref) << c.path;
    EXPECT_EQ(ref->id, kId) << c.path;
    EXPECT_EQ(ref->runtime, c.runtime) << c.path;
    EXPECT_EQ(ref->short_id(), kId.substr(0, 12));
  }
  for (const std::string& none : std::vector<std::string>{
           "/", "/user.slice/user-0.slice/session-3.scope", "/process_api/f7fe73668c86f9a5",
           "/machine.slice/libpod-conmon-" + kId + ".scope", "/docker/notanid"})
    EXPECT_FALSE(container_from_cgroup_path(none)) << none;
}

}  // namespace
}  // namespace memlens::host
