#include "inspector/cdp.h"

#include <fmt/format.h>

#include <chrono>

namespace memlens::inspector {

CdpSession::CdpSession(std::unique_ptr<WebSocket> ws, EventFn on_event)
    : ws_(std::move(ws)), on_event_(std::move(on_event)) {
  reader_ = std::thread([this]() { read_loop(); });
}

CdpSession::~CdpSession() {
  stopping_ = true;
  disconnect();
  if (reader_.joinable()) reader_.join();
}

namespace {
double steady_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
}  // namespace

void CdpSession::disconnect_after(double seconds) {
  disconnect_at_ = steady_s() + seconds;
}

void CdpSession::read_loop() {
  while (!stopping_) {
    if (double at = disconnect_at_; at > 0 && steady_s() >= at) {
      disconnect();
      std::lock_guard<std::mutex> lock(mutex_);
      if (end_reason_.empty()) end_reason_ = "closed on schedule";
      break;
    }
    auto msg = ws_->receive(kMaxMessageBytes);
    if (!msg) {
      if (msg.error().errno_value == EAGAIN && !disconnected_) continue;
      std::lock_guard<std::mutex> lock(mutex_);
      if (end_reason_.empty()) end_reason_ = msg.error().describe();
      break;
    }
    nlohmann::json j = nlohmann::json::parse(*msg, nullptr, false);
    if (j.is_discarded() || !j.is_object()) continue;
    if (auto id = j.find("id"); id != j.end() && id->is_number_integer()) {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = pending_.find(id->get<int64_t>());
      if (it == pending_.end()) continue;
      if (auto err = j.find("error"); err != j.end())
        it->second->result =
            make_error(fmt::format("inspector error: {}", err->value("message", err->dump())));
      else
        it->second->result = j.value("result", nlohmann::json::object());
      it->second->done = true;
      pending_.erase(it);
      answered_.notify_all();
      continue;
    }
    if (auto m = j.find("method"); m != j.end() && m->is_string() && on_event_)
      on_event_(m->get<std::string>(), j.value("params", nlohmann::json::object()));
  }
  disconnected_ = true;
  std::lock_guard<std::mutex> lock(mutex_);
  for (auto& [id, p] : pending_) {
    p->done = true;
    p->result = make_error("the inspector connection closed", ECONNRESET);
  }
  pending_.clear();
  answered_.notify_all();
}

Status CdpSession::send(const std::string& method, const nlohmann::json& params) {
  int64_t id;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    id = next_id_++;
  }
  nlohmann::json msg = {{"id", id}, {"method", method}, {"params", params}};
  return ws_->send_text(msg.dump());
}

Result<nlohmann::json> CdpSession::call(const std::string& method, const nlohmann::json& params,
                                        int timeout_ms) {
  if (disconnected_) return make_error("the inspector connection is closed", ECONNRESET);
  auto p = std::make_shared<Pending>();
  int64_t id;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    id = next_id_++;
    pending_[id] = p;
  }
  nlohmann::json msg = {{"id", id}, {"method", method}, {"params", params}};
  if (auto s = ws_->send_text(msg.dump()); !s) {
    std::lock_guard<std::mutex> lock(mutex_);
    pending_.erase(id);
    return s.error();
  }
  std::unique_lock<std::mutex> lock(mutex_);
  if (!answered_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&]() { return p->done; })) {
    pending_.erase(id);
    return make_error(fmt::format("the inspector did not answer {} within {} ms", method, timeout_ms),
                      ETIMEDOUT);
  }
  return p->result;
}

void CdpSession::disconnect() {
  ws_->close();
  disconnected_ = true;
}

std::string CdpSession::end_reason() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return end_reason_;
}

}  // namespace memlens::inspector
