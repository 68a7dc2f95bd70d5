#include "collect/record_json.h"

#include <cmath>
#include <vector>

namespace memlens::collect {

bool safe_numbers(const nlohmann::json& j) {
  std::vector<const nlohmann::json*> pending = {&j};
  while (!pending.empty()) {
    const nlohmann::json* v = pending.back();
    pending.pop_back();
    if (v->is_number_float()) {
      double d = v->get<double>();
      if (!std::isfinite(d) || std::fabs(d) >= 2147483648.0) return false;
    } else if (v->is_structured()) {
      for (const auto& child : *v) pending.push_back(&child);
    }
  }
  return true;
}

std::string string_at(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

}  // namespace memlens::collect
