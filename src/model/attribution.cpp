#include "model/attribution.h"

#include <sys/mman.h>

#include <algorithm>
#include <cctype>
#include <charconv>

namespace memlens::model {

namespace {

constexpr uint64_t kKiB = 1024;
constexpr uint64_t kMiB = 1024 * kKiB;
// glibc's per-thread malloc heaps are HEAP_MAX_SIZE (64 MiB on 64-bit) reservations aligned to their size,
// so that a chunk finds its heap by masking its address.
constexpr uint64_t kMallocHeapSize = 64 * kMiB;
// V8 allocates its heap in 256 KiB pages aligned to their size (MemoryChunk::kAlignment).
constexpr uint64_t kV8PageSize = 256 * kKiB;
// pthread guard pages: one page by default, at most what a program plausibly asks for.
constexpr uint64_t kMaxGuard = 64 * kKiB;

std::string_view basename_of(std::string_view path) {
  auto slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

std::string_view strip_deleted(std::string_view path) {
  constexpr std::string_view kDeleted = " (deleted)";
  if (path.size() > kDeleted.size() && path.substr(path.size() - kDeleted.size()) == kDeleted)
    path.remove_suffix(kDeleted.size());
  return path;
}

bool is_libc(std::string_view path) {
  auto b = basename_of(path);
  return b.starts_with("libc.so") || (b.starts_with("libc-") && b.ends_with(".so"));
}

bool is_libnode(std::string_view path) {
  return basename_of(path).starts_with("libnode.so");
}

bool in_any(const std::vector<AddressRange>& ranges, uint64_t ip) {
  for (const auto& r : ranges)
    if (r.contains(ip)) return true;
  return false;
}

bool is_anonymous_entry(const proc::MapEntry& e) {
  // Kernel pseudo names other than [heap]/[stack]/[vdso]... are names given to anonymous memory
  // ("[anon:...]" from prctl); an empty path is plain anonymous memory.
  return !e.is_file() && (e.path.empty() || e.path.front() == '[');
}

bool is_guard(const proc::MapEntry& e) {
  return is_anonymous_entry(e) && e.path.empty() && !e.read && !e.write && !e.exec && e.size() >= 4 * kKiB &&
         e.size() <= kMaxGuard;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

std::optional<uint64_t> parse_u64(std::string_view s) {
  s = trim(s);
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

}  // namespace

std::string_view category_name(Category c) {
  switch (c) {
    case Category::js_heap:
      return "js_heap";
    case Category::array_buffers:
      return "array_buffers";
    case Category::native_heap:
      return "native_heap";
    case Category::code:
      return "code";
    case Category::stacks:
      return "stacks";
    case Category::file_mapped:
      return "file_mapped";
    case Category::other_anon:
      return "other_anon";
  }
  return "other_anon";
}

std::string_view basis_name(Basis b) {
  switch (b) {
    case Basis::kKernel:
      return "kernel";
    case Basis::kCaller:
      return "caller";
    case Basis::kHeuristic:
      return "heuristic";
    case Basis::kFallback:
      return "fallback";
  }
  return "fallback";
}

bool CodeRanges::in_libc(uint64_t ip) const {
  return in_any(libc, ip);
}
bool CodeRanges::in_v8_host(uint64_t ip) const {
  return in_any(v8_host, ip);
}

bool looks_like_node(const std::string& exe) {
  auto b = basename_of(strip_deleted(exe));
  if (b == "node" || b == "nodejs") return true;
  if (!b.starts_with("node")) return false;
  // Versioned names: node20, node-20, node20.11
  auto rest = b.substr(4);
  return !rest.empty() && std::all_of(rest.begin(), rest.end(), [](char ch) {
    return std::isdigit(static_cast<unsigned char>(ch)) || ch == '.' || ch == '-' || ch == '_';
  });
}

CodeRanges CodeRanges::from_maps(const std::vector<proc::MapEntry>& maps, const std::string& exe,
                                 bool v8_host_exe) {
  CodeRanges r;
  auto exe_path = strip_deleted(exe);
  for (const auto& e : maps) {
    if (!e.is_file()) continue;
    auto path = strip_deleted(e.path);
    if (is_libc(path))
      r.libc.push_back({e.start, e.end});
    else if (is_libnode(path) || (v8_host_exe && !exe_path.empty() && path == exe_path))
      r.v8_host.push_back({e.start, e.end});
  }
  return r;
}

uint64_t Breakdown::total() const {
  uint64_t t = 0;
  for (auto v : bytes) t += v;
  return t;
}

std::optional<Category> classify_by_caller(const Mapping& m, const CodeRanges& code, bool v8_host) {
  // glibc creates every pthread stack with MAP_STACK; nothing else in a node process does.
  if (m.flags & MAP_STACK) return Category::stacks;
  if (m.origin == Origin::kBrk) return Category::native_heap;
  if (m.caller_ip == 0) return std::nullopt;
  // Called from inside the C library: malloc's sysmalloc (direct mmaps of large chunks) or new_heap
  // (a thread arena's 64 MiB heap). Stacks were caught above by their flag.
  if (code.in_libc(m.caller_ip)) return Category::native_heap;
  // Called from the binary that holds V8: its page allocator (heap pages; code pages are executable and
  // were classified as code before getting here).
  if (v8_host && code.in_v8_host(m.caller_ip)) return Category::js_heap;
  return Category::other_anon;
}

Category classify_by_shape(const std::vector<proc::SmapsEntry>& smaps, size_t i, bool v8_host) {
  const auto& e = smaps[i].map;
  // A pthread stack: a read-write region right above its guard page(s), sized in 64 KiB steps (glibc's
  // default is RLIMIT_STACK, 8 MiB, plus one guard page).
  if (i > 0) {
    const auto& prev = smaps[i - 1].map;
    if (prev.end == e.start && is_guard(prev) && e.size() >= 64 * kKiB &&
        (e.size() % (64 * kKiB) == 0 || (e.size() + prev.size()) % (64 * kKiB) == 0))
      return Category::stacks;
  }
  // A glibc thread-arena heap: read-write at the start of a 64 MiB-aligned reservation, the rest of the
  // reservation inaccessible until malloc grows into it.
  if (e.start % kMallocHeapSize == 0 && e.size() <= kMallocHeapSize) {
    bool whole = e.size() == kMallocHeapSize;
    bool with_reserve = false;
    if (i + 1 < smaps.size()) {
      const auto& next = smaps[i + 1].map;
      with_reserve = next.start == e.end && is_anonymous_entry(next) && !next.read && !next.write &&
                     !next.exec && e.size() + next.size() <= kMallocHeapSize;
    }
    if (whole || with_reserve) return Category::native_heap;
  }
  // A V8 heap page (or run of pages): 256 KiB-aligned.
  if (v8_host && e.start % kV8PageSize == 0) return Category::js_heap;
  return Category::other_anon;
}

Breakdown attribute(const AttributionInput& in) {
  Breakdown b;
  if (!in.smaps) return b;
  const auto& smaps = *in.smaps;
  std::vector<Mapping> model;
  if (in.model) model = in.model->mappings();
  size_t mi = 0;

  auto add = [&](Category c, Basis basis, uint64_t bytes) {
    b[c] += bytes;
    b.bytes_by_basis[static_cast<size_t>(basis)] += bytes;
  };

  for (size_t i = 0; i < smaps.size(); ++i) {
    const auto& s = smaps[i];
    const auto& e = s.map;
    ++b.mappings;
    b.smaps_rss_bytes += s.rss;
    while (mi < model.size() && model[mi].end <= e.start) ++mi;
    // Entries with nothing resident add no bytes, but V8's committed heap pages count in heapTotal
    // whether touched or not: read-write anonymous data is classified anyway, for js_heap_mapped_bytes.
    bool mapped_only = s.rss == 0;
    // V8's code space (anonymous executable pages) is committed heap too; its resident pages are `code`.
    if (in.v8_host && is_anonymous_entry(e) && e.exec && e.path.empty()) b.js_heap_mapped_bytes += e.size();
    if (mapped_only && !(is_anonymous_entry(e) && !e.exec && e.write && e.path.empty())) continue;

    if (e.path == "[stack]") {
      add(Category::stacks, Basis::kKernel, s.rss);
      continue;
    }
    if (e.path == "[heap]") {
      add(Category::native_heap, Basis::kKernel, s.rss);
      continue;
    }
    if (!is_anonymous_entry(e)) {
      // File-backed (including shared memory files): code when executable.
      add(e.exec ? Category::code : Category::file_mapped, Basis::kKernel, s.rss);
      continue;
    }
    if (e.exec) {
      // JIT code (V8's code space) and [vdso].
      add(Category::code, Basis::kKernel, s.rss);
      continue;
    }

    // Anonymous data: split the entry by the model's mappings (the kernel merges adjacent anonymous
    // mappings with the same protection into one entry, whoever created them). Resident bytes are
    // shared out in proportion to each piece's size: smaps gives one figure per entry.
    struct Piece {
      Category c;
      Basis basis;
      uint64_t bytes;
    };
    std::vector<Piece> pieces;
    std::optional<Category> shape;
    auto by_shape = [&](uint64_t bytes) {
      if (!shape) shape = classify_by_shape(smaps, i, in.v8_host);
      pieces.push_back(
          {*shape, *shape == Category::other_anon ? Basis::kFallback : Basis::kHeuristic, bytes});
    };
    uint64_t cursor = e.start;
    for (size_t j = mi; j < model.size() && model[j].start < e.end; ++j) {
      uint64_t a = std::max(model[j].start, e.start);
      uint64_t z = std::min(model[j].end, e.end);
      if (z <= a) continue;
      if (a > cursor) by_shape(a - cursor);
      if (auto c = classify_by_caller(model[j], in.code, in.v8_host))
        pieces.push_back({*c, Basis::kCaller, z - a});
      else
        by_shape(z - a);
      cursor = z;
    }
    if (cursor < e.end) by_shape(e.end - cursor);

    // Committed V8 pages: the whole size of the mappings seen created by V8 (caller); of a region memlens
    // did not see created (attach), its shape says too little for the untouched part to count: only
    // its resident share does (an 8 MiB thread stack that happens to be 256 KiB-aligned would add 8 MiB).
    bool count_mapped = e.write;
    if (count_mapped)
      for (const auto& piece : pieces)
        if (piece.c == Category::js_heap && piece.basis == Basis::kCaller)
          b.js_heap_mapped_bytes += piece.bytes;
    if (mapped_only) continue;
    uint64_t size = e.size();
    uint64_t given = 0;
    for (size_t k = 0; k < pieces.size(); ++k) {
      uint64_t share =
          k + 1 == pieces.size()
              ? s.rss - given
              : static_cast<uint64_t>(static_cast<unsigned __int128>(s.rss) * pieces[k].bytes / size);
      given += share;
      add(pieces[k].c, pieces[k].basis, share);
      if (count_mapped && pieces[k].c == Category::js_heap && pieces[k].basis != Basis::kCaller)
        b.js_heap_mapped_bytes += share;
    }
  }

  // Backing stores come from malloc (Node's ArrayBuffer allocator calls calloc/malloc; glibc serves large
  // ones with direct mmaps from inside libc), so they are carved out of the native heap.
  b.native_heap_resident_bytes = b[Category::native_heap];
  if (in.array_buffer_live_bytes) {
    uint64_t ab = std::min(*in.array_buffer_live_bytes, b[Category::native_heap]);
    b[Category::array_buffers] += ab;
    b[Category::native_heap] -= ab;
  }
  return b;
}

Reconciled reconcile(const Breakdown& b, uint64_t rss_bytes) {
  Reconciled r;
  r.breakdown = b;
  r.rss_bytes = rss_bytes;
  uint64_t sum = b.total();
  if (rss_bytes >= sum)
    r.unexplained_bytes = rss_bytes - sum;
  else
    r.overshoot_bytes = sum - rss_bytes;
  return r;
}

std::optional<uint64_t> parse_nofile_soft_limit(std::string_view text) {
  constexpr std::string_view kKey = "Max open files";
  auto at = text.find(kKey);
  if (at == std::string_view::npos) return std::nullopt;
  auto rest = text.substr(at + kKey.size());
  rest = rest.substr(0, rest.find('\n'));
  rest = trim(rest);
  auto sp = rest.find_first_of(" \t");
  auto soft = rest.substr(0, sp);
  if (soft == "unlimited") return std::nullopt;
  return parse_u64(soft);
}

OomKillSeenBy oom_kill_seen_by(const OomCounters& before, const OomCounters& after) {
  if (before.cgroup && after.cgroup)
    return *after.cgroup > *before.cgroup ? OomKillSeenBy::kCgroup : OomKillSeenBy::kNone;
  if (before.host && after.host && *after.host > *before.host) return OomKillSeenBy::kHost;
  return OomKillSeenBy::kNone;
}

}  // namespace memlens::model
