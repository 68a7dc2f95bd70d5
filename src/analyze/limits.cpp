// Time to the memory limit: the growing memory categories of a process projected to the limit that will
// OOM-kill it (its cgroup's effective limit, or the host's memory), counting everything that uses it.
// The choices and why are in docs/verdicts.md ("Time to the limit").
#include <fmt/format.h>

#include <algorithm>

#include "analyze/verdicts.h"
#include "analyze/wording.h"
#include "common/units.h"

namespace memlens::analyze {

std::string memory_limit_phrase(const MemoryLimit& limit) {
  if (limit.scope == MemoryLimit::Scope::host)
    return fmt::format("the host's {} of memory", format_bytes(limit.limit_bytes));
  return fmt::format("the {} memory limit of {}", format_bytes(limit.limit_bytes), limit.where);
}

namespace {

bool grows_memory(const Verdict& v) {
  return is_growing(v.kind) && !is_count_category(v.category) && v.rate_per_s > 0;
}

std::string rates_text(const std::vector<Verdict>& verdicts, const std::vector<Category>& growing) {
  std::string out;
  for (Category c : growing)
    for (const auto& v : verdicts)
      if (v.category == c && grows_memory(v))
        out += fmt::format("{}{} {}", out.empty() ? "" : ", ", category_name(c),
                           format_rate(v.rate_per_s, false));
  return out;
}

}  // namespace

void project_to_memory_limit(std::vector<Verdict>& verdicts, const MemoryLimit& limit) {
  if (limit.limit_bytes <= 0) return;
  // The categories add up to what the process takes from the limit: a Buffer leak and the JS heap growing
  // beside it reach the limit together, sooner than either alone.
  double combined = 0;
  std::vector<Category> growing;
  for (const auto& v : verdicts)
    if (grows_memory(v) && v.category != Category::rss) {
      combined += v.rate_per_s;
      growing.push_back(v.category);
    }
  double left = std::max(0.0, limit.limit_bytes - limit.usage_bytes);
  std::string phrase = memory_limit_phrase(limit);
  std::string short_phrase = limit.scope == MemoryLimit::Scope::host ? "host memory" : "memory limit";
  std::string used = fmt::format(
      "{} of it in use at the last sample{}, {} left", format_bytes(limit.usage_bytes),
      limit.scope == MemoryLimit::Scope::host ? " (MemTotal - MemAvailable)" : " by the whole cgroup",
      format_bytes(left));
  for (auto& v : verdicts) {
    // A growth that is part of another leak counts in the sum; the leak it belongs to carries the time.
    if (!grows_memory(v) || v.part_of) continue;
    // RSS is the process's total: its own rate, never added to the categories it is made of.
    bool own = v.category == Category::rss || combined <= 0;
    Verdict::LimitProjection p;
    p.limit = limit.scope == MemoryLimit::Scope::host ? "host" : "cgroup";
    p.limit_value = limit.limit_bytes;
    p.used_value = limit.usage_bytes;
    p.rate_per_s = own ? v.rate_per_s : combined;
    p.where = limit.where;
    p.growing = own ? std::vector<Category>{v.category} : growing;
    double seconds = left / p.rate_per_s;
    std::string rates =
        own ? fmt::format("{} {}", category_name(v.category), format_rate(v.rate_per_s, false))
            : rates_text(verdicts, growing);
    std::string eta = left <= 0 ? "it is already reached" : fmt::format("reached in {}", format_eta(seconds));
    if (v.seconds_to_limit && v.projection && *v.seconds_to_limit <= seconds) {
      // V8's heap limit comes first: it stays the verdict's time, the memory limit is said beside it.
      v.evidence += fmt::format("; {} comes later, in {} at the growth of {}: {}", phrase,
                                format_eta(seconds), rates, used);
      continue;
    }
    bool heap_later = v.seconds_to_limit.has_value();
    v.seconds_to_limit = seconds;
    v.projection = std::move(p);
    v.evidence += fmt::format("; {}at the growth of {}, {} is {}: {}", heap_later ? "sooner than that, " : "",
                              rates, phrase, eta, used);
    v.headline += left <= 0 ? fmt::format("; at the {}", short_phrase)
                            : fmt::format("; {} in {}", short_phrase, format_eta(seconds));
  }
}

}  // namespace memlens::analyze
