// One Chrome DevTools Protocol session over a WebSocket: commands with ids, answered in any order, and
// events, read by one thread so that an event that needs an answer at once (the target waiting for the
// debugger to disconnect as it exits) is handled while a long command is outstanding.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "common/result.h"
#include "inspector/websocket.h"

namespace memlens::inspector {

class CdpSession {
 public:
  using EventFn = std::function<void(const std::string& method, const nlohmann::json& params)>;
  // Starts reading. on_event runs on the reading thread: it must be quick.
  CdpSession(std::unique_ptr<WebSocket> ws, EventFn on_event);
  ~CdpSession();
  CdpSession(const CdpSession&) = delete;
  CdpSession& operator=(const CdpSession&) = delete;

  // Sends method(params) and waits for its answer's "result" (an "error" answer is an error value).
  Result<nlohmann::json> call(const std::string& method, const nlohmann::json& params, int timeout_ms);
  // Sends without waiting for the answer.
  Status send(const std::string& method, const nlohmann::json& params);
  // Closes the connection now (from any thread, the event callback included); pending calls fail.
  void disconnect();
  // Closes the connection `seconds` from now whatever is pending (from any thread).
  void disconnect_after(double seconds);
  bool connected() const { return !disconnected_; }
  // Why the connection ended, once it has.
  std::string end_reason() const;

  static constexpr size_t kMaxMessageBytes = size_t{512} << 20;

 private:
  struct Pending {
    bool done = false;
    Result<nlohmann::json> result = make_error("no answer");
  };
  void read_loop();

  std::unique_ptr<WebSocket> ws_;
  EventFn on_event_;
  std::atomic<bool> disconnected_{false};
  std::atomic<bool> stopping_{false};
  std::atomic<double> disconnect_at_{0};  // steady-clock seconds; 0: none
  mutable std::mutex mutex_;
  std::condition_variable answered_;
  std::map<int64_t, std::shared_ptr<Pending>> pending_;
  int64_t next_id_ = 1;
  std::string end_reason_;
  std::thread reader_;
};

}  // namespace memlens::inspector
