#include "inspector/websocket.h"

#include <fmt/format.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <optional>

namespace memlens::inspector {

namespace {

constexpr uint8_t kText = 0x1, kContinuation = 0x0, kClose = 0x8, kPing = 0x9, kPong = 0xA;

Status write_all(int fd, const char* p, size_t n) {
  while (n > 0) {
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      return errno_error("cannot write to the inspector");
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
  return {};
}

std::string base64(const unsigned char* data, size_t n) {
  static const char* tbl = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  for (size_t i = 0; i < n; i += 3) {
    uint32_t v = data[i] << 16;
    if (i + 1 < n) v |= data[i + 1] << 8;
    if (i + 2 < n) v |= data[i + 2];
    out += tbl[(v >> 18) & 63];
    out += tbl[(v >> 12) & 63];
    out += i + 1 < n ? tbl[(v >> 6) & 63] : '=';
    out += i + 2 < n ? tbl[v & 63] : '=';
  }
  return out;
}

// Reads up to the end of the HTTP headers; returns them, leaving what followed in `rest`.
Result<std::string> read_headers(int fd, std::string& rest, size_t max_bytes) {
  std::string buf;
  char chunk[4096];
  while (true) {
    auto end = buf.find("\r\n\r\n");
    if (end != std::string::npos) {
      rest = buf.substr(end + 4);
      return buf.substr(0, end + 4);
    }
    if (buf.size() > max_bytes) return make_error("the inspector's HTTP headers are too long");
    ssize_t r = recv(fd, chunk, sizeof(chunk), 0);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return errno_error("no HTTP answer from the inspector");
    if (r == 0) return make_error("the inspector closed the connection before answering", ECONNRESET);
    buf.append(chunk, static_cast<size_t>(r));
  }
}

}  // namespace

Result<std::string> http_get(int fd, const std::string& host, const std::string& path, size_t max_bytes) {
  std::string req = fmt::format("GET {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", path, host);
  if (auto s = write_all(fd, req.data(), req.size()); !s) return s.error();
  std::string body;
  auto headers = read_headers(fd, body, 64 << 10);
  if (!headers) return headers.error();
  if (headers->compare(0, 9, "HTTP/1.1 ") != 0 && headers->compare(0, 9, "HTTP/1.0 ") != 0)
    return make_error("not an HTTP answer");
  if (headers->compare(9, 3, "200") != 0)
    return make_error(fmt::format("HTTP status {}", headers->substr(9, 3)));
  std::optional<size_t> length;
  for (const char* name : {"Content-Length: ", "content-length: "})
    if (auto p = headers->find(name); p != std::string::npos)
      length = std::strtoul(headers->c_str() + p + 16, nullptr, 10);
  char chunk[4096];
  while ((!length || body.size() < *length) && body.size() <= max_bytes) {
    ssize_t r = recv(fd, chunk, sizeof(chunk), 0);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return errno_error("reading the inspector's HTTP answer");
    if (r == 0) break;
    body.append(chunk, static_cast<size_t>(r));
  }
  if (body.size() > max_bytes) return make_error("the inspector's HTTP answer is too long");
  if (length && body.size() > *length) body.resize(*length);
  return body;
}

Result<std::unique_ptr<WebSocket>> WebSocket::open(int fd, const std::string& host, const std::string& path) {
  std::unique_ptr<WebSocket> ws(new WebSocket(fd));
  unsigned char key[16];
  if (getrandom(key, sizeof(key), 0) != sizeof(key)) return errno_error("getrandom");
  std::string req = fmt::format(
      "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: "
      "{}\r\nSec-WebSocket-Version: 13\r\n\r\n",
      path, host, base64(key, sizeof(key)));
  if (auto s = write_all(fd, req.data(), req.size()); !s) return s.error();
  auto headers = read_headers(fd, ws->pending_, 64 << 10);
  if (!headers) return headers.error();
  if (headers->compare(0, 12, "HTTP/1.1 101") != 0)
    return make_error(fmt::format("the inspector refused the WebSocket upgrade: {}",
                                  headers->substr(0, headers->find('\r'))));
  return ws;
}

WebSocket::~WebSocket() {
  close();
  if (fd_ >= 0) ::close(fd_);
}

Status WebSocket::send_frame(uint8_t opcode, const std::string& payload) {
  std::string frame;
  frame += static_cast<char>(0x80 | opcode);
  size_t n = payload.size();
  if (n < 126) {
    frame += static_cast<char>(0x80 | n);
  } else if (n <= 0xFFFF) {
    frame += static_cast<char>(0x80 | 126);
    frame += static_cast<char>(n >> 8);
    frame += static_cast<char>(n & 0xFF);
  } else {
    frame += static_cast<char>(0x80 | 127);
    for (int i = 7; i >= 0; --i) frame += static_cast<char>((static_cast<uint64_t>(n) >> (8 * i)) & 0xFF);
  }
  unsigned char mask[4];
  if (getrandom(mask, sizeof(mask), 0) != sizeof(mask)) return errno_error("getrandom");
  frame.append(reinterpret_cast<char*>(mask), 4);
  size_t at = frame.size();
  frame += payload;
  for (size_t i = 0; i < n; ++i) frame[at + i] = static_cast<char>(frame[at + i] ^ mask[i % 4]);
  std::lock_guard<std::mutex> lock(send_mutex_);
  if (closed_) return make_error("the inspector connection is closed", ECONNRESET);
  return write_all(fd_, frame.data(), frame.size());
}

Status WebSocket::send_text(const std::string& text) {
  return send_frame(kText, text);
}

Status WebSocket::read_exact(char* buf, size_t n) {
  size_t from_pending = std::min(n, pending_.size());
  memcpy(buf, pending_.data(), from_pending);
  pending_.erase(0, from_pending);
  size_t got = from_pending;
  while (got < n) {
    ssize_t r = recv(fd_, buf + got, n - got, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        if (got == 0) return make_error("no message", EAGAIN);
        continue;  // inside a frame: keep reading
      }
      return errno_error("reading from the inspector");
    }
    if (r == 0) return make_error("the inspector closed the connection", ECONNRESET);
    got += static_cast<size_t>(r);
  }
  return {};
}

Result<std::string> WebSocket::receive(size_t max_bytes) {
  std::string message;
  while (true) {
    char head[2];
    if (auto s = read_exact(head, 2); !s) return s.error();
    uint8_t opcode = head[0] & 0x0F;
    bool fin = head[0] & 0x80;
    bool masked = head[1] & 0x80;
    uint64_t len = head[1] & 0x7F;
    if (len == 126 || len == 127) {
      unsigned char ext[8];
      size_t k = len == 126 ? 2 : 8;
      if (auto s = read_exact(reinterpret_cast<char*>(ext), k); !s) return s.error();
      len = 0;
      for (size_t i = 0; i < k; ++i) len = (len << 8) | ext[i];
    }
    unsigned char mask[4] = {};
    if (masked)
      if (auto s = read_exact(reinterpret_cast<char*>(mask), 4); !s) return s.error();
    if (len > max_bytes || message.size() + len > max_bytes)
      return make_error(fmt::format("an inspector message exceeds {} bytes", max_bytes), EMSGSIZE);
    std::string payload(len, '\0');
    if (len)
      if (auto s = read_exact(payload.data(), len); !s) return s.error();
    if (masked)
      for (size_t i = 0; i < len; ++i) payload[i] = static_cast<char>(payload[i] ^ mask[i % 4]);
    if (opcode == kPing) {
      (void)send_frame(kPong, payload);
      continue;
    }
    if (opcode == kPong) continue;
    if (opcode == kClose) return make_error("the inspector closed the connection", ECONNRESET);
    if (opcode != kText && opcode != kContinuation) continue;
    message += payload;
    if (fin) return message;
  }
}

void WebSocket::close() {
  {
    std::lock_guard<std::mutex> lock(send_mutex_);
    if (closed_ || fd_ < 0) return;
  }
  (void)send_frame(kClose, std::string("\x03\xe8", 2));
  std::lock_guard<std::mutex> lock(send_mutex_);
  closed_ = true;
  shutdown(fd_, SHUT_RDWR);
}

}  // namespace memlens::inspector
