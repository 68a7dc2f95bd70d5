#include "node/heap_limit.h"

#include <charconv>

#include "common/text.h"

namespace memlens::node {

namespace {

constexpr uint64_t kMiB = 1024 * 1024;

// "--max-old-space-size" or "--max_old_space_size": node accepts either spelling of V8 flags.
bool is_limit_flag(std::string_view name) {
  return name == "--max-old-space-size" || name == "--max_old_space_size";
}

std::optional<uint64_t> parse_mb(std::string_view v) {
  uint64_t mb = 0;
  auto r = std::from_chars(v.data(), v.data() + v.size(), mb);
  if (r.ec != std::errc() || r.ptr != v.data() + v.size() || mb == 0 || mb > (UINT64_MAX / kMiB))
    return std::nullopt;
  return mb * kMiB;
}

// Scans options in order, keeping the last limit; stops at the first non-option when `stop_at_script`.
void scan(const std::vector<std::string_view>& args, bool stop_at_script, std::optional<uint64_t>& limit) {
  for (size_t i = 0; i < args.size(); ++i) {
    std::string_view a = args[i];
    if (a == "--") return;
    if (a.empty() || a[0] != '-') {
      if (stop_at_script) return;
      continue;
    }
    std::string_view name = a.substr(0, a.find('='));
    if (!is_limit_flag(name)) continue;
    if (name.size() < a.size()) {
      if (auto v = parse_mb(a.substr(name.size() + 1))) limit = v;
    } else if (i + 1 < args.size()) {
      if (auto v = parse_mb(args[i + 1])) limit = v;
      ++i;
    }
  }
}

}  // namespace

std::optional<uint64_t> heap_limit_from_flags(const std::vector<std::string>& argv,
                                              std::string_view node_options) {
  std::optional<uint64_t> limit;
  scan(split_ws(node_options), false, limit);
  std::vector<std::string_view> args;
  for (size_t k = 1; k < argv.size(); ++k) args.push_back(argv[k]);
  scan(args, true, limit);
  return limit;
}

}  // namespace memlens::node
