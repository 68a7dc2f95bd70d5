// V8 heap snapshots, read as they stream in (HeapProfiler.addHeapSnapshotChunk) into compact arrays: the
// JSON text is never held. The field layout comes from the snapshot's own `snapshot.meta` (it differs
// across Node majors). From two snapshots of one inspector session (object ids are stable within it):
// which groups of objects (constructor or type) grew, which collections gained entries, and a shortest
// retainer path from a GC root to a representative new object of each top group.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <istream>
#include <memory>
#include <mutex>
#include <streambuf>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/result.h"
#include "model/js_objects.h"

namespace memlens::inspector {

// Bytes appended in blocks of 1 MiB (no reallocation, so no transient copy while a snapshot grows), each
// piece kept within one block when asked, so that it can be viewed in place.
class ByteBlocks {
 public:
  static constexpr unsigned kBlockBits = 20;
  static constexpr uint64_t kBlock = uint64_t{1} << kBlockBits;
  uint64_t size() const { return size_; }
  // Appends `n` bytes, first moving to a new block if they would straddle one; returns where they start.
  uint64_t append_unsplit(const char* p, size_t n);
  void push(uint8_t b);
  uint8_t at(uint64_t off) const { return blocks_[off >> kBlockBits][off & (kBlock - 1)]; }
  std::string_view view(uint64_t off, size_t n) const {
    return {reinterpret_cast<const char*>(&blocks_[off >> kBlockBits][off & (kBlock - 1)]), n};
  }
  uint64_t capacity() const { return blocks_.size() * kBlock; }

 private:
  std::vector<std::unique_ptr<uint8_t[]>> blocks_;
  uint64_t size_ = 0;
};

struct HeapSnapshot {
  std::vector<std::string> node_types;  // meta.node_types[0]
  std::vector<std::string> edge_types;  // meta.edge_types[0]
  // Per node (index = position in the snapshot's node list; node 0 is the synthetic root).
  std::vector<uint8_t> node_type;
  std::vector<uint32_t> node_name;  // index into strings
  // Per node, in node order, read front to back (NodeIter): its id's difference from the previous node's
  // (zigzag varint: V8 numbers the objects of a heap walk nearly in order) and its self size (varint).
  ByteBlocks node_bytes;
  class NodeIter {
   public:
    bool next(uint32_t& id, uint32_t& self_size);  // the next node's; false after the last

   private:
    friend struct HeapSnapshot;
    const HeapSnapshot* s_ = nullptr;
    uint64_t pos_ = 0;
    uint32_t prev_id_ = 0;
  };
  NodeIter node_values() const;
  // Node i's edges are the bytes [first_edge[i], first_edge[i+1]) of edge_bytes (n + 1 entries).
  std::vector<uint32_t> first_edge;
  // Edges, in node order, each as two varints: (name << 3 | type), where an element or hidden edge's name
  // is its index's difference from the node's previous one (zigzag), then the target node's difference from
  // the previous target (from the node itself for its first edge; zigzag). A heap of small objects has
  // about four edges per object, whose targets are mostly near each other: 2-6 bytes an edge, not 9.
  ByteBlocks edge_bytes;
  uint64_t edge_count = 0;
  struct Edge {
    uint8_t type = 0;
    uint32_t name = 0;  // string index, or the element index for element/hidden edges
    uint32_t to = 0;    // node index
  };
  class EdgeIter {
   public:
    bool next(Edge& e);

   private:
    friend struct HeapSnapshot;
    const HeapSnapshot* s_ = nullptr;
    uint64_t pos_ = 0, end_ = 0;
    uint32_t prev_to_ = 0, prev_index_ = 0;
    uint64_t varint();
  };
  // Usage: `Edge e; for (auto it = s.edges(node); it.next(e);) ...`
  EdgeIter edges(size_t node) const;
  size_t edge_total() const { return edge_count; }

  // The string table, only as much of it as memlens shows: the names of nodes other than strings and
  // numbers (whose name is their value) and of edges other than element and hidden ones; each cut at
  // kMaxString bytes (a heap can hold strings of many megabytes). A name of digits only (an object used
  // as a map, an array's backing store) is held as its number: text() gives it back.
  static constexpr size_t kMaxString = 200;
  static constexpr uint32_t kNumeric = 0x80000000u;  // string_at: the number below this bit
  static constexpr uint32_t kAbsent = 0xffffffffu;   // string_at: not kept
  ByteBlocks string_data;                            // each kept string: a length byte, then its bytes
  std::vector<uint32_t> string_at;                   // per string index: offset in string_data, or a tag
  std::string_view str(uint32_t i) const;            // "" for a number or a string not kept
  std::string text(uint32_t i) const;                // str(), or the number's digits
  size_t strings() const { return string_at.size(); }
  struct Location {
    uint32_t script_id = 0, line = 0, column = 0;  // 0-based as V8 gives them
  };
  std::vector<std::pair<uint32_t, Location>> locations;  // by node index (closures), sorted
  const Location* location(uint32_t node) const;
  uint64_t json_bytes = 0;

  size_t nodes() const { return node_type.size(); }
  std::string_view type_name(size_t node) const;
  std::string_view edge_type_name(uint8_t type) const;
  std::string_view name(size_t node) const;
  // The group a node is counted in: its constructor (objects) or function name (closures), else "(type)".
  std::string group(size_t node) const;
  std::string group_key(size_t node) const;  // type and group: a class and its constructor apart
  // The label an edge shows in a retainer path: a property or variable name, or [index].
  std::string edge_label(const Edge& e) const;
  // How many entries a collection-like node holds (Map/Set table entries, array elements, properties).
  uint64_t entries(size_t node) const;
  uint64_t bytes_in_memory() const;
  // Edge type numbers looked up once (255 when the snapshot's meta does not list the type).
  uint8_t t_element = 255, t_hidden = 255, t_weak = 255, t_internal = 255, t_property = 255;
  uint8_t t_context = 255;
};

// Consumes snapshot JSON text in pieces. feed() may be called from one thread while parse() runs on
// another; parse() returns once the whole snapshot was read (or the feed ended or failed).
class HeapSnapshotStream {
 public:
  HeapSnapshotStream();
  ~HeapSnapshotStream();
  void feed(std::string_view chunk);  // blocks while more than max_queued_bytes wait to be parsed
  void end();                         // no more text will come (an incomplete snapshot is an error)
  Result<HeapSnapshot> parse();       // blocks until the snapshot is complete
  size_t max_queued_bytes = size_t{1} << 20;

 private:
  class Buf : public std::streambuf {
   public:
    explicit Buf(HeapSnapshotStream& s) : s_(s) {}
    int_type underflow() override;
    uint64_t consumed = 0;  // bytes handed to the parser

   private:
    HeapSnapshotStream& s_;
    std::string cur_;
  };
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::string> queue_;
  size_t queued_bytes_ = 0;
  bool ended_ = false;
  Buf buf_;
};

// Parses a whole snapshot from a stream (a .heapsnapshot file).
Result<HeapSnapshot> parse_heap_snapshot(std::istream& in);

// What diff() keeps of an earlier snapshot: per group count and size, the ids it held, and
// the entry count of every collection-like object with a few entries or more.
struct HeapSummary {
  struct Group {
    uint64_t count = 0, size = 0;
  };
  std::unordered_map<std::string, Group> groups;
  // The ids: a bitmap over 0..max id when that is smaller than a sorted list (V8 numbers objects densely).
  std::vector<uint32_t> ids;
  std::vector<bool> id_bits;
  bool has_id(uint32_t id) const;
  std::unordered_map<uint32_t, uint64_t> entries;
};
HeapSummary summarize(const HeapSnapshot& s);

struct DiffOptions {
  size_t top_groups = 5;   // groups given a retainer path
  size_t max_groups = 20;  // groups listed
  size_t max_collections = 10;
  uint64_t min_collection_growth = 100;  // entries
  size_t max_path_edges = 40;
  size_t retained_groups = 5;  // groups given a retained size (one walk of the graph each)
};

// The growth from `before` to `after`, with retainer paths (BFS from the synthetic root over non-weak edges)
// and, for the top groups, their retained size: the self sizes of every object that only the group's
// objects keep reachable from the root (the group's own included), found by walking the graph once more
// with the group's objects taken out. That is what freeing the whole group would free; it counts an object
// that several of the group share once, where a sum of per-object retained sizes (a dominator tree) would
// miss it. It needs a bit per node and a queue, well within what the snapshot itself takes.
model::JsHeapDiff diff(const HeapSummary& before, const HeapSnapshot& after, const DiffOptions& opts = {});

// Shortest paths from the synthetic root over non-weak edges: per node, the node it was reached from
// (kUnreached when it was not; the edge is the parent's first non-weak edge to it).
struct BfsTree {
  static constexpr uint32_t kUnreached = UINT32_MAX;
  std::vector<uint32_t> parent;
};
BfsTree bfs(const HeapSnapshot& s);
// The labels from a root to `node`: the root's name ("global", "(GC roots)"), then each edge's (a property
// or variable name, [index], "(scope of f)" for a closure's captured variables); "..." first when cut at
// max_edges (the steps nearest the node are kept); empty when unreached.
std::vector<std::string> retainer_path(const HeapSnapshot& s, const BfsTree& tree, size_t node,
                                       size_t max_edges);
// The self sizes of what only the nodes in `group` keep reachable from the root (themselves included);
// `reachable` is the full graph's reach (the BFS tree's reached nodes).
uint64_t retained_bytes(const HeapSnapshot& s, const std::vector<bool>& reachable,
                        const std::vector<bool>& group);

}  // namespace memlens::inspector
