// A minimal WebSocket client (RFC 6455) over a socket that is already connected, which is what reaching an
// inspector inside another network namespace gives: text messages out (masked, as a client must), text
// messages in (unmasked, possibly fragmented), ping answered, close. Plus the one HTTP GET the inspector's
// target list needs. Every message is bounded; nothing here blocks longer than the socket's timeouts.
#pragma once

#include <cstddef>
#include <memory>
#include <mutex>
#include <string>

#include "common/result.h"

namespace memlens::inspector {

// GET path over fd (Connection: close); returns the body. Bounded to max_bytes.
Result<std::string> http_get(int fd, const std::string& host, const std::string& path, size_t max_bytes);

class WebSocket {
 public:
  // Takes ownership of fd and performs the opening handshake for path.
  static Result<std::unique_ptr<WebSocket>> open(int fd, const std::string& host, const std::string& path);
  ~WebSocket();
  WebSocket(const WebSocket&) = delete;
  WebSocket& operator=(const WebSocket&) = delete;

  // Thread-safe against receive() on another thread.
  Status send_text(const std::string& text);
  // The next text message. A timeout returns EAGAIN; the peer closing returns ECONNRESET.
  Result<std::string> receive(size_t max_bytes);
  // Sends a close frame (best effort) and shuts the socket down, waking a thread blocked in receive().
  void close();
  int fd() const { return fd_; }

 private:
  explicit WebSocket(int fd) : fd_(fd) {}
  Status send_frame(uint8_t opcode, const std::string& payload);
  Status read_exact(char* buf, size_t n);
  int fd_ = -1;
  std::mutex send_mutex_;
  std::string pending_;  // bytes read past the handshake
  bool closed_ = false;
};

}  // namespace memlens::inspector
