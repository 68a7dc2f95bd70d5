// Detaching a uprobe waits for the kernel's grace periods (about 0.2 s per link here). Probes of a process
// that exited are handed to this reaper, which destroys them on its own thread, so the drain loop keeps
// draining. The destructor waits until everything handed over is detached: memlens never exits with a
// probe still attached.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

namespace memlens::collect {

class LinkReaper {
 public:
  LinkReaper();
  ~LinkReaper();
  LinkReaper(const LinkReaper&) = delete;
  LinkReaper& operator=(const LinkReaper&) = delete;

  // Runs `destroy` (which detaches links) on the reaper thread.
  void retire(std::function<void()> destroy);
  // Waits until everything retired so far has been destroyed.
  void drain();

 private:
  void run();
  std::mutex mu_;
  std::condition_variable cv_;
  std::condition_variable idle_cv_;
  std::deque<std::function<void()>> queue_;
  bool busy_ = false;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace memlens::collect
