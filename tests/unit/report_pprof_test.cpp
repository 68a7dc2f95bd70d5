#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <set>

#include "common/safe_file.h"
#include "report/folded.h"
#include "report/pprof.h"
#include "report/proto/profile.pb.h"
#include "report_fixtures.h"

namespace memlens::report {
namespace {

using fixtures::sample_profile;
using symbolize::Frame;

// What any correct encoding of `profile` must contain, computed from the input alone.
struct Expected {
  std::vector<int64_t> totals;
  std::set<std::string> functions, build_ids, modules, addresses, pids;
};
Expected expected_of(const symbolize::StackProfile& p) {
  Expected e;
  e.totals.assign(p.sample_types.size(), 0);
  for (const symbolize::StackSample& s : p.samples) {
    for (size_t k = 0; k < e.totals.size(); ++k) e.totals[k] += s.values[k];
    e.pids.insert(std::to_string(s.pid));
    for (const Frame& f : s.stack) {
      e.functions.insert(valid_utf8(f.label()));
      if (!f.build_id.empty()) e.build_ids.insert(f.build_id);
      e.modules.insert(f.module);
      e.addresses.insert(std::to_string(f.address));
    }
  }
  return e;
}

TEST(Gzip, RoundTripAndCorruption) {
  std::string data;
  for (int i = 0; i < 100000; ++i) data += std::to_string(i * 7919 % 1000);
  Result<std::string> z = gzip_compress(data);
  ASSERT_TRUE(z.ok());
  EXPECT_EQ(static_cast<unsigned char>((*z)[0]), 0x1f);
  EXPECT_EQ(static_cast<unsigned char>((*z)[1]), 0x8b);
  EXPECT_LT(z->size(), data.size());
  Result<std::string> back = gzip_decompress(*z);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, data);
  EXPECT_FALSE(gzip_decompress(z->substr(0, z->size() / 2)).ok());
  EXPECT_FALSE(gzip_decompress(*z, 1000).ok()) << "the output bound is enforced";
  EXPECT_TRUE(gzip_compress("").ok());
}

// Decoded with the generated parser: the structure pprof requires (ids, references, string 0) and the
// input's figures.
TEST(Pprof, EncodesProfileProto) {
  const symbolize::StackProfile profile = sample_profile("array_buffers", 11);
  const Expected want = expected_of(profile);
  Result<std::string> gz = encode_pprof(profile);
  ASSERT_TRUE(gz.ok());
  Result<std::string> raw = gzip_decompress(*gz);
  ASSERT_TRUE(raw.ok());
  pprof::Profile p;
  ASSERT_TRUE(p.ParseFromString(*raw));

  ASSERT_GT(p.string_table_size(), 0);
  EXPECT_EQ(p.string_table(0), "");
  auto str = [&](int64_t i) { return p.string_table(static_cast<int>(i)); };
  ASSERT_EQ(p.sample_type_size(), 2);
  EXPECT_EQ(str(p.sample_type(0).type()), "bytes");
  EXPECT_EQ(str(p.sample_type(0).unit()), "bytes");
  EXPECT_EQ(str(p.sample_type(1).type()), "count");
  EXPECT_EQ(str(p.default_sample_type()), "bytes");
  EXPECT_EQ(p.time_nanos(), profile.time_ns);
  EXPECT_EQ(p.duration_nanos(), profile.duration_ns);

  std::map<uint64_t, const pprof::Function*> functions;
  std::map<uint64_t, const pprof::Mapping*> mappings;
  std::map<uint64_t, const pprof::Location*> locations;
  for (const auto& f : p.function()) EXPECT_TRUE(functions.emplace(f.id(), &f).second);
  for (const auto& m : p.mapping()) EXPECT_TRUE(mappings.emplace(m.id(), &m).second);
  for (const auto& l : p.location()) EXPECT_TRUE(locations.emplace(l.id(), &l).second);
  EXPECT_EQ(functions.count(0) + mappings.count(0) + locations.count(0), 0u) << "id 0 is reserved";

  std::set<std::string> names, build_ids, addresses;
  for (const auto& [id, f] : functions) names.insert(str(f->name()));
  for (const auto& [id, m] : mappings) {
    if (!str(m->build_id()).empty()) build_ids.insert(str(m->build_id()));
    EXPECT_LT(m->memory_start(), m->memory_limit());
  }
  for (const auto& [id, l] : locations) {
    EXPECT_TRUE(mappings.count(l->mapping_id()));
    ASSERT_EQ(l->line_size(), 1);
    EXPECT_TRUE(functions.count(l->line(0).function_id()));
    const pprof::Mapping* m = mappings.at(l->mapping_id());
    EXPECT_GE(l->address(), m->memory_start());
    EXPECT_LT(l->address(), m->memory_limit());
    addresses.insert(std::to_string(l->address()));
  }
  EXPECT_EQ(names, want.functions);
  EXPECT_EQ(build_ids, want.build_ids);
  EXPECT_EQ(addresses, want.addresses);

  std::vector<int64_t> totals(2, 0);
  for (const auto& s : p.sample()) {
    ASSERT_EQ(s.value_size(), 2);
    for (int k = 0; k < 2; ++k) totals[k] += s.value(k);
    for (uint64_t id : s.location_id()) EXPECT_TRUE(locations.count(id));
    // Leaf first: the last frame of every fixture stack is an allocator.
    const std::string leaf = str(functions.at(locations.at(s.location_id(0))->line(0).function_id())->name());
    EXPECT_TRUE(leaf == "malloc" || leaf == "mmap" || leaf.rfind("v8::internal::", 0) == 0) << leaf;
  }
  EXPECT_EQ(totals, want.totals);
  EXPECT_LT(p.sample_size(), static_cast<int>(profile.samples.size())) << "equal stacks are merged";
}

TEST(Pprof, WritesKindFile) {
  const symbolize::StackProfile profile = sample_profile("mmap_growth", 5, 30);
  const std::string dir = fixtures::artifact_dir("pprof").string();
  ASSERT_TRUE(write_pprof(dir, profile).ok());
  Result<OpenedFile> f = open_regular_file(dir + "/mmap_growth.pb.gz");
  ASSERT_TRUE(f.ok());
  EXPECT_GT(f->size, 100);
}

// The independent decoder: the npm package pprof-format reads what memlens wrote and finds the input's
// sample types, totals, names, build-ids, modules, addresses and pids.
TEST(Pprof, DecodedByPprofFormat) {
  MEMLENS_REQUIRE_NODE_CHECKS(false);
  const std::string dir = fixtures::artifact_dir("pprof").string();
  for (const auto& [kind, seed] :
       std::vector<std::pair<std::string, unsigned>>{{"array_buffers", 1}, {"page_faults", 2}}) {
    const symbolize::StackProfile profile = sample_profile(kind, seed);
    ASSERT_TRUE(write_pprof(dir, profile).ok());
    const Expected want = expected_of(profile);
    nlohmann::json expect = {
        {"sample_types", {{{"type", "bytes"}, {"unit", "bytes"}}, {{"type", "count"}, {"unit", "count"}}}},
        {"totals", {std::to_string(want.totals[0]), std::to_string(want.totals[1])}},
        {"functions", want.functions},
        {"build_ids", want.build_ids},
        {"modules", want.modules},
        {"addresses", want.addresses},
        {"pids", want.pids},
        {"time_nanos", std::to_string(profile.time_ns)},
        {"duration_nanos", std::to_string(profile.duration_ns)},
    };
    const std::string expect_file = dir + "/" + kind + ".expect.json";
    ASSERT_TRUE(
        write_file_atomic(expect_file, expect.dump(2, ' ', false, nlohmann::json::error_handler_t::replace))
            .ok());
    fixtures::CommandResult r =
        fixtures::run_node_check("check-pprof.js", {dir + "/" + kind + ".pb.gz", expect_file});
    EXPECT_EQ(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find("check-pprof: OK"), std::string::npos);
  }
}

// A file that is not what the expectations say must fail the checker: the check can fail.
TEST(Pprof, PprofFormatCheckerRejectsWrongTotals) {
  MEMLENS_REQUIRE_NODE_CHECKS(false);
  const std::string dir = fixtures::artifact_dir("pprof").string();
  const symbolize::StackProfile profile = sample_profile("gc_triggers", 9, 40);
  ASSERT_TRUE(write_pprof(dir, profile).ok());
  const Expected want = expected_of(profile);
  nlohmann::json expect = {
      {"sample_types", {{{"type", "bytes"}, {"unit", "bytes"}}, {{"type", "count"}, {"unit", "count"}}}},
      {"totals", {std::to_string(want.totals[0] + 1), std::to_string(want.totals[1])}},
      {"build_ids", want.build_ids},
      {"time_nanos", std::to_string(profile.time_ns)},
      {"duration_nanos", std::to_string(profile.duration_ns)},
  };
  const std::string expect_file = dir + "/gc_triggers.wrong.json";
  ASSERT_TRUE(write_file_atomic(expect_file, expect.dump()).ok());
  fixtures::CommandResult r =
      fixtures::run_node_check("check-pprof.js", {dir + "/gc_triggers.pb.gz", expect_file});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("FAIL: total of bytes"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace memlens::report
