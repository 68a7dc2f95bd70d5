// uprobe_sites PID: where the BPF programs a process holds are attached as uprobes, and what a hit costs
// there, for bench/run.sh's account of a tracer's traps (bench/uprobe_trap.c measures each kind).
//
// Prints one line per site: "PROG_ID KIND CLASS OFFSET PATH".
// - KIND: entry, or return (a return probe, which also traps at the function's entry).
// - CLASS: how the kernel handles the instruction at the site, x86-64: emulated (calls, jumps, conditional
//   branches, push, nop: one exception a hit) or stepped (any other: run out of line and single-stepped,
//   two exceptions). Instructions the kernel may emulate but this list does not name count as stepped,
//   the dearer kind.
//
// Two ways a process holds uprobes, both read here:
// - uprobe_multi links (Linux 6.6; memlens): each link's fd is copied from the process with
//   pidfd_getfd and asked for its path and offsets (BPF_OBJ_GET_INFO_BY_FD).
// - perf events with a program (bcc and bpftrace, libbpf's single uprobes): BPF_TASK_FD_QUERY on the
//   process's fd gives the program, the path and the offset.
// Debian 12's linux/bpf.h (Linux 6.1) predates the uprobe_multi link info: its layout is written out here.
#include <errno.h>
#include <linux/bpf.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <dirent.h>
#include <fcntl.h>

enum { kLinkTypeUprobeMulti = 12, kUprobeMultiReturn = 1 };

struct uprobe_multi_link_info {  // struct bpf_link_info with its uprobe_multi member (Linux 6.8)
  uint32_t type;
  uint32_t id;
  uint32_t prog_id;
  uint32_t pad;
  uint64_t path;
  uint64_t offsets;
  uint64_t ref_ctr_offsets;
  uint64_t cookies;
  uint32_t path_size;
  uint32_t count;
  uint32_t flags;
  uint32_t pid;
  uint8_t rest[64];  // the union's other members are larger: room for the kernel to write
};

static long bpf(int cmd, union bpf_attr* attr) {
  return syscall(SYS_bpf, cmd, attr, sizeof(*attr));
}

// How the kernel runs the instruction at offset of path (see CLASS above).
static const char* site_class(const char* path, uint64_t offset) {
  uint8_t b[4] = {0, 0, 0, 0};
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "stepped";
  ssize_t n = pread(fd, b, sizeof(b), (off_t)offset);
  close(fd);
  if (n < 2) return "stepped";
  uint8_t op = b[0];
  if (op == 0xE8 || op == 0xE9 || op == 0xEB || (op >= 0x70 && op <= 0x7F) || op == 0x90) return "emulated";
  if (op == 0x0F && b[1] >= 0x80 && b[1] <= 0x8F) return "emulated";
  if ((op >= 0x50 && op <= 0x57) || (op == 0x41 && b[1] >= 0x50 && b[1] <= 0x57)) return "emulated";
  return "stepped";
}

static void print_multi_link(int link_fd) {
  struct uprobe_multi_link_info info;
  memset(&info, 0, sizeof(info));
  union bpf_attr attr;
  memset(&attr, 0, sizeof(attr));
  attr.info.bpf_fd = (uint32_t)link_fd;
  attr.info.info_len = sizeof(info);
  attr.info.info = (uint64_t)(uintptr_t)&info;
  if (bpf(BPF_OBJ_GET_INFO_BY_FD, &attr) != 0 || info.type != kLinkTypeUprobeMulti) return;
  if (info.count == 0) {
    fprintf(stderr, "uprobe_sites: uprobe_multi link %u tells no sites (Linux < 6.8): program %u unplaced\n",
            info.id, info.prog_id);
    return;
  }
  uint32_t count = info.count, prog_id = info.prog_id;
  char path[4096];
  uint64_t* offsets = calloc(count, sizeof(uint64_t));
  if (!offsets) return;
  memset(&info, 0, sizeof(info));
  info.path = (uint64_t)(uintptr_t)path;
  info.path_size = sizeof(path);
  info.offsets = (uint64_t)(uintptr_t)offsets;
  info.count = count;
  memset(&attr, 0, sizeof(attr));
  attr.info.bpf_fd = (uint32_t)link_fd;
  attr.info.info_len = sizeof(info);
  attr.info.info = (uint64_t)(uintptr_t)&info;
  if (bpf(BPF_OBJ_GET_INFO_BY_FD, &attr) == 0) {
    const char* kind = info.flags & kUprobeMultiReturn ? "return" : "entry";
    for (uint32_t i = 0; i < count && i < info.count; i++)
      printf("%u %s %s %llu %s\n", prog_id, kind, site_class(path, offsets[i]), (unsigned long long)offsets[i],
             path);
  }
  free(offsets);
}

static void print_perf_event(int pid, int fd) {
  char path[4096];
  union bpf_attr attr;
  memset(&attr, 0, sizeof(attr));
  attr.task_fd_query.pid = (uint32_t)pid;
  attr.task_fd_query.fd = (uint32_t)fd;
  attr.task_fd_query.buf = (uint64_t)(uintptr_t)path;
  attr.task_fd_query.buf_len = sizeof(path);
  if (bpf(BPF_TASK_FD_QUERY, &attr) != 0) return;
  uint32_t type = attr.task_fd_query.fd_type;
  if (type != BPF_FD_TYPE_UPROBE && type != BPF_FD_TYPE_URETPROBE) return;
  uint64_t offset = attr.task_fd_query.probe_offset;
  printf("%u %s %s %llu %s\n", attr.task_fd_query.prog_id, type == BPF_FD_TYPE_URETPROBE ? "return" : "entry",
         site_class(path, offset), (unsigned long long)offset, path);
}

int main(int argc, char** argv) {
  if (argc != 2 || atoi(argv[1]) <= 0) {
    fprintf(stderr, "usage: uprobe_sites PID\n");
    return 2;
  }
  int pid = atoi(argv[1]);
  int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
  if (pidfd < 0) {
    fprintf(stderr, "uprobe_sites: pidfd_open(%d): %s\n", pid, strerror(errno));
    return 1;
  }
  char dir[64];
  snprintf(dir, sizeof(dir), "/proc/%d/fd", pid);
  DIR* d = opendir(dir);
  if (!d) {
    fprintf(stderr, "uprobe_sites: %s: %s\n", dir, strerror(errno));
    return 1;
  }
  struct dirent* e;
  while ((e = readdir(d))) {
    int fd = atoi(e->d_name);
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    char link[320], target[256];
    snprintf(link, sizeof(link), "%s/%s", dir, e->d_name);
    ssize_t n = readlink(link, target, sizeof(target) - 1);
    if (n <= 0) continue;
    target[n] = '\0';
    if (strcmp(target, "anon_inode:[perf_event]") == 0) {
      print_perf_event(pid, fd);
    } else if (strcmp(target, "anon_inode:bpf_link") == 0) {
      int copy = (int)syscall(SYS_pidfd_getfd, pidfd, fd, 0);
      if (copy < 0) continue;  // closed meanwhile
      print_multi_link(copy);
      close(copy);
    }
  }
  closedir(d);
  close(pidfd);
  return 0;
}
