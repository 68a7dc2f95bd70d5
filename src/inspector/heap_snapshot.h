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
#include <mutex>
#include <streambuf>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/result.h"
#include "model/js_objects.h"

namespace memlens::inspector {

struct HeapSnapshot {
  std::vector<std::string> node_types;  // meta.node_types[0]
  std::vector<std::string> edge_types;  // meta.edge_types[0]
  // Per node (index = position in the snapshot's node list; node 0 is the synthetic root).
  std::vector<uint8_t> node_type;
  std::vector<uint32_t> node_name;  // index into strings
  std::vector<uint32_t> node_id;
  std::vector<uint32_t> node_self_size;
  std::vector<uint32_t> first_edge;  // filled by finish: node i's edges are [first_edge[i], first_edge[i+1])
  // Per edge.
  std::vector<uint8_t> edge_type;
  std::vector<uint32_t> edge_name;  // string index, or the element index for element/hidden edges
  std::vector<uint32_t> edge_to;    // node index
  // The string table, packed; each string cut at kMaxString bytes (names are all memlens reads, and a heap
  // can hold strings of many megabytes).
  std::string string_data;
  std::vector<uint32_t> string_end;
  static constexpr size_t kMaxString = 200;
  std::string_view str(uint32_t i) const {
    if (i >= string_end.size()) return {};
    uint32_t b = i == 0 ? 0 : string_end[i - 1];
    return std::string_view(string_data).substr(b, string_end[i] - b);
  }
  struct Location {
    uint32_t script_id = 0, line = 0, column = 0;  // 0-based as V8 gives them
  };
  std::unordered_map<uint32_t, Location> locations;  // by node index (closures)
  uint64_t json_bytes = 0;

  size_t nodes() const { return node_type.size(); }
  std::string_view type_name(size_t node) const;
  std::string_view edge_type_name(size_t edge) const;
  std::string_view name(size_t node) const;
  // The group a node is counted in: its constructor (objects) or function name (closures), else "(type)".
  std::string group(size_t node) const;
  std::string group_key(size_t node) const;  // type and group: a class and its constructor apart
  // The label an edge shows in a retainer path: a property or variable name, or [index].
  std::string edge_label(size_t edge) const;
  // How many entries a collection-like node holds (Map/Set table entries, array elements, properties).
  uint64_t entries(size_t node) const;
  uint64_t bytes_in_memory() const;
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

// What diff() keeps of an earlier snapshot: per group count and size, the ids it held (sorted), and
// the entry count of every collection-like object with a few entries or more.
struct HeapSummary {
  struct Group {
    uint64_t count = 0, size = 0;
  };
  std::unordered_map<std::string, Group> groups;
  std::vector<uint32_t> ids;
  std::unordered_map<uint32_t, uint64_t> entries;
};
HeapSummary summarize(const HeapSnapshot& s);

struct DiffOptions {
  size_t top_groups = 5;   // groups given a retainer path
  size_t max_groups = 20;  // groups listed
  size_t max_collections = 10;
  uint64_t min_collection_growth = 100;  // entries
  size_t max_path_edges = 40;
};

// The growth from `before` to `after`, with retainer paths (BFS from the synthetic root over non-weak edges).
model::JsHeapDiff diff(const HeapSummary& before, const HeapSnapshot& after, const DiffOptions& opts = {});

// Shortest paths from the synthetic root over non-weak edges: per node, the node and edge it was reached
// through (kUnreached when it was not).
struct BfsTree {
  static constexpr uint32_t kUnreached = UINT32_MAX;
  std::vector<uint32_t> parent;
  std::vector<uint32_t> via;  // edge index
};
BfsTree bfs(const HeapSnapshot& s);
// The labels from a root to `node`: the root's name ("global", "(GC roots)"), then each edge's (a property
// or variable name, [index], "(scope of f)" for a closure's captured variables); "..." first when cut at
// max_edges (the steps nearest the node are kept); empty when unreached.
std::vector<std::string> retainer_path(const HeapSnapshot& s, const BfsTree& tree, size_t node,
                                       size_t max_edges);

}  // namespace memlens::inspector
