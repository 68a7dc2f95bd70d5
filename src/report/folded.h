// Brendan Gregg's folded stack format: one line per distinct stack, "root;caller;...;leaf value", the input
// of flamegraph.pl, inferno, speedscope and most flame-graph tools. Values are the profile's first
// (default) sample type.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "symbolize/stack_profile.h"

namespace memlens::report {

// Returns s with every invalid UTF-8 sequence replaced by U+FFFD. Names come from the traced process
// (symbol tables, perf maps) and may hold any bytes; every writer emits valid UTF-8.
std::string valid_utf8(std::string_view s);

// The label of a frame as written in a folded line: Frame::label(), valid UTF-8, with ';' (the frame
// separator) replaced by ':' and control characters (a newline would end the line) by ' '. An empty
// label becomes "[unknown]".
std::string folded_label(const symbolize::Frame& frame);

// The folded text of a profile: equal stacks (after labelling) merged across samples and processes,
// lines sorted, stacks whose merged value is not positive left out (folded tools expect counts). A
// sample with an empty stack is written as the single frame "[no stack]".
std::string render_folded(const symbolize::StackProfile& profile);

// Writes <dir>/<kind>.folded atomically.
Status write_folded(const std::string& dir, const symbolize::StackProfile& profile);

struct FoldedLine {
  std::vector<std::string> frames;  // root first
  int64_t value = 0;
};

// Parses folded text: the value follows the last space of a line, frames are separated by ';'. Empty
// lines are skipped; a line without a valid integer value is an error naming its line number.
Result<std::vector<FoldedLine>> parse_folded(std::string_view text);

}  // namespace memlens::report
