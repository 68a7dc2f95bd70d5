#include "collect/uprobe_link.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fmt/format.h>
#include <linux/bpf.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <tuple>

#include "elf/elf_file.h"

namespace memlens::collect {

namespace {

// The kernel ABI of BPF_LINK_CREATE for uprobe_multi (Linux 6.6), which Debian 12's linux/bpf.h (6.1)
// and libbpf 1.1 predate.
constexpr uint32_t kTraceUprobeMulti = 48;  // enum bpf_attach_type: BPF_TRACE_UPROBE_MULTI
constexpr uint32_t kUprobeMultiReturn = 1;  // BPF_F_UPROBE_MULTI_RETURN

struct UprobeMultiLinkCreate {
  uint32_t prog_fd;
  uint32_t target_fd;
  uint32_t attach_type;
  uint32_t flags;
  uint64_t path;
  uint64_t offsets;
  uint64_t ref_ctr_offsets;
  uint64_t cookies;
  uint32_t cnt;
  uint32_t multi_flags;
  uint32_t pid;
  uint32_t pad;
};
static_assert(offsetof(UprobeMultiLinkCreate, path) == 16);
static_assert(offsetof(UprobeMultiLinkCreate, cnt) == 48);
static_assert(offsetof(UprobeMultiLinkCreate, pid) == 56);

bool release_at_least(int want_major, int want_minor) {
  utsname u{};
  if (uname(&u) != 0) return false;
  int major = 0, minor = 0;
  if (std::sscanf(u.release, "%d.%d", &major, &minor) != 2) return false;
  return major > want_major || (major == want_major && minor >= want_minor);
}

// Function name -> file offset in one binary, identified by device, inode and modification time (the same
// library is reached through a different /proc/PID/root path for every process).
class SymbolOffsets {
 public:
  Result<uint64_t> offset_of(const std::string& path, const std::string& func) {
    struct stat st {};
    if (stat(path.c_str(), &st) != 0) return make_error(fmt::format("cannot stat {}", path), errno);
    Key key{st.st_dev, st.st_ino, st.st_mtim.tv_sec, st.st_mtim.tv_nsec, func};
    std::lock_guard<std::mutex> lock(mu_);
    if (auto it = cache_.find(key); it != cache_.end()) return it->second;
    auto elf = elf::ElfFile::open_path(path);
    if (!elf) return elf.error();
    auto sym = (*elf)->find_symbol(func);
    if (!sym || sym->address == 0) return make_error(fmt::format("no symbol {} in {}", func, path), ENOENT);
    auto off = (*elf)->vaddr_to_file_offset(sym->address);
    if (!off) return make_error(fmt::format("symbol {} of {} is in no loaded segment", func, path), ENOENT);
    if (cache_.size() > 4096) cache_.clear();  // bounded: many distinct libraries over a long trace
    cache_[key] = *off;
    return *off;
  }

 private:
  using Key = std::tuple<dev_t, ino_t, long, long, std::string>;
  std::mutex mu_;
  std::map<Key, uint64_t> cache_;
};

SymbolOffsets& symbol_offsets() {
  static SymbolOffsets cache;
  return cache;
}

Result<UprobeLink> attach_multi(bpf_program* prog, pid_t pid, const std::string& path,
                                const uint64_t* offsets, const uint64_t* cookies, uint32_t count,
                                bool retprobe) {
  union {
    UprobeMultiLinkCreate a;
    char bytes[sizeof(bpf_attr)];  // the tail the kernel checks to be zero
  } attr;
  std::memset(&attr, 0, sizeof(attr));
  attr.a.prog_fd = static_cast<uint32_t>(bpf_program__fd(prog));
  attr.a.attach_type = kTraceUprobeMulti;
  attr.a.path = reinterpret_cast<uint64_t>(path.c_str());
  attr.a.offsets = reinterpret_cast<uint64_t>(offsets);
  attr.a.cookies = reinterpret_cast<uint64_t>(cookies);
  attr.a.cnt = count;
  attr.a.multi_flags = retprobe ? kUprobeMultiReturn : 0;
  attr.a.pid = static_cast<uint32_t>(pid);
  long fd = syscall(__NR_bpf, BPF_LINK_CREATE, &attr, sizeof(attr));
  if (fd < 0) return make_error("BPF_LINK_CREATE (uprobe_multi) failed", errno);
  return UprobeLink::from_fd(static_cast<int>(fd));
}

}  // namespace

UprobeLink UprobeLink::from_fd(int link_fd) {
  UprobeLink l;
  l.fd_ = link_fd;
  return l;
}

void UprobeLink::reset() {
  if (link_) bpf_link__destroy(link_);
  if (fd_ >= 0) close(fd_);
  link_ = nullptr;
  fd_ = -1;
}

UprobeLink& UprobeLink::operator=(UprobeLink&& o) noexcept {
  if (this != &o) {
    reset();
    link_ = o.link_;
    fd_ = o.fd_;
    o.link_ = nullptr;
    o.fd_ = -1;
  }
  return *this;
}

UprobeLink::~UprobeLink() {
  reset();
}

bool uprobe_multi_supported() {
  static const bool supported = release_at_least(6, 6);
  return supported;
}

void prepare_uprobe_programs(bpf_object* obj) {
  if (!uprobe_multi_supported()) return;
  bpf_program* prog = nullptr;
  bpf_object__for_each_program(prog, obj) {
    std::string_view sec = bpf_program__section_name(prog);
    // SEC("uprobe") and SEC("uretprobe"); USDT programs keep libbpf's own attach path.
    if (sec == "uprobe" || sec == "uretprobe")
      bpf_program__set_expected_attach_type(prog, static_cast<bpf_attach_type>(kTraceUprobeMulti));
  }
}

Result<UprobeLink> attach_uprobe(bpf_program* prog, pid_t pid, const std::string& binary_path,
                                 const std::string& func_name, uint64_t file_offset, bool retprobe,
                                 uint64_t cookie) {
  auto describe = [&](const Error& e) {
    return make_error(
        fmt::format("cannot attach {} to {} in {} for pid {}: {}", retprobe ? "uretprobe" : "uprobe",
                    func_name.empty() ? fmt::format("offset 0x{:x}", file_offset) : func_name, binary_path,
                    pid, e.message),
        e.errno_value);
  };
  if (uprobe_multi_supported() &&
      bpf_program__expected_attach_type(prog) == static_cast<bpf_attach_type>(kTraceUprobeMulti)) {
    uint64_t offset = file_offset;
    if (!func_name.empty()) {
      auto off = symbol_offsets().offset_of(binary_path, func_name);
      if (!off) return describe(off.error());
      offset = *off;
    }
    auto link = attach_multi(prog, pid, binary_path, &offset, &cookie, 1, retprobe);
    if (!link) return describe(link.error());
    return link;
  }
  LIBBPF_OPTS(bpf_uprobe_opts, opts);
  opts.retprobe = retprobe;
  opts.bpf_cookie = cookie;
  if (!func_name.empty()) opts.func_name = func_name.c_str();
  bpf_link* link = bpf_program__attach_uprobe_opts(prog, pid, binary_path.c_str(),
                                                   func_name.empty() ? file_offset : 0, &opts);
  if (!link) return describe(make_error("libbpf could not attach it", errno));
  return UprobeLink(link);
}

Result<UprobeLink> attach_uprobes_at(bpf_program* prog, pid_t pid, const std::string& binary_path,
                                     const std::vector<uint64_t>& offsets,
                                     const std::vector<uint64_t>& cookies, bool retprobe) {
  if (offsets.empty() || offsets.size() != cookies.size()) return make_error("no offsets", EINVAL);
  if (!uprobe_multi_supported() ||
      bpf_program__expected_attach_type(prog) != static_cast<bpf_attach_type>(kTraceUprobeMulti))
    return make_error("uprobe_multi links are not available", EOPNOTSUPP);
  auto link = attach_multi(prog, pid, binary_path, offsets.data(), cookies.data(),
                           static_cast<uint32_t>(offsets.size()), retprobe);
  if (!link)
    return make_error(fmt::format("cannot attach {} {}s in {} for pid {}: {}", offsets.size(),
                                  retprobe ? "uretprobe" : "uprobe", binary_path, pid, link.error().message),
                      link.error().errno_value);
  return link;
}

}  // namespace memlens::collect
