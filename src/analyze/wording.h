// The words of verdicts: how each category and figure is named in evidence and headlines, and how values,
// rates and durations are written there. Internal to analyze/; the verdict rules (verdicts.cpp) build
// their sentences from these.
#pragma once

#include <string>
#include <string_view>

#include "analyze/verdicts.h"

namespace memlens::analyze {

// What a verdict judges: heap used after GC, live backing stores, or resident bytes (the open count for
// fds and sockets).
enum class Basis { after_gc, live_buffers, resident };

std::string_view label(Category c);                  // headline labels: the words a Node developer uses
std::string_view basis_name(Category c, Basis b);    // report.json's "basis"
std::string_view figure(Category c, Basis b);        // the judged figure, as the evidence sentence names it
std::string_view short_figure(Category c, Basis b);  // the same figure in the fewest words, for headlines
std::string format_value(Category c, double v);      // bytes (common/units.h) or a count
std::string signed_value(Category c, double v);      // "+1.2 MiB", "-3"
std::string limit_phrase(Category c, double limit);  // "the 4.0 GiB heap limit"
std::string coarse_duration(double s);               // for headlines: "3 min"

}  // namespace memlens::analyze
