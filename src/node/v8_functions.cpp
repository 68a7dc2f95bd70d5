#include "node/v8_functions.h"

#include <fmt/format.h>
#include <sys/uio.h>

#include <algorithm>
#include <cstring>

namespace memlens::node {

namespace {

constexpr uint32_t kMaxNameChars = 1024;
constexpr uint32_t kMaxSourceChars = 2u << 20;  // a script's source read to find its lines, at most (4 MB)
constexpr uint32_t kMaxLineEnds = 4u << 20;
constexpr int kMaxStringDepth = 64;  // cons / sliced / thin strings followed
constexpr uint32_t kMaxScopeInfoSlots = 256;

bool is_heap_object(uint64_t v) {
  return (v & 3) == 1;
}
std::optional<int64_t> smi_value(uint64_t v) {
  if ((v & 0xffffffffULL) != 0) return std::nullopt;  // a Smi: the value in the upper half, zeros below
  return static_cast<int64_t>(v) >> 32;
}

void append_utf8(std::string& out, char32_t c) {
  if (c < 0x80) {
    out += static_cast<char>(c);
  } else if (c < 0x800) {
    out += static_cast<char>(0xc0 | (c >> 6));
    out += static_cast<char>(0x80 | (c & 0x3f));
  } else if (c < 0x10000) {
    out += static_cast<char>(0xe0 | (c >> 12));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (c & 0x3f));
  } else {
    out += static_cast<char>(0xf0 | (c >> 18));
    out += static_cast<char>(0x80 | ((c >> 12) & 0x3f));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (c & 0x3f));
  }
}

std::string to_utf8(const std::u16string& s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    char32_t c = s[i];
    if (c >= 0xd800 && c < 0xdc00 && i + 1 < s.size() && s[i + 1] >= 0xdc00 && s[i + 1] < 0xe000) {
      c = 0x10000 + ((c - 0xd800) << 10) + (s[i + 1] - 0xdc00);
      ++i;
    } else if (c >= 0xd800 && c < 0xe000) {
      c = 0xfffd;  // a lone surrogate
    }
    append_utf8(out, c);
  }
  return out;
}

}  // namespace

std::string JsFunctionName::label() const {
  if (script.empty()) return function;
  if (line > 0) return fmt::format("{} {}:{}", function, script, line);
  if (position >= 0) return fmt::format("{} {} (char {})", function, script, position);
  return fmt::format("{} {}", function, script);
}

bool V8FunctionNames::read(uint64_t addr, void* out, size_t n) const {
  if (n == 0) return true;
  iovec local{out, n};
  iovec remote{reinterpret_cast<void*>(addr), n};
  return process_vm_readv(pid_, &local, 1, &remote, 1, 0) == static_cast<ssize_t>(n);
}

std::optional<uint64_t> V8FunctionNames::read_word(uint64_t addr) const {
  uint64_t v = 0;
  if (!read(addr, &v, sizeof(v))) return std::nullopt;
  return v;
}

std::optional<uint64_t> V8FunctionNames::heap_object_at(uint64_t addr) const {
  auto v = read_word(addr);
  if (!v || !is_heap_object(*v)) return std::nullopt;
  return *v - 1;
}

std::optional<uint16_t> V8FunctionNames::instance_type(uint64_t obj) const {
  auto map = heap_object_at(obj + l_.heap_object_map);
  if (!map) return std::nullopt;
  uint16_t type = 0;
  if (!read(*map + l_.map_instance_type, &type, sizeof(type))) return std::nullopt;
  return type;
}

std::optional<int32_t> V8FunctionNames::string_length(uint64_t obj) const {
  int32_t len = 0;
  if (!read(obj + l_.string_length, &len, sizeof(len)) || len < 0) return std::nullopt;
  return len;
}

// Appends characters [start, start + count) of the string obj to out, following cons, thin and sliced
// strings to their flat parts. External strings (their characters outside the heap) are not read.
bool V8FunctionNames::append_chars(uint64_t obj, uint32_t start, uint32_t count, std::u16string& out,
                                   int depth) const {
  if (count == 0) return true;
  if (depth > kMaxStringDepth) return false;
  auto type = instance_type(obj);
  if (!type || *type >= l_.first_nonstring_type) return false;
  auto len = string_length(obj);
  if (!len || static_cast<uint64_t>(start) + count > static_cast<uint64_t>(*len)) return false;
  uint32_t rep = *type & l_.string_representation_mask;
  bool one_byte = (*type & l_.string_encoding_mask) == l_.one_byte_string_tag;
  if (rep == l_.seq_string_tag) {
    if (one_byte) {
      std::string bytes(count, '\0');
      if (!read(obj + l_.seq_one_byte_chars + start, bytes.data(), count)) return false;
      for (unsigned char c : bytes) out += static_cast<char16_t>(c);
    } else {
      std::u16string units(count, u'\0');
      if (!read(obj + l_.seq_two_byte_chars + 2ull * start, units.data(), 2ull * count)) return false;
      out += units;
    }
    return true;
  }
  if (rep == l_.cons_string_tag && l_.cons_first && l_.cons_second) {
    auto first = heap_object_at(obj + *l_.cons_first);
    auto second = heap_object_at(obj + *l_.cons_second);
    if (!first || !second) return false;
    auto first_len = string_length(*first);
    if (!first_len) return false;
    uint32_t flen = static_cast<uint32_t>(*first_len);
    if (start < flen) {
      uint32_t n = std::min(count, flen - start);
      if (!append_chars(*first, start, n, out, depth + 1)) return false;
      start += n;
      count -= n;
    }
    return append_chars(*second, start - flen, count, out, depth + 1);
  }
  if (rep == l_.thin_string_tag && l_.thin_actual) {
    auto actual = heap_object_at(obj + *l_.thin_actual);
    return actual && append_chars(*actual, start, count, out, depth + 1);
  }
  if (rep == l_.sliced_string_tag && l_.sliced_parent && l_.sliced_offset) {
    auto parent = heap_object_at(obj + *l_.sliced_parent);
    auto raw = read_word(obj + *l_.sliced_offset);
    auto offset = raw ? smi_value(*raw) : std::nullopt;
    if (!parent || !offset || *offset < 0) return false;
    return append_chars(*parent, start + static_cast<uint32_t>(*offset), count, out, depth + 1);
  }
  return false;
}

std::optional<std::string> V8FunctionNames::read_string(uint64_t obj, uint32_t max_chars) const {
  auto len = string_length(obj);
  if (!len) return std::nullopt;
  std::u16string chars;
  if (!append_chars(obj, 0, std::min(static_cast<uint32_t>(*len), max_chars), chars, 0)) return std::nullopt;
  return to_utf8(chars);
}

// The function name a ScopeInfo holds, as the OpenTelemetry profiler finds it: past the context locals
// (names then infos), the first string is the function's name. Its start position: at fixed slots when
// the metadata says the variable part starts after them (V8 12.8+: 3 and 4), else the first two Smis
// 0 <= start < end after the name and its slot index.
std::optional<std::string> V8FunctionNames::scope_info_name(uint64_t scope_info, int64_t& position) const {
  if (!l_.scope_info_ncontextlocals || !l_.scope_info_first_vars) return std::nullopt;
  uint64_t data = scope_info + l_.heap_object_map + 8;  // the slots after the map
  uint32_t first_vars = *l_.scope_info_first_vars;
  auto raw_locals = read_word(data + 8ull * *l_.scope_info_ncontextlocals);
  auto locals = raw_locals ? smi_value(*raw_locals) : std::nullopt;
  if (!locals || *locals < 0 || *locals > 100000) return std::nullopt;
  // Up to 75 locals are inlined (names then infos); more are in a hash table (one slot) and their infos.
  uint64_t skip = *locals <= 75 ? 2 * *locals : 1 + *locals;
  uint64_t from = first_vars + skip;
  uint32_t n = static_cast<uint32_t>(std::min<uint64_t>(from + 12, kMaxScopeInfoSlots));
  if (from >= n) return std::nullopt;
  std::vector<uint64_t> slots(n);
  if (!read(data, slots.data(), slots.size() * 8)) return std::nullopt;
  bool fixed_positions = first_vars >= 5;
  if (fixed_positions) {
    auto start = smi_value(slots[3]);
    if (start && *start >= 0) position = *start;
  }
  for (uint64_t i = from; i < n; ++i) {
    if (!is_heap_object(slots[i])) continue;
    auto type = instance_type(slots[i] - 1);
    if (!type || *type >= l_.first_nonstring_type) continue;
    auto name = read_string(slots[i] - 1, kMaxNameChars);
    if (!name) continue;
    if (!fixed_positions) {
      for (uint64_t j = i + 2; j + 1 < n; ++j) {
        auto a = smi_value(slots[j]), b = smi_value(slots[j + 1]);
        if (a && b && *a >= 0 && *a < *b) {
          position = *a;
          break;
        }
      }
    }
    return name;
  }
  return std::nullopt;
}

// The character offsets of the script's line ends: V8's own (Script::line_ends, a FixedArray of Smis, once
// computed), else from its source. Empty when neither can be read.
const std::vector<uint32_t>* V8FunctionNames::line_ends(uint64_t script) {
  if (auto it = scripts_.find(script); it != scripts_.end()) return &it->second;
  std::vector<uint32_t> ends;
  if (l_.script_line_ends && l_.fixed_array_length && l_.fixed_array_data) {
    if (auto arr = heap_object_at(script + *l_.script_line_ends)) {
      auto raw_len = read_word(*arr + *l_.fixed_array_length);
      auto len = raw_len ? smi_value(*raw_len) : std::nullopt;
      if (len && *len > 0 && *len <= kMaxLineEnds) {
        std::vector<uint64_t> raw(static_cast<size_t>(*len));
        if (read(*arr + *l_.fixed_array_data, raw.data(), raw.size() * 8)) {
          for (uint64_t v : raw) {
            auto e = smi_value(v);
            if (!e || *e < 0 || (!ends.empty() && *e < ends.back())) {
              ends.clear();
              break;
            }
            ends.push_back(static_cast<uint32_t>(*e));
          }
        }
      }
    }
  }
  if (ends.empty() && l_.script_source) {
    if (auto src = heap_object_at(script + *l_.script_source)) {
      auto len = string_length(*src);
      std::u16string chars;
      if (len && static_cast<uint32_t>(*len) <= kMaxSourceChars &&
          append_chars(*src, 0, static_cast<uint32_t>(*len), chars, 0)) {
        for (size_t i = 0; i < chars.size(); ++i)
          if (chars[i] == u'\n') ends.push_back(static_cast<uint32_t>(i));
        ends.push_back(static_cast<uint32_t>(chars.size()));
      }
    }
  }
  return &scripts_.emplace(script, std::move(ends)).first->second;
}

std::optional<JsFunctionName> V8FunctionNames::read_function(uint64_t sfi, uint64_t name_or_scope_info) {
  JsFunctionName f;
  if (is_heap_object(name_or_scope_info)) {
    uint64_t obj = name_or_scope_info - 1;
    auto type = instance_type(obj);
    if (type && *type == l_.type_scope_info) {
      if (auto name = scope_info_name(obj, f.position)) f.function = *name;
    } else if (type && *type < l_.first_nonstring_type) {
      if (auto name = read_string(obj, kMaxNameChars)) f.function = *name;
    }
  }
  if (f.function.empty()) f.function = "(anonymous)";
  if (auto script = heap_object_at(sfi + l_.sfi_script)) {
    auto type = instance_type(*script);
    if (type && *type == l_.type_script) {
      if (auto name = heap_object_at(*script + l_.script_name)) {
        auto name_type = instance_type(*name);
        if (name_type && *name_type < l_.first_nonstring_type)
          if (auto s = read_string(*name, kMaxNameChars)) f.script = *s;
      }
      if (f.position >= 0) {
        const auto* ends = line_ends(*script);
        if (ends && !ends->empty()) {
          auto it = std::lower_bound(ends->begin(), ends->end(), static_cast<uint32_t>(f.position));
          if (it != ends->end()) f.line = static_cast<uint32_t>(it - ends->begin()) + 1;
        }
      }
    }
  }
  return f;
}

std::optional<JsFunctionName> V8FunctionNames::resolve(uint64_t sfi) {
  auto it = sfis_.find(sfi);
  if (in_batch_ && it != sfis_.end() && it->second.batch == batch_) return it->second.name;
  auto type = instance_type(sfi);
  auto nosi = read_word(sfi + l_.sfi_name_or_scope_info);
  if (!type || !nosi) return it != sfis_.end() ? it->second.name : std::nullopt;  // gone: what was read
  if (*type != l_.type_shared_function_info) {
    ++stats_.not_function;
    if (it != sfis_.end()) sfis_.erase(it);
    return std::nullopt;
  }
  if (it != sfis_.end()) {
    if (it->second.name_or_scope_info == *nosi) {
      it->second.batch = batch_;
      return it->second.name;
    }
    ++stats_.revalidated;
  }
  Entry e;
  e.name_or_scope_info = *nosi;
  e.batch = batch_;
  e.name = read_function(sfi, *nosi);
  if (e.name) ++stats_.resolved;
  auto name = e.name;
  sfis_[sfi] = std::move(e);
  return name;
}

std::optional<JsFunctionName> V8FunctionNames::cached(uint64_t sfi) const {
  auto it = sfis_.find(sfi);
  if (it == sfis_.end()) return std::nullopt;
  return it->second.name;
}

}  // namespace memlens::node
