#include "model/loss.h"

namespace memlens::model {

void UntracedTime::begin(const std::string& what, double now_s, const std::string& reason) {
  if (reasons_.insert(reason).second) reason_order_ += (reason_order_.empty() ? "" : "; ") + reason;
  if (open_.count(what)) return;
  if (open_.empty()) open_since_s_ = now_s;
  open_.insert(what);
}

void UntracedTime::end(const std::string& what, double now_s) {
  if (!open_.erase(what)) return;
  if (open_.empty() && now_s > open_since_s_) closed_s_ += now_s - open_since_s_;
}

void UntracedTime::end_all(double now_s) {
  if (open_.empty()) return;
  open_.clear();
  if (now_s > open_since_s_) closed_s_ += now_s - open_since_s_;
}

void UntracedTime::add(double d_s, const std::string& reason) {
  if (reasons_.insert(reason).second) reason_order_ += (reason_order_.empty() ? "" : "; ") + reason;
  if (d_s > 0) closed_s_ += d_s;
}

double UntracedTime::seconds(double now_s) const {
  double s = closed_s_;
  if (!open_.empty() && now_s > open_since_s_) s += now_s - open_since_s_;
  return s;
}

std::string UntracedTime::reason() const {
  return reason_order_;
}

}  // namespace memlens::model
