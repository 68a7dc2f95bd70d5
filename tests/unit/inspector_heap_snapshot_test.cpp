// Heap snapshots read as a stream, and the diff of two: on snapshots node itself writes
// (v8.writeHeapSnapshot) from a script that knows what it added between them.
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "inspector/heap_snapshot.h"

namespace memlens::inspector {
namespace {

namespace fs = std::filesystem;

bool in_ci() {
  const char* ci = std::getenv("CI");
  return ci && std::string(ci) == "true";
}

// Writes two snapshots from one node process: `before` with 100 LeakEntry objects in the Map
// `leakyCache`, 100 closures leakyHandler in the array `handlers` and 100 Holder objects in `holders`, each
// Holder alone holding an array of kDoubles doubles (8 bytes each whatever the pointer size), `after` with
// 500 more of each; an Array and a plain object kept at the same size.
constexpr int kDoubles = 2000;
struct Snapshots {
  fs::path dir, before, after;
  ~Snapshots() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
};

std::unique_ptr<Snapshots> write_snapshots(std::string& why) {
  auto s = std::make_unique<Snapshots>();
  s->dir = fs::temp_directory_path() / fmt::format("memlens-heapsnap-{}", getpid());
  fs::create_directories(s->dir);
  s->before = s->dir / "before.heapsnapshot";
  s->after = s->dir / "after.heapsnapshot";
  std::string script = fmt::format(
      "const v8 = require('v8');\n"
      "class LeakEntry {{ constructor(i) {{ this.i = i; this.payload = 'p'.repeat(64) + i; }} }}\n"
      "function makeHandler(i) {{ return function leakyHandler() {{ return i; }}; }}\n"
      "class Holder {{ constructor(i) {{ this.data = new Array({2}).fill(i + 0.5); }} }}\n"
      "const leakyCache = new Map(); const steady = []; const table = {{}}; const handlers = [];\n"
      "const holders = [];\n"
      "globalThis.holder = {{ leakyCache, steady, table, handlers, holders }};\n"
      "for (let i = 0; i < 100; i++) {{ leakyCache.set('k' + i, new LeakEntry(i)); steady.push({{ i }}); "
      "table['t' + i] = {{ i }}; handlers.push(makeHandler(i)); holders.push(new Holder(i)); }}\n"
      "v8.writeHeapSnapshot('{0}');\n"
      "for (let i = 100; i < 600; i++) {{ leakyCache.set('k' + i, new LeakEntry(i)); "
      "handlers.push(makeHandler(i)); holders.push(new Holder(i)); }}\n"
      "v8.writeHeapSnapshot('{1}');\n",
      s->before.string(), s->after.string(), kDoubles);
  fs::path js = s->dir / "make_snapshots.js";
  std::ofstream(js) << script;
  std::string cmd = fmt::format("node {} 2>&1", js.string());
  if (std::system(cmd.c_str()) != 0 || !fs::exists(s->after)) {
    why = "node could not write heap snapshots (is node on PATH?)";
    return nullptr;
  }
  return s;
}

#define REQUIRE_SNAPSHOTS(var)                                 \
  std::string why_;                                            \
  auto var = write_snapshots(why_);                            \
  if (!var) {                                                  \
    if (in_ci()) FAIL() << why_ << " (CI=true: not skipping)"; \
    GTEST_SKIP() << why_;                                      \
  }

HeapSnapshot parse_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  auto r = parse_heap_snapshot(in);
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().describe());
  return r.ok() ? std::move(*r) : HeapSnapshot{};
}

TEST(HeapSnapshot, StreamedInPiecesEqualsTheWholeFile) {
  REQUIRE_SNAPSHOTS(snaps);
  HeapSnapshot whole = parse_file(snaps->before);
  ASSERT_GT(whole.nodes(), 1000u);
  EXPECT_EQ(whole.json_bytes, fs::file_size(snaps->before));
  std::ifstream in(snaps->before, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  std::string all = text.str();

  HeapSnapshotStream stream;
  stream.max_queued_bytes = 64 << 10;  // the producer waits on the parser
  std::thread producer([&]() {
    std::mt19937 rng(7);
    for (size_t pos = 0; pos < all.size();) {
      size_t n = std::min<size_t>(all.size() - pos, 1 + rng() % 9000);
      stream.feed(std::string_view(all).substr(pos, n));
      pos += n;
    }
    stream.end();
  });
  auto streamed = stream.parse();
  producer.join();
  ASSERT_TRUE(streamed.ok()) << streamed.error().describe();
  EXPECT_EQ(streamed->nodes(), whole.nodes());
  EXPECT_EQ(streamed->edge_total(), whole.edge_total());
  EXPECT_EQ(streamed->first_edge, whole.first_edge);
  uint32_t id1 = 0, size1 = 0, id2 = 0, size2 = 0;
  for (auto a = streamed->node_values(), b = whole.node_values(); a.next(id1, size1);) {
    ASSERT_TRUE(b.next(id2, size2));
    ASSERT_EQ(id1, id2);
    ASSERT_EQ(size1, size2);
  }
  EXPECT_EQ(streamed->string_at, whole.string_at);
  for (uint32_t i = 0; i < whole.strings(); ++i) ASSERT_EQ(streamed->text(i), whole.text(i)) << i;
  EXPECT_EQ(streamed->json_bytes, all.size());
  // Compact: well below the text it was read from.
  EXPECT_LT(streamed->bytes_in_memory(), all.size());

  // Cut short: an error, never a partial snapshot.
  HeapSnapshotStream cut;
  std::thread half([&]() {
    cut.feed(std::string_view(all).substr(0, all.size() / 2));
    cut.end();
  });
  auto r = cut.parse();
  half.join();
  EXPECT_FALSE(r.ok());
}

TEST(HeapSnapshot, FieldLayoutComesFromMeta) {
  // Three nodes with the node fields in another order and an extra field: root -> Thing -.leaf-> Leaf.
  std::string text =
      R"({"snapshot":{"meta":{"node_fields":["id","extra","name","type","edge_count","self_size"],
    "node_types":[["hidden","object"]],"edge_fields":["to_node","type","name_or_index"],
    "edge_types":[["context","property","weak"]]}},
    "nodes":[1,0,0,0,1,0, 3,9,1,1,1,48, 5,0,3,1,0,16],"edges":[6,1,2, 12,1,4],
    "strings":["root","Thing / x","field","Leaf","leaf"]})";
  std::istringstream in(text);
  auto s = parse_heap_snapshot(in);
  ASSERT_TRUE(s.ok()) << s.error().describe();
  ASSERT_EQ(s->nodes(), 3u);
  uint32_t id = 0, size = 0;
  auto values = s->node_values();
  ASSERT_TRUE(values.next(id, size) && values.next(id, size));
  EXPECT_EQ(id, 3u);
  EXPECT_EQ(s->group(2), "Leaf");
  EXPECT_EQ(size, 48u);
  HeapSnapshot::Edge e;
  auto it = s->edges(0);
  ASSERT_TRUE(it.next(e));
  EXPECT_EQ(e.to, 1u);
  EXPECT_FALSE(it.next(e));
  it = s->edges(1);
  ASSERT_TRUE(it.next(e));
  EXPECT_EQ(e.to, 2u);
  EXPECT_EQ(s->edge_label(e), "leaf");
  auto tree = bfs(*s);
  EXPECT_EQ(retainer_path(*s, tree, 2, 10), (std::vector<std::string>{"Thing", "leaf"}));

  std::istringstream bad(R"({"snapshot":{"meta":{"node_fields":["type"]}},"nodes":[1]})");
  auto b = parse_heap_snapshot(bad);
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.error().describe().find("node and edge fields"), std::string::npos);
}

TEST(HeapSnapshot, NamesKeptAreTheOnesShownAndEdgesDecodeAsWritten) {
  // root -> Thing; Thing -"7526"-> a string node "payload text", Thing -[3]-> Leaf, Thing -[1000000]-> Leaf,
  // Thing -"0123"-> Leaf: a name of digits kept as a number, a leading zero kept as text, a string's value
  // (a node memlens shows only as "(string)") not kept; element indices going up and down.
  std::string text =
      R"({"snapshot":{"meta":{"node_fields":["type","name","id","self_size","edge_count"],
    "node_types":[["hidden","object","string"]],"edge_fields":["type","name_or_index","to_node"],
    "edge_types":[["element","property","weak"]]},"node_count":4,"edge_count":5},
    "nodes":[0,0,1,0,1, 1,1,3,40,4, 2,2,5,24,0, 1,3,7,16,0],
    "edges":[1,1,5, 1,4,10, 0,3,15, 0,1000000,15, 1,5,15],
    "strings":["root","Thing","payload text","Leaf","7526","0123"]})";
  std::istringstream in(text);
  auto s = parse_heap_snapshot(in);
  ASSERT_TRUE(s.ok()) << s.error().describe();
  EXPECT_EQ(s->text(4), "7526");
  EXPECT_NE(s->string_at[4] & HeapSnapshot::kNumeric, 0u);
  EXPECT_EQ(s->text(5), "0123");
  EXPECT_EQ(s->text(2), "");  // the string node's value
  EXPECT_EQ(s->group(2), "(string)");
  EXPECT_EQ(s->group(3), "Leaf");
  std::vector<std::string> labels;
  std::vector<uint32_t> to;
  HeapSnapshot::Edge e;
  for (auto it = s->edges(1); it.next(e);) {
    labels.push_back(s->edge_label(e));
    to.push_back(e.to);
  }
  EXPECT_EQ(labels, (std::vector<std::string>{"\"7526\"", "[3]", "[1000000]", "\"0123\""}));
  EXPECT_EQ(to, (std::vector<uint32_t>{2, 3, 3, 3}));
  EXPECT_EQ(s->edge_total(), 5u);
  // The whole group of Leaf (one object, 16 bytes) retains itself; Thing retains everything below it.
  auto tree = bfs(*s);
  std::vector<bool> reachable(s->nodes());
  for (size_t i = 0; i < s->nodes(); ++i) reachable[i] = tree.parent[i] != BfsTree::kUnreached;
  std::vector<bool> leaf(s->nodes()), thing(s->nodes());
  leaf[3] = thing[1] = true;
  EXPECT_EQ(retained_bytes(*s, reachable, leaf), 16u);
  EXPECT_EQ(retained_bytes(*s, reachable, thing), 40u + 24u + 16u);
}

// A frontier wider than the walk's ring (an array of 300,000 objects, each holding one more): every node is
// still reached, each through an edge its parent really has, and the retained sizes stay whole.
TEST(HeapSnapshot, WalkReachesEveryNodeOfAFrontierWiderThanItsRing) {
  constexpr uint32_t kLeaves = 300000;
  static_assert(kLeaves > 262144, "wider than the ring");
  // Nodes: 0 root, 1 holder object, 2 the array, then per leaf i: 3 + 2i the Leaf, 4 + 2i its Inner.
  std::string nodes = "0,0,1,0,1, 1,1,3,32,1, 1,2,5,16," + std::to_string(kLeaves);
  std::string edges = "1,4,5, 1,5,10";  // root -h-> holder -items-> array (to_node is a field offset)
  for (uint32_t i = 0; i < kLeaves; ++i) {
    nodes += fmt::format(",1,3,{},24,1,1,6,{},40,0", 7 + 4 * i, 9 + 4 * i);
    edges += fmt::format(",0,{},{}", i, (3 + 2 * i) * 5);
  }
  for (uint32_t i = 0; i < kLeaves; ++i) edges += fmt::format(",1,7,{}", (4 + 2 * i) * 5);
  // Edges are listed in node order: the root's, the holder's, the array's, then one per Leaf.
  std::string text = fmt::format(
      R"json({{"snapshot":{{"meta":{{"node_fields":["type","name","id","self_size","edge_count"],
    "node_types":[["hidden","object"]],"edge_fields":["type","name_or_index","to_node"],
    "edge_types":[["element","property","weak"]]}},"node_count":{},"edge_count":{}}},
    "nodes":[{}],"edges":[{}],"strings":["root","Holder","(array)","Leaf","h","items","Inner","inner"]}})json",
      3 + 2 * kLeaves, 2 + 2 * kLeaves, nodes, edges);
  std::istringstream in(text);
  auto s = parse_heap_snapshot(in);
  ASSERT_TRUE(s.ok()) << s.error().describe();
  ASSERT_EQ(s->nodes(), 3 + 2 * kLeaves);
  auto tree = bfs(*s);
  std::vector<bool> reachable(s->nodes()), parent_has_edge(s->nodes());
  HeapSnapshot::Edge e;
  for (uint32_t from = 0; from < s->nodes(); ++from)
    for (auto it = s->edges(from); it.next(e);)
      if (tree.parent[e.to] == from) parent_has_edge[e.to] = true;
  for (size_t n = 1; n < s->nodes(); ++n) {
    ASSERT_NE(tree.parent[n], BfsTree::kUnreached) << "node " << n << " not reached";
    ASSERT_TRUE(parent_has_edge[n]) << "node " << n << "'s parent " << tree.parent[n] << " has no edge to it";
    reachable[n] = true;
  }
  reachable[0] = true;
  auto path = retainer_path(*s, tree, s->nodes() - 1, 40);
  EXPECT_EQ(fmt::format("{}", fmt::join(path, " -> ")),
            fmt::format("Holder -> items -> [{}] -> inner", kLeaves - 1));
  // The holder retains the array, every Leaf and every Inner.
  std::vector<bool> holder(s->nodes(), false);
  holder[1] = true;
  EXPECT_EQ(retained_bytes(*s, reachable, holder), 32u + 16u + uint64_t{kLeaves} * (24 + 40));
}

TEST(HeapSnapshotDiff, NamesTheGrowingConstructorItsCollectionAndWhatHoldsIt) {
  REQUIRE_SNAPSHOTS(snaps);
  HeapSnapshot before = parse_file(snaps->before);
  HeapSnapshot after = parse_file(snaps->after);
  DiffOptions opts;
  opts.top_groups = opts.max_groups;  // every listed group gets its path and its retained size
  opts.retained_groups = opts.max_groups;
  auto d = diff(summarize(before), after, opts);
  ASSERT_FALSE(d.groups.empty());
  auto leak =
      std::find_if(d.groups.begin(), d.groups.end(), [](const auto& g) { return g.name == "LeakEntry"; });
  ASSERT_NE(leak, d.groups.end());
  // Among the top five, the groups the Holders add aside (their arrays of doubles make "(array)" the
  // largest, whichever of its new objects its path goes to).
  size_t rank = std::count_if(d.groups.begin(), leak, [](const auto& g) {
    return g.name != "(array)" &&
           fmt::format("{}", fmt::join(g.retainer_path, " ")).find("holders") == std::string::npos;
  });
  EXPECT_LT(rank, 5u) << "LeakEntry is not among the top growing groups";
  EXPECT_EQ(leak->count_delta, 500);  // what the script added
  EXPECT_EQ(leak->new_objects, 500u);
  EXPECT_EQ(leak->count, 600u);
  std::string path = fmt::format("{}", fmt::join(leak->retainer_path, " -> "));
  EXPECT_NE(path.find("leakyCache"), std::string::npos) << path;

  auto map =
      std::find_if(d.collections.begin(), d.collections.end(), [](const auto& c) { return c.name == "Map"; });
  ASSERT_NE(map, d.collections.end());
  EXPECT_NEAR(static_cast<double>(map->entries_after - map->entries_before), 500.0, 2.0);
  std::string mpath = fmt::format("{}", fmt::join(map->retainer_path, " -> "));
  EXPECT_NE(mpath.find("leakyCache"), std::string::npos) << mpath;
  // The closures: counted apart from objects, located in the script that made them.
  auto fn = std::find_if(d.groups.begin(), d.groups.end(),
                         [](const auto& g) { return g.name == "leakyHandler" && g.type == "closure"; });
  ASSERT_NE(fn, d.groups.end());
  EXPECT_EQ(fn->count_delta, 500);
  EXPECT_NE(fn->location.find("make_snapshots.js:"), std::string::npos) << fn->location;
  std::string fpath = fmt::format("{}", fmt::join(fn->retainer_path, " -> "));
  EXPECT_NE(fpath.find("handlers"), std::string::npos) << fpath;
  // The handlers array grew by 500 elements; the other array and the plain object kept their size.
  bool handlers_grew = false;
  for (const auto& c : d.collections) {
    std::string cpath = fmt::format("{}", fmt::join(c.retainer_path, " -> "));
    EXPECT_TRUE(c.name == "Map" || cpath.find("handlers") != std::string::npos ||
                cpath.find("holders") != std::string::npos)
        << c.name << " " << cpath;
    if (c.name == "Array" && cpath.find("handlers") != std::string::npos) {
      handlers_grew = true;
      EXPECT_EQ(c.entries_after - c.entries_before, 500u);
    }
  }
  EXPECT_TRUE(handlers_grew);

  // Retained size: the 600 Holders retain their own arrays of doubles (kDoubles * 8 bytes each, held by
  // nothing else) and the few dozen bytes of each Holder and its JSArray and array header, nothing more.
  auto holder =
      std::find_if(d.groups.begin(), d.groups.end(), [](const auto& g) { return g.name == "Holder"; });
  ASSERT_NE(holder, d.groups.end());
  EXPECT_EQ(holder->count, 600u);
  uint64_t doubles = 600ull * kDoubles * 8;
  EXPECT_GE(holder->retained_bytes, static_cast<int64_t>(doubles));
  EXPECT_LE(holder->retained_bytes, static_cast<int64_t>(doubles + 600 * 256)) << holder->retained_bytes;
  // LeakEntry objects share nothing that anything else holds: each retains at least itself.
  EXPECT_GE(leak->retained_bytes, static_cast<int64_t>(leak->bytes));
  EXPECT_TRUE(d.retained_note.empty()) << d.retained_note;
}

}  // namespace
}  // namespace memlens::inspector
