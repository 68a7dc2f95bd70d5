// Detaching a uprobe waits for the kernel's grace periods inside close() (0.1 to 0.2 s per link on the
// test VM: 30 links of one process took 6 s one after the other). Every probe memlens removes while it
// traces (a process exited or exec'd, a sampling window closed) is handed to the session's reaper, which
// detaches on a pool of threads: the drain loop keeps draining, and concurrent detaches share their grace
// periods. drain() and the destructor wait until everything handed over is detached: memlens never exits
// with a probe still attached.
#pragma once

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "collect/uprobe_link.h"

namespace memlens::collect {

class LinkReaper {
 public:
  // At most this many detaches run at once (threads are started as work arrives, and stay until the end).
  static constexpr size_t kMaxThreads = 32;

  LinkReaper() = default;
  ~LinkReaper();
  LinkReaper(const LinkReaper&) = delete;
  LinkReaper& operator=(const LinkReaper&) = delete;

  void retire(UprobeLink link);
  void retire(std::vector<UprobeLink> links);
  // Waits until everything retired so far is detached.
  void drain();

 private:
  void run();
  void start_threads_locked();

  std::mutex mu_;
  std::condition_variable work_cv_;
  std::condition_variable idle_cv_;
  std::deque<UprobeLink> queue_;
  size_t busy_ = 0;
  size_t idle_threads_ = 0;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace memlens::collect
