#include "inspector/heap_snapshot.h"

#include <fmt/format.h>

#include <algorithm>
#include <nlohmann/json.hpp>

namespace memlens::inspector {

namespace {

// Where a value sits in the snapshot document: the only places read.
enum class Where : uint8_t {
  kNone,
  kRoot,
  kSnapshot,
  kMeta,
  kNodeFields,
  kNodeTypes,
  kNodeTypeNames,
  kEdgeFields,
  kEdgeTypes,
  kEdgeTypeNames,
  kLocationFields,
  kNodes,
  kEdges,
  kLocations,
  kStrings,
};

class Sax {
 public:
  using json = nlohmann::json;
  explicit Sax(HeapSnapshot& s) : s_(s) {}

  bool null() { return value(); }
  bool boolean(bool) { return value(); }
  bool number_integer(json::number_integer_t v) { return number(v < 0 ? 0 : static_cast<uint64_t>(v)); }
  bool number_unsigned(json::number_unsigned_t v) { return number(v); }
  bool number_float(json::number_float_t v, const std::string&) { return number(static_cast<uint64_t>(v)); }
  bool binary(json::binary_t&) { return value(); }
  bool string(std::string& v) {
    switch (top()) {
      case Where::kStrings:
        if (!add_string(stack_.back().index, v)) return false;
        break;
      case Where::kNodeFields:
        node_fields_.push_back(v);
        break;
      case Where::kEdgeFields:
        edge_fields_.push_back(v);
        break;
      case Where::kLocationFields:
        location_fields_.push_back(v);
        break;
      case Where::kNodeTypeNames:
        s_.node_types.push_back(v);
        break;
      case Where::kEdgeTypeNames:
        s_.edge_types.push_back(v);
        break;
      default:
        break;
    }
    return value();
  }
  bool start_object(std::size_t) { return open(false); }
  bool key(std::string& k) {
    stack_.back().key = std::move(k);
    return true;
  }
  bool end_object() { return close(); }
  bool start_array(std::size_t) { return open(true); }
  bool end_array() { return close(); }
  bool parse_error(std::size_t pos, const std::string&, const nlohmann::detail::exception& e) {
    error_ = fmt::format("not a heap snapshot at byte {}: {}", pos, e.what());
    return false;
  }

  std::string error_;
  bool layout_ok_ = false;
  bool finished_ = false;
  std::string layout_error_;

 private:
  struct Frame {
    Where where;
    bool array;
    size_t index = 0;
    std::string key;
  };
  Where top() const { return stack_.empty() ? Where::kNone : stack_.back().where; }

  Where child_where() const {
    if (stack_.empty()) return Where::kRoot;
    const Frame& f = stack_.back();
    switch (f.where) {
      case Where::kRoot:
        if (f.key == "snapshot") return Where::kSnapshot;
        if (f.key == "nodes") return Where::kNodes;
        if (f.key == "edges") return Where::kEdges;
        if (f.key == "locations") return Where::kLocations;
        if (f.key == "strings") return Where::kStrings;
        return Where::kNone;
      case Where::kSnapshot:
        return f.key == "meta" ? Where::kMeta : Where::kNone;
      case Where::kMeta:
        if (f.key == "node_fields") return Where::kNodeFields;
        if (f.key == "node_types") return Where::kNodeTypes;
        if (f.key == "edge_fields") return Where::kEdgeFields;
        if (f.key == "edge_types") return Where::kEdgeTypes;
        if (f.key == "location_fields") return Where::kLocationFields;
        return Where::kNone;
      case Where::kNodeTypes:
        return f.index == 0 ? Where::kNodeTypeNames : Where::kNone;
      case Where::kEdgeTypes:
        return f.index == 0 ? Where::kEdgeTypeNames : Where::kNone;
      default:
        return Where::kNone;
    }
  }
  bool open(bool array) {
    Where w = child_where();
    if (!stack_.empty()) ++stack_.back().index;
    stack_.push_back({w, array});
    return true;
  }
  bool close() {
    if (top() == Where::kNodes) nodes_done_ = true;
    stack_.pop_back();
    if (stack_.empty()) finished_ = true;
    return true;
  }
  bool value() {
    if (!stack_.empty()) ++stack_.back().index;
    return true;
  }

  static int field(const std::vector<std::string>& fields, const char* name) {
    auto it = std::find(fields.begin(), fields.end(), name);
    return it == fields.end() ? -1 : static_cast<int>(it - fields.begin());
  }
  bool resolve_layout() {
    if (layout_ok_) return true;
    nt_ = field(node_fields_, "type");
    nn_ = field(node_fields_, "name");
    ni_ = field(node_fields_, "id");
    ns_ = field(node_fields_, "self_size");
    ne_ = field(node_fields_, "edge_count");
    et_ = field(edge_fields_, "type");
    en_ = field(edge_fields_, "name_or_index");
    eto_ = field(edge_fields_, "to_node");
    lo_ = field(location_fields_, "object_index");
    ll_ = field(location_fields_, "line");
    lc_ = field(location_fields_, "column");
    ls_ = field(location_fields_, "script_id");
    if (nt_ < 0 || nn_ < 0 || ni_ < 0 || ns_ < 0 || ne_ < 0 || et_ < 0 || en_ < 0 || eto_ < 0) {
      error_ =
          "the snapshot's meta does not list the node and edge fields memlens reads (type, name, id, "
          "self_size, edge_count; type, name_or_index, to_node)";
      return false;
    }
    auto code = [&](const char* name) {
      auto it = std::find(s_.edge_types.begin(), s_.edge_types.end(), name);
      return it == s_.edge_types.end() ? uint8_t{255} : static_cast<uint8_t>(it - s_.edge_types.begin());
    };
    s_.t_element = code("element");
    s_.t_hidden = code("hidden");
    s_.t_weak = code("weak");
    s_.t_internal = code("internal");
    s_.t_property = code("property");
    s_.t_context = code("context");
    if (s_.edge_types.size() > 8) {
      error_ = "the snapshot's meta lists more than 8 edge types";
      return false;
    }
    for (const char* t :
         {"string", "concatenated string", "sliced string", "number", "heap number", "bigint"})
      if (auto it = std::find(s_.node_types.begin(), s_.node_types.end(), t); it != s_.node_types.end())
        unnamed_types_.push_back(static_cast<uint8_t>(it - s_.node_types.begin()));
    layout_ok_ = true;
    return true;
  }

  // A string memlens shows: its index is marked (the strings come after the nodes and edges that name them).
  void need_string(uint32_t i) {
    if (i >= needed_.size()) needed_.resize(std::max<size_t>(i + 1, needed_.size() * 2));
    needed_[i] = true;
    max_string_ = std::max<int64_t>(max_string_, i);
  }

  bool add_string(size_t i, const std::string& v) {
    if (i == 0) {
      // Strings before the nodes and edges (not V8's order): every one is kept.
      keep_all_ = !nodes_done_;
      if (!keep_all_) s_.string_at.reserve(static_cast<size_t>(max_string_ + 1));
    }
    if (!keep_all_ && static_cast<int64_t>(i) > max_string_) return true;  // named by nothing memlens reads
    if (!keep_all_ && (i >= needed_.size() || !needed_[i])) {
      s_.string_at.push_back(HeapSnapshot::kAbsent);
      return true;
    }
    if (!v.empty() && v.size() <= 9 && (v[0] != '0' || v.size() == 1) &&
        std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      s_.string_at.push_back(HeapSnapshot::kNumeric | static_cast<uint32_t>(std::stoul(v)));
      return true;
    }
    std::string piece(1, '\0');
    piece.append(v, 0, std::min(v.size(), HeapSnapshot::kMaxString));
    piece[0] = static_cast<char>(piece.size() - 1);
    uint64_t at = s_.string_data.append_unsplit(piece.data(), piece.size());
    if (at >= HeapSnapshot::kNumeric) {
      error_ = "the heap snapshot's names take more than 2 GiB";
      return false;
    }
    s_.string_at.push_back(static_cast<uint32_t>(at));
    return true;
  }

  static void put_varint(ByteBlocks& out, uint64_t v) {
    while (v >= 0x80) {
      out.push(static_cast<uint8_t>(v | 0x80));
      v >>= 7;
    }
    out.push(static_cast<uint8_t>(v));
  }
  static uint64_t zigzag(int64_t d) {
    return (static_cast<uint64_t>(d) << 1) ^ static_cast<uint64_t>(d >> 63);
  }

  // Moves on to the next node's edges: its edge count (held in first_edge until now) becomes its offset.
  bool begin_node() {
    size_t n = s_.node_type.size();
    if (edge_node_ + 1 >= static_cast<int64_t>(n)) {
      error_ = fmt::format("the heap snapshot's edge list holds more edges than its {} nodes list", n);
      return false;
    }
    ++edge_node_;
    edges_left_ = s_.first_edge[edge_node_];
    if (s_.edge_bytes.size() > UINT32_MAX) {
      error_ = "the heap snapshot's edges take more than 4 GiB in memlens's encoding";
      return false;
    }
    s_.first_edge[edge_node_] = static_cast<uint32_t>(s_.edge_bytes.size());
    prev_to_ = static_cast<uint32_t>(edge_node_);
    prev_index_ = 0;
    return true;
  }

  bool add_edge(uint64_t type, uint64_t name, uint64_t to_field) {
    size_t n = s_.node_type.size();
    if (!nodes_done_) {
      error_ = "the heap snapshot lists edges before its nodes (not V8's layout)";
      return false;
    }
    if (edge_node_ < 0 && !check_nodes()) return false;
    while (edges_left_ == 0)
      if (!begin_node()) return false;
    --edges_left_;
    uint64_t to = to_field / node_fields_.size();
    if (to >= n || type >= 8) {
      error_ =
          to >= n ? "a heap snapshot edge points past the node list" : "a heap snapshot edge type is unknown";
      return false;
    }
    uint64_t name_code;
    if (type == s_.t_element || type == s_.t_hidden) {
      name_code = zigzag(static_cast<int64_t>(name) - static_cast<int64_t>(prev_index_));
      prev_index_ = static_cast<uint32_t>(name);
    } else {
      name_code = name;
      need_string(static_cast<uint32_t>(name));
    }
    put_varint(s_.edge_bytes, name_code << 3 | type);
    put_varint(s_.edge_bytes, zigzag(static_cast<int64_t>(to) - static_cast<int64_t>(prev_to_)));
    prev_to_ = static_cast<uint32_t>(to);
    ++s_.edge_count;
    return true;
  }

  bool check_nodes() {
    size_t n = s_.node_type.size();
    if (s_.node_name.size() != n || nodes_encoded_ != n || s_.first_edge.size() != n) {
      error_ = "the heap snapshot's node list is cut short";
      return false;
    }
    return true;
  }

 public:
  // After the whole document: the nodes after the last one with edges get their offsets.
  bool finish_edges() {
    if (!nodes_done_) {
      error_ = "the heap snapshot has no node list";
      return false;
    }
    if (edge_node_ < 0 && !check_nodes()) return false;
    size_t n = s_.node_type.size();
    while (edges_left_ == 0 && edge_node_ + 1 < static_cast<int64_t>(n))
      if (!begin_node()) return false;
    if (edges_left_ != 0 || edge_node_ + 1 != static_cast<int64_t>(n)) {
      error_ = "the heap snapshot's nodes list more edges than its edge list holds";
      return false;
    }
    if (s_.edge_bytes.size() > UINT32_MAX) {
      error_ = "the heap snapshot's edges take more than 4 GiB in memlens's encoding";
      return false;
    }
    s_.first_edge.push_back(static_cast<uint32_t>(s_.edge_bytes.size()));
    if (!keep_all_ && max_string_ >= static_cast<int64_t>(s_.string_at.size())) {
      error_ = "a heap snapshot node or edge names a string past the string list";
      return false;
    }
    std::sort(s_.locations.begin(), s_.locations.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    return true;
  }

 private:
  bool number(uint64_t v) {
    Where w = top();
    if (w == Where::kSnapshot) {
      // Counts given before the lists: the node arrays are sized once (no doubling on the way).
      const std::string& k = stack_.back().key;
      size_t n = static_cast<size_t>(std::min<uint64_t>(v, uint64_t{1} << 32));
      if (k == "node_count") {
        s_.node_type.reserve(n);
        s_.node_name.reserve(n);

        s_.first_edge.reserve(n + 1);
      }
    }
    if (w == Where::kNodes || w == Where::kEdges || w == Where::kLocations) {
      if (!resolve_layout()) return false;
      size_t i = stack_.back().index;
      if (w == Where::kNodes) {
        int f = static_cast<int>(i % node_fields_.size());
        if (f == nt_)
          s_.node_type.push_back(static_cast<uint8_t>(v));
        else if (f == nn_)
          s_.node_name.push_back(static_cast<uint32_t>(v));
        else if (f == ni_)
          node_[0] = v;
        else if (f == ns_)
          node_[1] = std::min<uint64_t>(v, UINT32_MAX);
        else if (f == ne_)
          s_.first_edge.push_back(static_cast<uint32_t>(v));  // the edge count, until its edges are read
        if (f + 1 == static_cast<int>(node_fields_.size())) {
          put_varint(s_.node_bytes, zigzag(static_cast<int64_t>(node_[0]) - static_cast<int64_t>(prev_id_)));
          put_varint(s_.node_bytes, node_[1]);
          prev_id_ = static_cast<uint32_t>(node_[0]);
          ++nodes_encoded_;
          if (!s_.node_type.empty() && !s_.node_name.empty() &&
              std::find(unnamed_types_.begin(), unnamed_types_.end(), s_.node_type.back()) ==
                  unnamed_types_.end())
            need_string(s_.node_name.back());
        }
      } else if (w == Where::kEdges) {
        int f = static_cast<int>(i % edge_fields_.size());
        if (f == et_) edge_[0] = v;
        if (f == en_) edge_[1] = v;
        if (f == eto_) edge_[2] = v;
        if (f + 1 == static_cast<int>(edge_fields_.size()) && !add_edge(edge_[0], edge_[1], edge_[2]))
          return false;
      } else if (lo_ >= 0 && ll_ >= 0) {
        int f = static_cast<int>(i % location_fields_.size());
        if (f == lo_)
          loc_node_ = static_cast<uint32_t>(v / node_fields_.size());
        else if (f == ls_)
          loc_.script_id = static_cast<uint32_t>(v);
        else if (f == ll_)
          loc_.line = static_cast<uint32_t>(v);
        else if (f == lc_)
          loc_.column = static_cast<uint32_t>(v);
        if (f + 1 == static_cast<int>(location_fields_.size())) s_.locations.emplace_back(loc_node_, loc_);
      }
    }
    return value();
  }

  HeapSnapshot& s_;
  std::vector<Frame> stack_;
  std::vector<std::string> node_fields_, edge_fields_, location_fields_;
  int nt_ = -1, nn_ = -1, ni_ = -1, ns_ = -1, ne_ = -1, et_ = -1, en_ = -1, eto_ = -1;
  int lo_ = -1, ll_ = -1, lc_ = -1, ls_ = -1;
  uint32_t loc_node_ = 0;
  HeapSnapshot::Location loc_;
  std::vector<uint8_t> unnamed_types_;  // node types whose name is their value (strings, numbers)
  std::vector<bool> needed_;            // string indices memlens shows
  int64_t max_string_ = -1;
  bool nodes_done_ = false, keep_all_ = false;
  uint64_t edge_[3] = {0, 0, 0};
  uint64_t node_[2] = {0, 0};  // id, self size
  uint32_t prev_id_ = 0;
  size_t nodes_encoded_ = 0;
  int64_t edge_node_ = -1;  // the node whose edges are being read
  uint64_t edges_left_ = 0;
  uint32_t prev_to_ = 0, prev_index_ = 0;
};

// Counts the bytes a stream's buffer hands out.
Result<HeapSnapshot> parse_from(std::istream& in, const uint64_t* consumed = nullptr) {
  HeapSnapshot s;
  Sax sax(s);
  auto start = in.tellg();
  bool ok = nlohmann::json::sax_parse(in, &sax, nlohmann::json::input_format_t::json, false);
  if (!ok || !sax.finished_)
    return make_error(sax.error_.empty() ? "the heap snapshot ended before it was complete" : sax.error_);
  if (!sax.finish_edges()) return make_error(sax.error_);
  if (consumed)
    s.json_bytes = *consumed;
  else if (auto end = in.tellg(); start >= 0 && end >= 0)
    s.json_bytes = static_cast<uint64_t>(end - start);
  for (auto nm : s.node_name)
    if (nm >= s.string_at.size())
      return make_error("a heap snapshot node names a string past the string list");
  return s;
}

}  // namespace

uint64_t ByteBlocks::append_unsplit(const char* p, size_t n) {
  if (blocks_.empty() || size_ == blocks_.size() * kBlock || (size_ & (kBlock - 1)) + n > kBlock) {
    size_ = blocks_.size() * kBlock;  // what is left of the last block stays unused
    blocks_.push_back(std::make_unique<uint8_t[]>(kBlock));
  }
  uint64_t at = size_;
  std::copy(p, p + n, &blocks_[at >> kBlockBits][at & (kBlock - 1)]);
  size_ += n;
  return at;
}

void ByteBlocks::push(uint8_t b) {
  if (size_ == blocks_.size() * kBlock) blocks_.push_back(std::make_unique<uint8_t[]>(kBlock));
  blocks_[size_ >> kBlockBits][size_ & (kBlock - 1)] = b;
  ++size_;
}

namespace {
uint64_t read_varint(const ByteBlocks& b, uint64_t& pos, uint64_t end) {
  uint64_t v = 0;
  for (unsigned shift = 0; pos < end; shift += 7) {
    uint8_t byte = b.at(pos++);
    v |= static_cast<uint64_t>(byte & 0x7f) << shift;
    if (!(byte & 0x80)) break;
  }
  return v;
}
int64_t unzigzag(uint64_t z) {
  return static_cast<int64_t>(z >> 1) ^ -static_cast<int64_t>(z & 1);
}
}  // namespace

uint64_t HeapSnapshot::EdgeIter::varint() {
  return read_varint(s_->edge_bytes, pos_, end_);
}

bool HeapSnapshot::NodeIter::next(uint32_t& id, uint32_t& self_size) {
  if (pos_ >= s_->node_bytes.size()) return false;
  prev_id_ = static_cast<uint32_t>(static_cast<int64_t>(prev_id_) +
                                   unzigzag(read_varint(s_->node_bytes, pos_, s_->node_bytes.size())));
  id = prev_id_;
  self_size = static_cast<uint32_t>(read_varint(s_->node_bytes, pos_, s_->node_bytes.size()));
  return true;
}

HeapSnapshot::NodeIter HeapSnapshot::node_values() const {
  NodeIter it;
  it.s_ = this;
  return it;
}

bool HeapSnapshot::EdgeIter::next(Edge& e) {
  if (pos_ >= end_) return false;
  auto unzig = unzigzag;
  uint64_t v = varint();
  e.type = static_cast<uint8_t>(v & 7);
  if (e.type == s_->t_element || e.type == s_->t_hidden) {
    prev_index_ = static_cast<uint32_t>(static_cast<int64_t>(prev_index_) + unzig(v >> 3));
    e.name = prev_index_;
  } else {
    e.name = static_cast<uint32_t>(v >> 3);
  }
  prev_to_ = static_cast<uint32_t>(static_cast<int64_t>(prev_to_) + unzig(varint()));
  e.to = prev_to_;
  return true;
}

HeapSnapshot::EdgeIter HeapSnapshot::edges(size_t node) const {
  EdgeIter it;
  it.s_ = this;
  it.pos_ = first_edge[node];
  it.end_ = first_edge[node + 1];
  it.prev_to_ = static_cast<uint32_t>(node);
  return it;
}

std::string_view HeapSnapshot::str(uint32_t i) const {
  if (i >= string_at.size()) return {};
  uint32_t at = string_at[i];
  if (at & kNumeric) return {};
  return string_data.view(at + 1, string_data.at(at));
}

std::string HeapSnapshot::text(uint32_t i) const {
  if (i < string_at.size() && string_at[i] != kAbsent && (string_at[i] & kNumeric))
    return std::to_string(string_at[i] & ~kNumeric);
  return std::string(str(i));
}

const HeapSnapshot::Location* HeapSnapshot::location(uint32_t node) const {
  auto it = std::lower_bound(locations.begin(), locations.end(), node,
                             [](const auto& l, uint32_t n) { return l.first < n; });
  return it != locations.end() && it->first == node ? &it->second : nullptr;
}

std::string_view HeapSnapshot::type_name(size_t node) const {
  uint8_t t = node_type[node];
  return t < node_types.size() ? std::string_view(node_types[t]) : std::string_view("?");
}

std::string_view HeapSnapshot::edge_type_name(uint8_t t) const {
  return t < edge_types.size() ? std::string_view(edge_types[t]) : std::string_view("?");
}

std::string_view HeapSnapshot::name(size_t node) const {
  return str(node_name[node]);
}

std::string HeapSnapshot::group(size_t node) const {
  auto t = type_name(node);
  if (t == "object" || t == "closure" || t == "native" || t == "regexp") {
    auto n = name(node);
    if (n.empty()) return fmt::format("({})", t == "closure" ? "anonymous function" : t);
    return std::string(n.substr(0, 120));
  }
  return fmt::format("({})", t);
}

std::string HeapSnapshot::edge_label(const Edge& e) const {
  if (e.type == t_element || e.type == t_hidden) return fmt::format("[{}]", e.name);
  if (e.name >= string_at.size()) return "?";
  std::string n = text(e.name);
  bool numeric = !n.empty() && std::all_of(n.begin(), n.end(), [](char c) { return c >= '0' && c <= '9'; });
  if (numeric || n.empty()) return fmt::format("\"{}\"", n);
  return n.substr(0, 120);
}

std::string HeapSnapshot::group_key(size_t node) const {
  return fmt::format("{}\t{}", type_name(node), group(node));
}

namespace {
uint64_t edge_count_of(const HeapSnapshot& s, size_t node) {
  uint64_t n = 0;
  HeapSnapshot::Edge e;
  for (auto it = s.edges(node); it.next(e);) ++n;
  return n;
}
}  // namespace

uint64_t HeapSnapshot::entries(size_t node) const {
  auto t = type_name(node);
  if (t != "object") return 0;
  auto n = name(node);
  bool map = n == "Map", set = n == "Set", array = n == "Array";
  uint64_t count = 0, own_elements = 0, backing = 0;
  Edge e;
  for (auto it = edges(node); it.next(e);) {
    if (e.type == t_element) {
      ++count;
      ++own_elements;
    } else if (e.type == t_property) {
      if (str(e.name) != "__proto__") ++count;
    } else if (e.type == t_internal && (map || set) && str(e.name) == "table") {
      uint64_t slots = edge_count_of(*this, e.to);
      count += map ? slots / 2 : slots;
    } else if (e.type == t_internal && array && str(e.name) == "elements") {
      backing += edge_count_of(*this, e.to);
    }
  }
  // Elements as element edges of the array itself are counted above; some majors list them in the backing
  // store only.
  if (own_elements == 0) count += backing;
  return count;
}

uint64_t HeapSnapshot::bytes_in_memory() const {
  uint64_t b = node_type.capacity() + node_name.capacity() * 4 + node_bytes.capacity() +
               first_edge.capacity() * 4 + edge_bytes.capacity();
  return b + string_data.capacity() + string_at.capacity() * 4 + locations.capacity() * sizeof(locations[0]);
}

HeapSnapshotStream::HeapSnapshotStream() : buf_(*this) {}
HeapSnapshotStream::~HeapSnapshotStream() = default;

void HeapSnapshotStream::feed(std::string_view chunk) {
  std::unique_lock<std::mutex> lock(mutex_);
  cv_.wait(lock, [&]() { return ended_ || queued_bytes_ < max_queued_bytes; });
  if (ended_) return;
  queue_.emplace_back(chunk);
  queued_bytes_ += chunk.size();
  cv_.notify_all();
}

void HeapSnapshotStream::end() {
  std::lock_guard<std::mutex> lock(mutex_);
  ended_ = true;
  cv_.notify_all();
}

HeapSnapshotStream::Buf::int_type HeapSnapshotStream::Buf::underflow() {
  if (gptr() < egptr()) return traits_type::to_int_type(*gptr());
  std::unique_lock<std::mutex> lock(s_.mutex_);
  s_.cv_.wait(lock, [&]() { return s_.ended_ || !s_.queue_.empty(); });
  if (s_.queue_.empty()) return traits_type::eof();
  cur_ = std::move(s_.queue_.front());
  s_.queue_.pop_front();
  s_.queued_bytes_ -= cur_.size();
  s_.cv_.notify_all();
  consumed += cur_.size();
  setg(cur_.data(), cur_.data(), cur_.data() + cur_.size());
  return traits_type::to_int_type(*gptr());
}

Result<HeapSnapshot> HeapSnapshotStream::parse() {
  std::istream in(&buf_);
  auto r = parse_from(in, &buf_.consumed);
  end();  // a producer still feeding is let go
  return r;
}

Result<HeapSnapshot> parse_heap_snapshot(std::istream& in) {
  return parse_from(in);
}

bool HeapSummary::has_id(uint32_t id) const {
  if (!id_bits.empty() || ids.empty()) return id < id_bits.size() && id_bits[id];
  return std::binary_search(ids.begin(), ids.end(), id);
}

HeapSummary summarize(const HeapSnapshot& s) {
  HeapSummary out;
  uint32_t max_id = 0, id = 0, size = 0;
  for (auto it = s.node_values(); it.next(id, size);) max_id = std::max(max_id, id);
  // A bit per possible id, or 4 bytes per node: whichever is smaller.
  bool bits = max_id / 8 < s.nodes() * 4;
  if (bits)
    out.id_bits.assign(static_cast<size_t>(max_id) + 1, false);
  else
    out.ids.reserve(s.nodes());
  auto values = s.node_values();
  for (size_t i = 0; i < s.nodes() && values.next(id, size); ++i) {
    auto& g = out.groups[s.group_key(i)];
    ++g.count;
    g.size += size;
    if (bits)
      out.id_bits[id] = true;
    else
      out.ids.push_back(id);
    if (uint64_t e = s.entries(i); e >= 16) out.entries[id] = e;
  }
  std::sort(out.ids.begin(), out.ids.end());
  return out;
}

namespace {

// The nodes reached and not expanded yet: first in, first out while they fit a ring of kRing nodes; beyond it
// (a heap whose frontier is millions wide: an array of millions of objects) the rest wait as bits, one per
// node, taken in node order when the ring runs dry. A queue of every node (4 bytes each) would add an eighth
// or more to what a snapshot of small objects takes; overflowed nodes then leave breadth-first order, so a
// path through them can be longer than the shortest (still a real path from a root).
class Frontier {
 public:
  static constexpr size_t kRing = size_t{1} << 18;
  explicit Frontier(size_t nodes) : ring_(std::min(nodes, kRing) + 1), nodes_(nodes) {}
  void push(uint32_t n) {
    if (count_ < ring_.size()) {
      ring_[(head_ + count_++) % ring_.size()] = n;
      return;
    }
    if (waiting_.empty()) waiting_.assign(nodes_, false);
    waiting_[n] = true;
    ++waiting_count_;
  }
  bool pop(uint32_t& n) {
    if (count_ == 0 && waiting_count_ > 0) refill();
    if (count_ == 0) return false;
    n = ring_[head_];
    head_ = (head_ + 1) % ring_.size();
    --count_;
    return true;
  }

 private:
  // Onward from where the last refill stopped, wrapping around: a node that waits behind the cursor is
  // found on the next turn, and the bits are scanned about once per ring's worth of waiting nodes.
  void refill() {
    for (size_t step = 0; step < nodes_ && count_ < ring_.size() && waiting_count_ > 0; ++step) {
      size_t i = cursor_;
      cursor_ = cursor_ + 1 == nodes_ ? 0 : cursor_ + 1;
      if (!waiting_[i]) continue;
      waiting_[i] = false;
      --waiting_count_;
      ring_[(head_ + count_++) % ring_.size()] = static_cast<uint32_t>(i);
    }
  }
  std::vector<uint32_t> ring_;
  size_t head_ = 0, count_ = 0, cursor_ = 0;
  std::vector<bool> waiting_;
  size_t waiting_count_ = 0;
  size_t nodes_;
};

// Breadth-first from the synthetic root over non-weak edges, calling reach(to) for each node not seen yet
// (and not skipped): the app's own roots first (the global objects the root points to), as DevTools does, so
// a path goes through the app's variables rather than V8's internal root lists where both reach an object;
// then the rest ((GC roots), the embedder's roots).
template <typename Seen, typename Reach>
void walk(const HeapSnapshot& s, Seen&& seen, Reach&& reach) {
  Frontier frontier(s.nodes());
  HeapSnapshot::Edge e;
  auto visit = [&](uint32_t from) {
    if (seen(e.to) || e.type == s.t_weak) return;
    reach(from, e.to);
    frontier.push(e.to);
  };
  auto run = [&]() {
    for (uint32_t n = 0; frontier.pop(n);)
      for (auto it = s.edges(n); it.next(e);) visit(n);
  };
  for (auto it = s.edges(0); it.next(e);)
    if (s.type_name(e.to) == "object") visit(0);
  run();
  for (auto it = s.edges(0); it.next(e);) visit(0);
  run();
}

}  // namespace

BfsTree bfs(const HeapSnapshot& s) {
  BfsTree t;
  t.parent.assign(s.nodes(), BfsTree::kUnreached);
  if (s.nodes() == 0) return t;
  t.parent[0] = 0;
  walk(
      s, [&](uint32_t n) { return t.parent[n] != BfsTree::kUnreached; },
      [&](uint32_t from, uint32_t to) { t.parent[to] = from; });
  return t;
}

uint64_t retained_bytes(const HeapSnapshot& s, const std::vector<bool>& reachable,
                        const std::vector<bool>& group) {
  if (s.nodes() == 0) return 0;
  std::vector<bool> seen(s.nodes(), false);
  seen[0] = true;
  walk(
      s, [&](uint32_t n) { return seen[n] || group[n]; }, [&](uint32_t, uint32_t to) { seen[to] = true; });
  uint64_t bytes = 0;
  uint32_t id = 0, size = 0;
  auto values = s.node_values();
  for (size_t i = 0; i < s.nodes() && values.next(id, size); ++i)
    if (reachable[i] && !seen[i]) bytes += size;
  return bytes;
}

std::vector<std::string> retainer_path(const HeapSnapshot& s, const BfsTree& tree, size_t node,
                                       size_t max_edges) {
  std::vector<std::string> path;
  if (node >= s.nodes() || tree.parent[node] == BfsTree::kUnreached) return path;
  bool whole = false;
  for (size_t n = node; n != 0 && path.size() < max_edges; n = tree.parent[n]) {
    size_t from = tree.parent[n];
    if (from == 0) {
      // Below the synthetic root: the root's own name ("global", "(GC roots)"), not the edge's.
      std::string root(s.name(n));
      if (auto slash = root.find(" /"); slash != std::string::npos) root.resize(slash);
      path.push_back(root.empty() ? std::string("(root)") : root);
      whole = true;
      break;
    }
    // The edge it was reached through: the parent's first non-weak edge to it.
    HeapSnapshot::Edge e;
    for (auto it = s.edges(from); it.next(e);)
      if (e.to == n && e.type != s.t_weak) break;
    // A closure's scope: the variables it captured (a module's top-level ones for a function defined there).
    if (s.type_name(from) == "closure" && e.type == s.t_internal && s.str(e.name) == "context")
      path.push_back(s.name(from).empty() ? std::string("(closure scope)")
                                          : fmt::format("(scope of {})", s.name(from)));
    else
      path.push_back(s.edge_label(e));
  }
  if (!whole) path.push_back("...");
  std::reverse(path.begin(), path.end());
  return path;
}

namespace {

// The script a closure's function comes from: closure -shared-> SharedFunctionInfo -script...-> Script,
// whose node name is the script's name.
std::string script_of(const HeapSnapshot& s, size_t closure) {
  auto child = [&](size_t node, std::string_view prefix) -> size_t {
    HeapSnapshot::Edge e;
    for (auto it = s.edges(node); it.next(e);)
      if (e.type == s.t_internal && s.str(e.name).substr(0, prefix.size()) == prefix) return e.to;
    return SIZE_MAX;
  };
  size_t shared = child(closure, "shared");
  if (shared == SIZE_MAX) return "";
  size_t script = child(shared, "script");
  if (script == SIZE_MAX) return "";
  std::string name(s.name(script));
  return name.rfind("system /", 0) == 0 ? "" : name;
}

}  // namespace

model::JsHeapDiff diff(const HeapSummary& before, const HeapSnapshot& after, const DiffOptions& opts) {
  model::JsHeapDiff out;
  struct Acc {
    std::string type;
    uint64_t count = 0, bytes = 0, new_objects = 0, new_bytes = 0;
    size_t representative = SIZE_MAX;
    uint32_t representative_size = 0;
  };
  std::unordered_map<std::string, Acc> groups;
  uint32_t id = 0, size = 0;
  auto values = after.node_values();
  for (size_t i = 0; i < after.nodes() && values.next(id, size); ++i) {
    auto& a = groups[after.group_key(i)];
    if (a.type.empty()) a.type = std::string(after.type_name(i));
    ++a.count;
    a.bytes += size;
    if (!before.has_id(id)) {
      ++a.new_objects;
      a.new_bytes += size;
      if (a.representative == SIZE_MAX || size > a.representative_size) {
        a.representative = i;
        a.representative_size = size;
      }
    }
  }
  std::vector<std::pair<std::string, Acc>> ranked;
  for (auto& [name, a] : groups) {
    auto b = before.groups.find(name);
    int64_t dc =
        static_cast<int64_t>(a.count) - static_cast<int64_t>(b == before.groups.end() ? 0 : b->second.count);
    int64_t db =
        static_cast<int64_t>(a.bytes) - static_cast<int64_t>(b == before.groups.end() ? 0 : b->second.size);
    if (dc > 0 && db > 0 && a.new_objects > 0) ranked.emplace_back(name, std::move(a));
  }
  auto delta_bytes = [&](const std::pair<std::string, Acc>& g) {
    auto b = before.groups.find(g.first);
    return static_cast<int64_t>(g.second.bytes) -
           static_cast<int64_t>(b == before.groups.end() ? 0 : b->second.size);
  };
  std::sort(ranked.begin(), ranked.end(),
            [&](const auto& x, const auto& y) { return delta_bytes(x) > delta_bytes(y); });
  if (ranked.size() > opts.max_groups) ranked.resize(opts.max_groups);

  // Collections that gained entries.
  struct Grew {
    size_t node;
    uint32_t id;
    uint64_t before, after;
  };
  std::vector<Grew> grew;
  values = after.node_values();
  for (size_t i = 0; i < after.nodes() && values.next(id, size); ++i) {
    auto b = before.entries.find(id);
    if (b == before.entries.end()) continue;
    uint64_t e = after.entries(i);
    if (e >= b->second + opts.min_collection_growth) grew.push_back({i, id, b->second, e});
  }
  std::sort(grew.begin(), grew.end(),
            [](const Grew& x, const Grew& y) { return x.after - x.before > y.after - y.before; });
  if (grew.size() > opts.max_collections) grew.resize(opts.max_collections);

  BfsTree tree = bfs(after);
  for (size_t k = 0; k < ranked.size(); ++k) {
    auto& [name, a] = ranked[k];
    model::JsHeapGroup g;
    g.type = a.type;
    g.name = name.substr(name.find('\t') + 1);
    g.count = a.count;
    g.bytes = a.bytes;
    auto b = before.groups.find(name);
    g.count_delta =
        static_cast<int64_t>(a.count) - static_cast<int64_t>(b == before.groups.end() ? 0 : b->second.count);
    g.bytes_delta = delta_bytes(ranked[k]);
    g.new_objects = a.new_objects;
    g.new_bytes = a.new_bytes;
    if (k < opts.top_groups && a.representative != SIZE_MAX) {
      g.retainer_path = retainer_path(after, tree, a.representative, opts.max_path_edges);
      if (const auto* loc = after.location(static_cast<uint32_t>(a.representative))) {
        std::string script = script_of(after, a.representative);
        g.location = script.empty() ? fmt::format("script {} line {}", loc->script_id, loc->line + 1)
                                    : fmt::format("{}:{}", script, loc->line + 1);
      }
    }
    out.groups.push_back(std::move(g));
  }
  for (const auto& gr : grew) {
    model::JsGrowingCollection c;
    c.type = std::string(after.type_name(gr.node));
    c.name = std::string(after.name(gr.node));
    c.id = gr.id;
    c.entries_before = gr.before;
    c.entries_after = gr.after;
    c.retainer_path = retainer_path(after, tree, gr.node, opts.max_path_edges);
    out.collections.push_back(std::move(c));
  }

  // Retained sizes of the top groups, once the tree is let go: which nodes are reachable at all, then per
  // group a walk that does not enter the group's objects.
  std::vector<bool> reachable(after.nodes());
  for (size_t i = 0; i < after.nodes(); ++i) reachable[i] = tree.parent[i] != BfsTree::kUnreached;
  tree = BfsTree{};
  size_t k = std::min(opts.retained_groups, ranked.size());
  std::unordered_map<std::string, size_t> slot;
  for (size_t i = 0; i < k; ++i) slot.emplace(ranked[i].first, i);
  std::vector<std::vector<bool>> members(k, std::vector<bool>(after.nodes(), false));
  if (k > 0)
    for (size_t i = 0; i < after.nodes(); ++i)
      if (auto it = slot.find(after.group_key(i)); it != slot.end()) members[it->second][i] = true;
  for (size_t i = 0; i < k; ++i) {
    out.groups[i].retained_bytes = static_cast<int64_t>(retained_bytes(after, reachable, members[i]));
    members[i] = {};
  }
  if (ranked.size() > k)
    out.retained_note = fmt::format("retained size computed for the top {} groups only", k);
  return out;
}

}  // namespace memlens::inspector
