#include "analyze/wording.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>

#include "common/units.h"

namespace memlens::analyze {
namespace {

constexpr std::array<std::string_view, kCategoryCount> kCategoryNames = {
    "js_heap",     "array_buffers", "native_heap", "code", "stacks",
    "file_mapped", "other_anon",    "rss",         "fds",  "sockets"};

}  // namespace

// Headline labels: the words a Node developer uses for each figure.
std::string_view label(Category c) {
  switch (c) {
    case Category::js_heap:
      return "JS heap";
    case Category::array_buffers:
      return "Buffers (ArrayBuffer memory)";
    case Category::native_heap:
      return "Native heap (malloc)";
    case Category::code:
      return "Code (JIT and executables)";
    case Category::stacks:
      return "Thread stacks";
    case Category::file_mapped:
      return "File-backed memory";
    case Category::other_anon:
      return "Other anonymous memory";
    case Category::rss:
      return "RSS";
    case Category::fds:
      return "File descriptors";
    case Category::sockets:
      return "Sockets";
  }
  return "?";
}

std::string_view basis_name(Category c, Basis b) {
  if (b == Basis::after_gc) return "heap_used_after_gc";
  if (b == Basis::live_buffers) return "live_backing_store_bytes";
  return is_count_category(c) ? "open_count" : "resident_bytes";
}

// The judged figure, as the evidence sentence names it.
std::string_view figure(Category c, Basis b) {
  if (b == Basis::after_gc) return "heap used after GC";
  if (b == Basis::live_buffers) return "live ArrayBuffer/Buffer memory";
  switch (c) {
    case Category::js_heap:
      return "V8 heap resident pages";
    case Category::array_buffers:
      return "ArrayBuffer resident memory";
    case Category::native_heap:
      return "native heap resident memory";
    case Category::code:
      return "code resident memory";
    case Category::stacks:
      return "thread stack resident memory";
    case Category::file_mapped:
      return "file-backed resident memory";
    case Category::other_anon:
      return "other anonymous resident memory";
    case Category::rss:
      return "RSS";
    case Category::fds:
      return "open file descriptors";
    case Category::sockets:
      return "open sockets";
  }
  return "?";
}

// The same figure in the fewest words, for headlines.
std::string_view short_figure(Category c, Basis b) {
  if (b == Basis::after_gc) return "heap used after GC";
  if (b == Basis::live_buffers) return "live buffers";
  switch (c) {
    case Category::rss:
      return "RSS";
    case Category::fds:
      return "open fds";
    case Category::sockets:
      return "open sockets";
    default:
      return "resident";
  }
}

std::string format_value(Category c, double v) {
  if (is_count_category(c)) return fmt::format("{:.0f}", v);
  return format_bytes(v);
}

std::string signed_value(Category c, double v) {
  return (v < 0 ? "-" : "+") + format_value(c, std::fabs(v));
}

std::string limit_phrase(Category c, double limit) {
  switch (c) {
    case Category::js_heap:
      return fmt::format("the {} heap limit", format_bytes(limit));
    case Category::rss:
      return fmt::format("the {} cgroup memory limit", format_bytes(limit));
    case Category::fds:
    case Category::sockets:
      return fmt::format("the {:.0f} open-file limit (RLIMIT_NOFILE)", limit);
    default:
      return fmt::format("the {} limit", format_value(c, limit));
  }
}

// Coarse duration for headlines ("3 min").
std::string coarse_duration(double s) {
  return format_eta(s);
}

std::string_view category_name(Category c) {
  return kCategoryNames[static_cast<size_t>(c)];
}

std::optional<Category> parse_category(std::string_view name) {
  for (size_t i = 0; i < kCategoryCount; ++i)
    if (kCategoryNames[i] == name) return static_cast<Category>(i);
  return std::nullopt;
}

bool is_count_category(Category c) {
  return c == Category::fds || c == Category::sockets;
}

std::string_view rate_unit(Category c) {
  return is_count_category(c) ? "count/s" : "bytes/s";
}

std::string_view kind_name(VerdictKind k) {
  switch (k) {
    case VerdictKind::leak_suspected:
      return "leak_suspected";
    case VerdictKind::growth_unconfirmed:
      return "growth_unconfirmed";
    case VerdictKind::growth_then_plateau:
      return "growth_then_plateau";
    case VerdictKind::retained_not_leak:
      return "retained_not_leak";
    case VerdictKind::stable:
      return "stable";
  }
  return "?";
}

std::string format_duration(double seconds) {
  long s = std::lround(std::max(seconds, 0.0));
  if (s < 60) return fmt::format("{}s", s);
  if (s < 3600) return fmt::format("{}m{:02}s", s / 60, s % 60);
  return fmt::format("{}h{:02}m", s / 3600, (s % 3600) / 60);
}

std::string format_eta(double seconds) {
  double s = std::max(seconds, 0.0);
  if (!std::isfinite(s)) return "never";
  if (s < 120) return fmt::format("{:.0f} s", s);
  if (s < 2 * 3600) return fmt::format("{:.0f} min", s / 60);
  if (s < 48 * 3600) return fmt::format("{:.0f} h", s / 3600);
  return fmt::format("{:.0f} days", s / 86400);
}

std::string format_rate(double per_s, bool count) {
  const char* sign = per_s < 0 ? "-" : "+";
  double a = std::fabs(per_s);
  if (count) {
    if (a >= 1) return fmt::format("{}{:.1f}/s", sign, a);
    return fmt::format("{}{:.1f}/min", sign, a * 60);
  }
  // Per minute reads naturally for leaks (MB/min); past 10 MB/s per second is clearer.
  if (a >= 10.0 * 1024 * 1024) return fmt::format("{}{}/s", sign, format_bytes(a));
  return fmt::format("{}{}/min", sign, format_bytes(a * 60));
}

}  // namespace memlens::analyze
