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
        s_.string_data.append(v, 0, std::min(v.size(), HeapSnapshot::kMaxString));
        s_.string_end.push_back(static_cast<uint32_t>(s_.string_data.size()));
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
    layout_ok_ = true;
    return true;
  }

  bool number(uint64_t v) {
    Where w = top();
    if (w == Where::kSnapshot) {
      // Counts given before the lists: the arrays are sized once (no doubling on the way).
      const std::string& k = stack_.back().key;
      size_t n = static_cast<size_t>(std::min<uint64_t>(v, uint64_t{1} << 32));
      if (k == "node_count") {
        s_.node_type.reserve(n);
        s_.node_name.reserve(n);
        s_.node_id.reserve(n);
        s_.node_self_size.reserve(n);
        s_.first_edge.reserve(n + 1);
      } else if (k == "edge_count") {
        s_.edge_type.reserve(n);
        s_.edge_name.reserve(n);
        s_.edge_to.reserve(n);
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
          s_.node_id.push_back(static_cast<uint32_t>(v));
        else if (f == ns_)
          s_.node_self_size.push_back(static_cast<uint32_t>(std::min<uint64_t>(v, UINT32_MAX)));
        else if (f == ne_)
          s_.first_edge.push_back(static_cast<uint32_t>(v));  // the edge count, until finished
      } else if (w == Where::kEdges) {
        int f = static_cast<int>(i % edge_fields_.size());
        if (f == et_)
          s_.edge_type.push_back(static_cast<uint8_t>(v));
        else if (f == en_)
          s_.edge_name.push_back(static_cast<uint32_t>(v));
        else if (f == eto_)
          s_.edge_to.push_back(static_cast<uint32_t>(v / node_fields_.size()));
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
        if (f + 1 == static_cast<int>(location_fields_.size())) s_.locations[loc_node_] = loc_;
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
};

// Counts the bytes a stream's buffer hands out.
Result<HeapSnapshot> parse_from(std::istream& in, const uint64_t* consumed = nullptr) {
  HeapSnapshot s;
  Sax sax(s);
  auto start = in.tellg();
  bool ok = nlohmann::json::sax_parse(in, &sax, nlohmann::json::input_format_t::json, false);
  if (!ok || !sax.finished_)
    return make_error(sax.error_.empty() ? "the heap snapshot ended before it was complete" : sax.error_);
  if (consumed)
    s.json_bytes = *consumed;
  else if (auto end = in.tellg(); start >= 0 && end >= 0)
    s.json_bytes = static_cast<uint64_t>(end - start);
  s.string_data.shrink_to_fit();
  s.string_end.shrink_to_fit();
  size_t n = s.node_type.size();
  if (s.node_name.size() != n || s.node_id.size() != n || s.node_self_size.size() != n ||
      s.first_edge.size() != n || s.edge_name.size() != s.edge_type.size() ||
      s.edge_to.size() != s.edge_type.size())
    return make_error("the heap snapshot's node or edge list is cut short");
  // Edge counts become offsets in place: node i's edges start where the counts before it add up to.
  uint64_t total = 0;
  for (size_t i = 0; i < n; ++i) {
    uint64_t count = s.first_edge[i];
    s.first_edge[i] = static_cast<uint32_t>(total);
    total += count;
    if (total > UINT32_MAX) return make_error("the heap snapshot holds more edges than memlens can index");
  }
  s.first_edge.push_back(static_cast<uint32_t>(total));
  if (s.first_edge[n] != s.edge_type.size())
    return make_error(fmt::format("the heap snapshot's nodes list {} edges, its edge list holds {}",
                                  s.first_edge[n], s.edge_type.size()));
  for (auto to : s.edge_to)
    if (to >= n) return make_error("a heap snapshot edge points past the node list");
  for (auto nm : s.node_name)
    if (nm >= s.string_end.size())
      return make_error("a heap snapshot node names a string past the string list");
  return s;
}

}  // namespace

std::string_view HeapSnapshot::type_name(size_t node) const {
  uint8_t t = node_type[node];
  return t < node_types.size() ? std::string_view(node_types[t]) : std::string_view("?");
}

std::string_view HeapSnapshot::edge_type_name(size_t edge) const {
  uint8_t t = edge_type[edge];
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

std::string HeapSnapshot::edge_label(size_t edge) const {
  auto t = edge_type_name(edge);
  if (t == "element" || t == "hidden") return fmt::format("[{}]", edge_name[edge]);
  if (edge_name[edge] >= string_end.size()) return "?";
  std::string n(str(edge_name[edge]));
  bool numeric = !n.empty() && std::all_of(n.begin(), n.end(), [](char c) { return c >= '0' && c <= '9'; });
  if (numeric || n.empty()) return fmt::format("\"{}\"", n);
  return n.substr(0, 120);
}

std::string HeapSnapshot::group_key(size_t node) const {
  return fmt::format("{}\t{}", type_name(node), group(node));
}

uint64_t HeapSnapshot::entries(size_t node) const {
  auto t = type_name(node);
  if (t != "object") return 0;
  auto n = name(node);
  uint64_t count = 0;
  for (uint64_t e = first_edge[node]; e < first_edge[node + 1]; ++e) {
    auto et = edge_type_name(e);
    if (et == "element")
      ++count;
    else if (et == "property" && str(edge_name[e]) != "__proto__")
      ++count;
    else if (et == "internal" && (n == "Map" || n == "Set") && str(edge_name[e]) == "table") {
      size_t table = edge_to[e];
      uint64_t slots = first_edge[table + 1] - first_edge[table];
      count += n == "Map" ? slots / 2 : slots;
    } else if (et == "internal" && n == "Array" && str(edge_name[e]) == "elements") {
      size_t el = edge_to[e];
      // Elements as element edges of the array itself are counted above; some majors list them here.
      uint64_t own = 0;
      for (uint64_t f = first_edge[node]; f < first_edge[node + 1]; ++f)
        own += edge_type_name(f) == "element";
      if (own == 0) count += first_edge[el + 1] - first_edge[el];
    }
  }
  return count;
}

uint64_t HeapSnapshot::bytes_in_memory() const {
  uint64_t b = node_type.capacity() + node_name.capacity() * 4 + node_id.capacity() * 4 +
               node_self_size.capacity() * 4 + first_edge.capacity() * 4 + edge_type.capacity() +
               edge_name.capacity() * 4 + edge_to.capacity() * 4;
  return b + string_data.capacity() + string_end.capacity() * 4;
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

HeapSummary summarize(const HeapSnapshot& s) {
  HeapSummary out;
  out.ids.reserve(s.nodes());
  for (size_t i = 0; i < s.nodes(); ++i) {
    auto& g = out.groups[s.group_key(i)];
    ++g.count;
    g.size += s.node_self_size[i];
    out.ids.push_back(s.node_id[i]);
    if (uint64_t e = s.entries(i); e >= 16) out.entries[s.node_id[i]] = e;
  }
  std::sort(out.ids.begin(), out.ids.end());
  return out;
}

BfsTree bfs(const HeapSnapshot& s) {
  BfsTree t;
  t.parent.assign(s.nodes(), BfsTree::kUnreached);
  t.via.assign(s.nodes(), 0);
  if (s.nodes() == 0) return t;
  t.parent[0] = 0;
  std::vector<uint32_t> queue;
  auto reach = [&](uint32_t from, uint64_t e) {
    uint32_t to = s.edge_to[e];
    if (t.parent[to] != BfsTree::kUnreached || s.edge_type_name(e) == "weak") return;
    t.parent[to] = from;
    t.via[to] = static_cast<uint32_t>(e);
    queue.push_back(to);
  };
  auto run = [&](size_t q) {
    for (; q < queue.size(); ++q)
      for (uint64_t e = s.first_edge[queue[q]]; e < s.first_edge[queue[q] + 1]; ++e) reach(queue[q], e);
  };
  // The app's own roots first (the global objects the root points to), as DevTools does, so a path goes
  // through the app's variables rather than V8's internal root lists where both reach an object; then the
  // rest ((GC roots), the embedder's roots).
  for (uint64_t e = s.first_edge[0]; e < s.first_edge[1]; ++e)
    if (s.type_name(s.edge_to[e]) == "object") reach(0, e);
  run(0);
  size_t q = queue.size();
  for (uint64_t e = s.first_edge[0]; e < s.first_edge[1]; ++e) reach(0, e);
  run(q);
  return t;
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
    uint64_t e = tree.via[n];
    // A closure's scope: the variables it captured (a module's top-level ones for a function defined there).
    if (s.type_name(from) == "closure" && s.edge_type_name(e) == "internal" &&
        s.str(s.edge_name[e]) == "context")
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
    for (uint64_t e = s.first_edge[node]; e < s.first_edge[node + 1]; ++e)
      if (s.edge_type_name(e) == "internal" && s.str(s.edge_name[e]).substr(0, prefix.size()) == prefix)
        return s.edge_to[e];
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
  };
  std::unordered_map<std::string, Acc> groups;
  for (size_t i = 0; i < after.nodes(); ++i) {
    auto& a = groups[after.group_key(i)];
    if (a.type.empty()) a.type = std::string(after.type_name(i));
    ++a.count;
    a.bytes += after.node_self_size[i];
    if (!std::binary_search(before.ids.begin(), before.ids.end(), after.node_id[i])) {
      ++a.new_objects;
      a.new_bytes += after.node_self_size[i];
      if (a.representative == SIZE_MAX || after.node_self_size[i] > after.node_self_size[a.representative])
        a.representative = i;
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
    uint64_t before, after;
  };
  std::vector<Grew> grew;
  for (size_t i = 0; i < after.nodes(); ++i) {
    auto b = before.entries.find(after.node_id[i]);
    if (b == before.entries.end()) continue;
    uint64_t e = after.entries(i);
    if (e >= b->second + opts.min_collection_growth) grew.push_back({i, b->second, e});
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
      if (auto loc = after.locations.find(static_cast<uint32_t>(a.representative));
          loc != after.locations.end()) {
        std::string script = script_of(after, a.representative);
        g.location = script.empty()
                         ? fmt::format("script {} line {}", loc->second.script_id, loc->second.line + 1)
                         : fmt::format("{}:{}", script, loc->second.line + 1);
      }
    }
    out.groups.push_back(std::move(g));
  }
  for (const auto& gr : grew) {
    model::JsGrowingCollection c;
    c.type = std::string(after.type_name(gr.node));
    c.name = std::string(after.name(gr.node));
    c.id = after.node_id[gr.node];
    c.entries_before = gr.before;
    c.entries_after = gr.after;
    c.retainer_path = retainer_path(after, tree, gr.node, opts.max_path_edges);
    out.collections.push_back(std::move(c));
  }
  return out;
}

}  // namespace memlens::inspector
