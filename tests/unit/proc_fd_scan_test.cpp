// /proc fd parsing: a fixture for fdinfo, and the live process checked against fds it opens itself.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "proc/fd_scan.h"

namespace memlens::proc {
namespace {

std::string fixture(const std::string& name) {
  std::ifstream in(std::string(MEMLENS_TEST_DATA) + "/fd/" + name);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(FdScan, ParsesFdinfo) {
  auto f = parse_fdinfo(fixture("fdinfo.txt"));
  ASSERT_TRUE(f);
  EXPECT_EQ(f->pos, 42u);
  EXPECT_EQ(f->flags, 02100002u);
  EXPECT_TRUE(f->flags & O_CLOEXEC);
  EXPECT_FALSE(parse_fdinfo("pos: 1\n"));
}

TEST(FdScan, ClassifiesTargets) {
  EXPECT_EQ(classify_fd_target("socket:[12]", 0), FdType::kSocket);
  EXPECT_EQ(classify_fd_target("pipe:[12]", 0), FdType::kPipe);
  EXPECT_EQ(classify_fd_target("anon_inode:[eventpoll]", 0), FdType::kEpoll);
  EXPECT_EQ(classify_fd_target("anon_inode:[eventfd]", 0), FdType::kEventfd);
  EXPECT_EQ(classify_fd_target("anon_inode:[pidfd]", 0), FdType::kPidfd);
  EXPECT_EQ(classify_fd_target("anon_inode:inotify", 0), FdType::kInotify);
  EXPECT_EQ(classify_fd_target("anon_inode:bpf-map", 0), FdType::kOther);
  EXPECT_EQ(classify_fd_target("/memfd:x (deleted)", S_IFREG), FdType::kMemfd);
  EXPECT_EQ(classify_fd_target("/etc/passwd", S_IFREG), FdType::kFile);
  EXPECT_EQ(classify_fd_target("/tmp", S_IFDIR), FdType::kDirectory);
  EXPECT_EQ(classify_fd_target("/dev/null", S_IFCHR), FdType::kCharDevice);
  EXPECT_EQ(bracket_inode("socket:[4321]"), 4321u);
  EXPECT_EQ(bracket_inode("/x"), 0u);
}

// The live process: fds opened here are listed with the right type and flags.
TEST(FdScan, LiveSelf) {
  int file = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
  int dir = open("/", O_RDONLY | O_DIRECTORY);
  int ev = eventfd(0, EFD_CLOEXEC);
  int pfd[2];
  ASSERT_EQ(pipe(pfd), 0);
  int lsock = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(lsock, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(lsock, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  ASSERT_EQ(listen(lsock, 1), 0);

  auto fds = scan_fds(getpid());
  ASSERT_TRUE(fds) << fds.error().describe();
  auto find = [&](int fd) -> const ProcFd* {
    for (const auto& f : *fds)
      if (f.fd == fd) return &f;
    return nullptr;
  };
  ASSERT_TRUE(find(file));
  EXPECT_EQ(find(file)->type, FdType::kFile);
  EXPECT_TRUE(find(file)->cloexec());
  ASSERT_TRUE(find(dir));
  EXPECT_EQ(find(dir)->type, FdType::kDirectory);
  EXPECT_FALSE(find(dir)->cloexec());
  EXPECT_EQ(find(ev)->type, FdType::kEventfd);
  EXPECT_EQ(find(pfd[0])->type, FdType::kPipe);
  EXPECT_EQ(find(lsock)->type, FdType::kSocket);
  // The listing equals the directory: every fd of this process, and no other.
  size_t n = 0;
  for (int fd = 0; fd < 4096; ++fd)
    if (fcntl(fd, F_GETFD) >= 0) ++n;
  EXPECT_EQ(fds->size(), n);

  // The socket inodes are exactly those of the fds scan_fds calls sockets, each the socket's own st_ino.
  std::vector<uint64_t> sockets;
  for (const auto& f : *fds)
    if (f.type == FdType::kSocket) sockets.push_back(f.inode);
  std::sort(sockets.begin(), sockets.end());
  auto inodes = socket_inodes(getpid());
  ASSERT_TRUE(inodes) << inodes.error().describe();
  EXPECT_EQ(*inodes, sockets);
  struct stat st {};
  ASSERT_EQ(fstat(lsock, &st), 0);
  EXPECT_TRUE(std::binary_search(sockets.begin(), sockets.end(), st.st_ino));
  EXPECT_FALSE(socket_inodes(0x3fffffff)) << "a pid that cannot exist: an error, not no sockets";

  for (int fd : {file, dir, ev, pfd[0], pfd[1], lsock}) close(fd);
  EXPECT_FALSE(read_fd(getpid(), file));
}

}  // namespace
}  // namespace memlens::proc
