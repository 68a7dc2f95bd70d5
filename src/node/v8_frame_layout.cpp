#include "node/v8_frame_layout.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <mutex>
#include <string_view>

#include "common/safe_file.h"
#include "elf/elf_file.h"

namespace memlens::node {

namespace {

constexpr std::string_view kPrefix = "v8dbg_";
constexpr std::string_view kBuiltinsPrefix = "Builtins_";

// The v8dbg_* constants of a binary: each is a 32-bit integer in its data (those equal to zero in .bss).
class Metadata {
 public:
  explicit Metadata(const elf::ElfFile& elf) : elf_(elf) {
    for (const auto& s : elf.find_symbols_with_prefix(kPrefix))
      if (auto v = read_u32(s.address))
        values_.emplace(s.name.substr(kPrefix.size()), static_cast<int32_t>(*v));
  }
  bool empty() const { return values_.empty(); }

  // The value of the first of names present (several names: the field's type suffix changed across V8
  // versions, e.g. name_or_scope_info__Object / __Tagged_Object_). A name ending in "__" matches any
  // suffix.
  std::optional<int32_t> get(std::initializer_list<std::string_view> names) const {
    for (auto name : names) {
      if (name.ends_with("__")) {
        auto it = values_.lower_bound(std::string(name));
        if (it != values_.end() && std::string_view(it->first).starts_with(name)) return it->second;
      } else if (auto it = values_.find(std::string(name)); it != values_.end()) {
        return it->second;
      }
    }
    return std::nullopt;
  }

  std::optional<uint64_t> read_u32(uint64_t vaddr) const {
    for (const auto& seg : elf_.load_segments()) {
      if (vaddr < seg.vaddr || vaddr + 4 > seg.vaddr + seg.memsz) continue;
      uint64_t in = vaddr - seg.vaddr;
      if (in + 4 > seg.filesz) return 0;  // .bss: zero-initialized
      auto bytes = elf_.read_at(seg.file_offset + in, 4);
      if (!bytes.ok() || bytes->size() != 4) return std::nullopt;
      uint32_t v;
      std::memcpy(&v, bytes->data(), 4);
      return v;
    }
    return std::nullopt;
  }

 private:
  const elf::ElfFile& elf_;
  std::map<std::string, int32_t, std::less<>> values_;
};

struct Missing {
  std::vector<std::string> names;
  void add(std::string_view n) { names.emplace_back(fmt::format("v8dbg_{}", n)); }
};

template <typename T>
T need(const Metadata& md, Missing& missing, std::initializer_list<std::string_view> names) {
  auto v = md.get(names);
  if (!v) {
    missing.add(*names.begin());
    return T{};
  }
  return static_cast<T>(*v);
}

std::optional<uint32_t> maybe(const Metadata& md, std::initializer_list<std::string_view> names) {
  auto v = md.get(names);
  if (!v || *v <= 0) return std::nullopt;
  return static_cast<uint32_t>(*v);
}

}  // namespace

Result<V8FrameLayout> read_v8_frame_layout(const elf::ElfFile& elf) {
  elf.prefetch({}, {std::string(kPrefix), std::string(kBuiltinsPrefix)});
  Metadata md(elf);
  if (md.empty()) return make_error("the binary carries no V8 postmortem metadata (no v8dbg_* symbols)");

  // Tagging as these reads assume it: full 64-bit pointers (no pointer compression), heap objects tagged 1
  // in the low two bits, Smis with a 0 low bit.
  struct Expected {
    std::string_view name;
    int32_t value;
  };
  for (auto [name, value] : {Expected{"HeapObjectTag", 1}, Expected{"HeapObjectTagMask", 3},
                             Expected{"SmiTagMask", 1}, Expected{"SmiTag", 0}, Expected{"TaggedSize", 8}}) {
    auto v = md.get({name});
    if (!v) return make_error(fmt::format("the V8 metadata lacks v8dbg_{}", name));
    if (*v != value)
      return make_error(fmt::format("v8dbg_{} is {} where {} is understood{}", name, *v, value,
                                    name == "TaggedSize" ? " (pointer compression)" : ""));
  }

  Missing missing;
  V8FrameLayout l;
  l.off_fp_function = need<int32_t>(md, missing, {"off_fp_function"});
  l.off_fp_context = need<int32_t>(md, missing, {"off_fp_context_or_frame_type", "off_fp_context"});
  l.heap_object_map = need<uint32_t>(md, missing, {"class_HeapObject__map__Map"});
  l.map_instance_type = need<uint32_t>(md, missing, {"class_Map__instance_type__uint16_t"});
  l.function_shared = need<uint32_t>(md, missing, {"class_JSFunction__shared__SharedFunctionInfo"});
  l.sfi_name_or_scope_info = need<uint32_t>(md, missing, {"class_SharedFunctionInfo__name_or_scope_info__"});
  l.sfi_script = need<uint32_t>(
      md, missing,
      {"class_SharedFunctionInfo__script_or_debug_info__", "class_SharedFunctionInfo__script__"});
  l.script_name = need<uint32_t>(md, missing, {"class_Script__name__"});
  l.string_length = need<uint32_t>(md, missing, {"class_String__length__"});
  l.seq_one_byte_chars = need<uint32_t>(md, missing, {"class_SeqOneByteString__chars__"});
  l.seq_two_byte_chars = need<uint32_t>(md, missing, {"class_SeqTwoByteString__chars__"});
  l.type_shared_function_info =
      need<uint16_t>(md, missing, {"type_SharedFunctionInfo__SHARED_FUNCTION_INFO_TYPE"});
  l.type_scope_info = need<uint16_t>(md, missing, {"type_ScopeInfo__SCOPE_INFO_TYPE"});
  l.type_script = need<uint16_t>(md, missing, {"type_Script__SCRIPT_TYPE"});
  l.first_nonstring_type = need<uint16_t>(md, missing, {"FirstNonstringType"});
  l.string_representation_mask = need<uint32_t>(md, missing, {"StringRepresentationMask"});
  l.string_encoding_mask = need<uint32_t>(md, missing, {"StringEncodingMask"});
  l.one_byte_string_tag = need<uint32_t>(md, missing, {"OneByteStringTag"});
  l.seq_string_tag = need<uint32_t>(md, missing, {"SeqStringTag"});
  l.cons_string_tag = need<uint32_t>(md, missing, {"ConsStringTag"});
  l.sliced_string_tag = need<uint32_t>(md, missing, {"SlicedStringTag"});
  l.thin_string_tag = need<uint32_t>(md, missing, {"ThinStringTag"});
  if (!missing.names.empty())
    return make_error(fmt::format("the V8 metadata lacks {}", fmt::join(missing.names, ", ")));
  if (l.off_fp_function >= 0 || l.off_fp_context >= 0 || l.off_fp_function < -256 || l.off_fp_context < -256)
    return make_error(fmt::format("unexpected frame slots: v8dbg_off_fp_function {}, v8dbg_off_fp_context {}",
                                  l.off_fp_function, l.off_fp_context));

  l.script_line_ends = maybe(md, {"class_Script__line_ends__"});
  l.script_source = maybe(md, {"class_Script__source__"});
  l.cons_first = maybe(md, {"class_ConsString__first__"});
  l.cons_second = maybe(md, {"class_ConsString__second__"});
  l.thin_actual = maybe(md, {"class_ThinString__actual__"});
  l.sliced_parent = maybe(md, {"class_SlicedString__parent__"});
  l.sliced_offset = maybe(md, {"class_SlicedString__offset__"});
  l.fixed_array_length = maybe(md, {"class_FixedArrayBase__length__"});
  l.fixed_array_data = maybe(md, {"class_FixedArray__data__"});
  l.scope_info_ncontextlocals = maybe(md, {"scopeinfo_idx_ncontextlocals"});
  l.scope_info_first_vars = maybe(md, {"scopeinfo_idx_first_vars"});

  // The embedded builtins: the span of the Builtins_* functions (the blob's own bounds are untyped symbols).
  uint64_t lo = UINT64_MAX, hi = 0;
  for (const auto& b : elf.find_symbols_with_prefix(kBuiltinsPrefix)) {
    if (!b.is_function) continue;
    lo = std::min(lo, b.address);
    hi = std::max(hi, b.address + std::max<uint64_t>(b.size, 1));
  }
  if (hi > lo) {
    l.builtins_vaddr = lo;
    l.builtins_size = hi - lo;
    l.builtins_from_symbols = true;
  }
  if (!l.builtins_from_symbols) {
    for (const auto& seg : elf.load_segments())
      if (seg.exec && seg.memsz > l.builtins_size) {
        l.builtins_vaddr = seg.vaddr;
        l.builtins_size = seg.memsz;
      }
  }
  return l;
}

namespace {

struct CachedLayout {
  std::optional<V8FrameLayout> layout;
  std::string error;
};

// Layouts by binary (device, inode): reading the metadata streams the binary's symbol tables once.
CachedLayout cached_layout(int fd, const std::string& display_name, uint64_t dev, uint64_t ino) {
  static std::mutex mu;
  static std::map<std::pair<uint64_t, uint64_t>, CachedLayout> cache;
  std::lock_guard lock(mu);
  if (auto it = cache.find({dev, ino}); it != cache.end()) return it->second;
  CachedLayout c;
  auto elf = elf::ElfFile::open(fd, display_name);
  if (!elf.ok()) {
    c.error = elf.error().describe();
  } else if (auto l = read_v8_frame_layout(**elf); l.ok()) {
    c.layout = *l;
  } else {
    c.error = l.error().message;
  }
  cache[{dev, ino}] = c;
  return c;
}

}  // namespace

std::string v8_layout_problem(const std::string& binary_path) {
  auto file = open_regular_file(binary_path);
  if (!file.ok()) return file.error().describe();
  auto c = cached_layout(file->fd.get(), binary_path, file->device, file->inode);
  return c.layout ? std::string() : c.error;
}

ProcessV8Layout v8_layout_for_process(pid_t pid, const std::vector<proc::MapEntry>& maps) {
  ProcessV8Layout out;
  auto exe = proc::read_exe(pid);
  std::vector<const proc::MapEntry*> candidates;  // the first mapping of each binary, executable first
  auto add = [&](const proc::MapEntry& m) {
    for (const auto* c : candidates)
      if (c->inode == m.inode && c->path == m.path) return;
    candidates.push_back(&m);
  };
  for (const auto& m : maps)
    if (m.is_file() && !m.deleted() && exe.ok() && m.path == *exe) add(m);
  for (const auto& m : maps) {
    if (!m.is_file() || m.deleted()) continue;
    std::string_view base = std::string_view(m.path).substr(m.path.rfind('/') + 1);
    if (base.starts_with("libnode.so")) add(m);
  }
  if (candidates.empty()) {
    out.error = "no node executable or libnode.so is mapped";
    return out;
  }
  for (const auto* m : candidates) {
    auto file = open_in_process_root(pid, m->path, /*no_symlinks=*/false);
    if (!file.ok()) {
      out.error = file.error().describe();
      continue;
    }
    auto c = cached_layout(file->fd.get(), m->path, file->device, file->inode);
    if (!c.layout) {
      if (out.error.empty() || out.binary.empty()) {
        out.binary = m->path;
        out.error = c.error;
      }
      continue;
    }
    out.binary = m->path;
    out.layout = c.layout;
    out.error.clear();
    // The load bias, from the mapping of the file's first page (offset 0 maps vaddr of the first segment,
    // rounded down to the page).
    for (const auto& mm : maps) {
      if (mm.inode != m->inode || mm.path != m->path || mm.offset != 0) continue;
      out.load_bias = 0;
      auto elf = elf::ElfFile::open(file->fd.get(), m->path);
      if (elf.ok() && !(*elf)->load_segments().empty()) {
        uint64_t first = (*elf)->load_segments().front().vaddr & ~0xfffULL;
        out.load_bias = mm.start - first;
      }
      break;
    }
    return out;
  }
  return out;
}

std::vector<std::pair<uint64_t, uint64_t>> v8_code_ranges(const ProcessV8Layout& v8,
                                                          const std::vector<proc::MapEntry>& maps,
                                                          size_t max_ranges) {
  std::vector<std::pair<uint64_t, uint64_t>> r;
  if (!v8.layout) return r;
  if (v8.layout->builtins_size > 0)
    r.emplace_back(v8.layout->builtins_vaddr + v8.load_bias,
                   v8.layout->builtins_vaddr + v8.load_bias + v8.layout->builtins_size);
  for (const auto& m : maps)
    if (m.exec && m.path.empty() && m.inode == 0) r.emplace_back(m.start, m.end);
  std::sort(r.begin(), r.end());
  // Overlapping or touching ranges become one; then the closest neighbours until max_ranges remain.
  std::vector<std::pair<uint64_t, uint64_t>> merged;
  for (const auto& x : r) {
    if (!merged.empty() && x.first <= merged.back().second)
      merged.back().second = std::max(merged.back().second, x.second);
    else
      merged.push_back(x);
  }
  while (merged.size() > max_ranges && merged.size() > 1) {
    size_t best = 0;
    for (size_t i = 1; i + 1 < merged.size(); ++i)
      if (merged[i + 1].first - merged[i].second < merged[best + 1].first - merged[best].second) best = i;
    merged[best].second = merged[best + 1].second;
    merged.erase(merged.begin() + static_cast<long>(best) + 1);
  }
  return merged;
}

}  // namespace memlens::node
