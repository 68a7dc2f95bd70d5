#include "report/folded.h"

#include <algorithm>
#include <charconv>
#include <map>

#include "common/safe_file.h"

namespace memlens::report {

std::string valid_utf8(std::string_view s) {
  static constexpr std::string_view kReplacement = "\xEF\xBF\xBD";
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      out.push_back(static_cast<char>(c));
      ++i;
      continue;
    }
    // Sequence length and the range of the second byte (which excludes overlong forms, surrogates and
    // code points above U+10FFFF), per RFC 3629's table.
    size_t len = 0;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    }
    bool ok = len != 0 && i + len <= s.size();
    for (size_t k = 1; ok && k < len; ++k) {
      const auto b = static_cast<unsigned char>(s[i + k]);
      const unsigned char min = k == 1 ? lo : 0x80, max = k == 1 ? hi : 0xBF;
      ok = b >= min && b <= max;
    }
    if (ok) {
      out.append(s.substr(i, len));
      i += len;
    } else {
      out.append(kReplacement);
      ++i;  // resynchronise on the next byte
    }
  }
  return out;
}

std::string folded_label(const symbolize::Frame& frame) {
  std::string label = valid_utf8(frame.label());
  for (char& ch : label) {
    const auto c = static_cast<unsigned char>(ch);
    if (ch == ';') {
      ch = ':';
    } else if (c < 0x20 || c == 0x7F) {
      ch = ' ';
    }
  }
  if (label.empty()) label = "[unknown]";
  return label;
}

std::string render_folded(const symbolize::StackProfile& profile) {
  // std::map keeps the lines sorted, which makes the file deterministic and diffable.
  std::map<std::string, int64_t> merged;
  std::string key;
  for (const symbolize::StackSample& sample : profile.samples) {
    if (sample.values.empty()) continue;
    key.clear();
    for (const symbolize::Frame& frame : sample.stack) {
      if (!key.empty()) key.push_back(';');
      key += folded_label(frame);
    }
    if (key.empty()) key = "[no stack]";
    merged[key] += sample.values[0];
  }
  std::string out;
  for (const auto& [stack, value] : merged) {
    if (value <= 0) continue;
    out += stack;
    out.push_back(' ');
    out += std::to_string(value);
    out.push_back('\n');
  }
  return out;
}

Status write_folded(const std::string& dir, const symbolize::StackProfile& profile) {
  return write_file_atomic(dir + "/" + profile.kind + ".folded", render_folded(profile));
}

Result<std::vector<FoldedLine>> parse_folded(std::string_view text) {
  std::vector<FoldedLine> lines;
  size_t line_no = 0;
  while (!text.empty()) {
    ++line_no;
    const size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;

    const size_t space = line.rfind(' ');
    if (space == std::string_view::npos || space == 0) {
      return make_error("folded line " + std::to_string(line_no) + ": no stack and value");
    }
    const std::string_view value = line.substr(space + 1);
    FoldedLine parsed;
    const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), parsed.value);
    if (ec != std::errc() || end != value.data() + value.size()) {
      return make_error("folded line " + std::to_string(line_no) + ": bad value '" + std::string(value) +
                        "'");
    }
    std::string_view stack = line.substr(0, space);
    while (true) {
      const size_t sep = stack.find(';');
      parsed.frames.emplace_back(stack.substr(0, sep));
      if (sep == std::string_view::npos) break;
      stack.remove_prefix(sep + 1);
    }
    lines.push_back(std::move(parsed));
  }
  return lines;
}

}  // namespace memlens::report
