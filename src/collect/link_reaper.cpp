#include "collect/link_reaper.h"

#include <system_error>

namespace memlens::collect {

LinkReaper::~LinkReaper() {
  drain();
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  work_cv_.notify_all();
  for (auto& t : threads_) t.join();
}

void LinkReaper::retire(UprobeLink link) {
  std::vector<UprobeLink> one;
  one.push_back(std::move(link));
  retire(std::move(one));
}

void LinkReaper::retire(std::vector<UprobeLink> links) {
  if (links.empty()) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& l : links) queue_.push_back(std::move(l));
    start_threads_locked();
    if (threads_.empty()) {
      // No thread could be started: detach here rather than never.
      std::deque<UprobeLink> now = std::move(queue_);
      queue_.clear();
      return;  // `now` is destroyed (detached) on the way out, outside nothing but this call
    }
  }
  work_cv_.notify_all();
}

void LinkReaper::start_threads_locked() {
  while (threads_.size() < kMaxThreads && queue_.size() > idle_threads_) {
    try {
      threads_.emplace_back([this] { run(); });
      ++idle_threads_;  // counted idle until it takes work
    } catch (const std::system_error&) {
      return;
    }
  }
}

void LinkReaper::drain() {
  std::unique_lock<std::mutex> lock(mu_);
  idle_cv_.wait(lock, [this] { return queue_.empty() && busy_ == 0; });
}

void LinkReaper::run() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    work_cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping, nothing left
    UprobeLink link = std::move(queue_.front());
    queue_.pop_front();
    --idle_threads_;
    ++busy_;
    lock.unlock();
    link = UprobeLink();  // detaches: the wait for the grace periods happens here
    lock.lock();
    --busy_;
    ++idle_threads_;
    if (queue_.empty() && busy_ == 0) idle_cv_.notify_all();
  }
}

}  // namespace memlens::collect
