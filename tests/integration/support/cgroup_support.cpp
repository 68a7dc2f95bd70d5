#include "support/cgroup_support.h"

#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <thread>

namespace memlens::testing {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void remove_cgroup(const std::string& dir) {
  for (int i = 0; i < 50 && fs::exists(dir) && rmdir(dir.c_str()) != 0; ++i)
    std::this_thread::sleep_for(100ms);
}

}  // namespace

LimitedCgroup::LimitedCgroup(const std::string& name, uint64_t limit_bytes, bool limit_on_parent)
    : name_(name) {
  if (fs::exists("/sys/fs/cgroup/memory/memory.limit_in_bytes")) {
    dir_ = "/sys/fs/cgroup/memory/" + name;
    fs::create_directories(dir_);
    std::ofstream(dir_ + "/memory.limit_in_bytes") << limit_bytes;
    v1_ = true;
  } else {
    dir_ = "/sys/fs/cgroup/" + name;
    fs::create_directories(dir_);
    std::ofstream(dir_ + "/memory.max") << limit_bytes;
    std::ofstream(dir_ + "/memory.swap.max") << 0;
    if (limit_on_parent) std::ofstream(dir_ + "/cgroup.subtree_control") << "+memory";
  }
  procs_dir_ = dir_;
  if (limit_on_parent) {
    procs_dir_ = dir_ + "/leaf";
    fs::create_directories(procs_dir_);
  }
}

LimitedCgroup::~LimitedCgroup() {
  if (procs_dir_ != dir_) remove_cgroup(procs_dir_);
  remove_cgroup(dir_);
}

uint64_t LimitedCgroup::oom_kills() const {
  std::string text = slurp(dir_ + (v1_ ? "/memory.oom_control" : "/memory.events"));
  auto at = text.find("oom_kill ");
  return at == std::string::npos ? 0 : std::stoull(text.substr(at + 9));
}

uint64_t LimitedCgroup::usage_bytes() const {
  std::string text = slurp(dir_ + (v1_ ? "/memory.usage_in_bytes" : "/memory.current"));
  return text.empty() ? 0 : std::stoull(text);
}

}  // namespace memlens::testing
