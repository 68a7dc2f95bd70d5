// The order verdicts are shown in (order_by_importance in verdicts.h says which).
#include <algorithm>
#include <limits>

#include "analyze/verdicts.h"

namespace memlens::analyze {
namespace {

int kind_rank(VerdictKind k) {
  switch (k) {
    case VerdictKind::leak_suspected:
      return 0;
    case VerdictKind::growth_unconfirmed:
      return 1;
    case VerdictKind::retained_not_leak:
      return 2;
    case VerdictKind::growth_then_plateau:
      return 3;
    case VerdictKind::stable:
      return 4;
  }
  return 5;
}

// Within suspected leaks: specific memory categories say the most, then handles, then the total.
int leak_group(Category c) {
  if (c == Category::rss) return 2;
  if (is_count_category(c)) return 1;
  return 0;
}

}  // namespace

bool is_growing(VerdictKind k) {
  return k == VerdictKind::leak_suspected || k == VerdictKind::growth_unconfirmed;
}

void order_by_importance(std::vector<Verdict>& verdicts) {
  static constexpr double kNoLimit = std::numeric_limits<double>::infinity();
  std::stable_sort(verdicts.begin(), verdicts.end(), [](const Verdict& a, const Verdict& b) {
    int ka = kind_rank(a.kind), kb = kind_rank(b.kind);
    if (ka != kb) return ka < kb;
    if (a.kind == VerdictKind::leak_suspected) {
      // The total only repeats what a category says, so it goes last whatever its limit.
      bool ra = a.category == Category::rss, rb = b.category == Category::rss;
      if (ra != rb) return rb;
      double la = a.seconds_to_limit.value_or(kNoLimit), lb = b.seconds_to_limit.value_or(kNoLimit);
      if (la != lb) return la < lb;
      int ga = leak_group(a.category), gb = leak_group(b.category);
      if (ga != gb) return ga < gb;
      return a.rate_per_s > b.rate_per_s;
    }
    if (a.kind == VerdictKind::growth_unconfirmed) {
      bool ra = a.category == Category::rss, rb = b.category == Category::rss;
      if (ra != rb) return rb;
      return a.rate_per_s > b.rate_per_s;
    }
    if (a.kind == VerdictKind::retained_not_leak) {
      // The total first: it is the figure the user came with.
      bool ra = a.category == Category::rss, rb = b.category == Category::rss;
      if (ra != rb) return ra;
      return false;
    }
    if (a.kind == VerdictKind::growth_then_plateau) {
      return (a.end_value - a.start_value) > (b.end_value - b.start_value);
    }
    return static_cast<int>(a.category) < static_cast<int>(b.category);
  });
  // A growth that is part of another leak follows that leak directly.
  std::vector<Verdict> companions;
  for (auto it = verdicts.begin(); it != verdicts.end();) {
    if (it->part_of) {
      companions.push_back(std::move(*it));
      it = verdicts.erase(it);
    } else {
      ++it;
    }
  }
  for (auto& c : companions) {
    auto parent = std::find_if(verdicts.begin(), verdicts.end(), [&](const Verdict& v) {
      return v.category == *c.part_of && is_growing(v.kind) && !v.part_of;
    });
    auto at = parent == verdicts.end() ? verdicts.end() : parent + 1;
    while (at != verdicts.end() && at->part_of == c.part_of) ++at;  // after earlier companions
    verdicts.insert(at, std::move(c));
  }
}

}  // namespace memlens::analyze
