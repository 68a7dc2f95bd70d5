#include <gtest/gtest.h>

#include <filesystem>
#include <map>

#include "common/safe_file.h"
#include "report/folded.h"
#include "report_fixtures.h"

namespace memlens::report {
namespace {

using fixtures::sample_profile;
using symbolize::Frame;
using symbolize::FrameKind;

TEST(Utf8, KeepsValidAndReplacesInvalid) {
  EXPECT_EQ(valid_utf8("plain ascii"), "plain ascii");
  EXPECT_EQ(valid_utf8("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80"),
            "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80");
  EXPECT_EQ(valid_utf8("a\xFF"
                       "b"),
            "a\xEF\xBF\xBD"
            "b");
  EXPECT_EQ(valid_utf8("\xC0\xAF"), "\xEF\xBF\xBD\xEF\xBF\xBD");                  // overlong '/'
  EXPECT_EQ(valid_utf8("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // a surrogate
  EXPECT_EQ(valid_utf8("x\xE2\x82"), "x\xEF\xBF\xBD\xEF\xBF\xBD");                // truncated at the end
}

TEST(FoldedLabel, SeparatorsAndControlCharactersCannotBreakTheFormat) {
  Frame f;
  f.kind = FrameKind::kJs;
  f.function = "a;b\nc\rd\te";
  EXPECT_EQ(folded_label(f), "a:b c d e [js]");
  f.kind = FrameKind::kNative;
  f.function = "";
  EXPECT_EQ(folded_label(f), "[unknown]");
}

// The merged lines hold exactly the input's value, stack by stack.
TEST(Folded, RoundTripKeepsEveryStackAndTotal) {
  const symbolize::StackProfile profile = sample_profile("array_buffers", 7);
  // Ground truth: the input's first values summed per labelled stack.
  std::map<std::vector<std::string>, int64_t> expected;
  int64_t expected_total = 0;
  for (const symbolize::StackSample& s : profile.samples) {
    std::vector<std::string> labels;
    for (const Frame& f : s.stack) labels.push_back(folded_label(f));
    expected[labels] += s.values[0];
    expected_total += s.values[0];
  }
  ASSERT_LT(expected.size(), profile.samples.size()) << "the fixture must contain equal stacks";

  const std::string text = render_folded(profile);
  Result<std::vector<FoldedLine>> lines = parse_folded(text);
  ASSERT_TRUE(lines.ok()) << lines.error().message;
  EXPECT_EQ(lines->size(), expected.size());
  int64_t total = 0;
  std::map<std::vector<std::string>, int64_t> parsed;
  for (const FoldedLine& l : *lines) {
    EXPECT_TRUE(parsed.emplace(l.frames, l.value).second) << "stack written twice";
    total += l.value;
  }
  EXPECT_EQ(total, expected_total);
  EXPECT_EQ(parsed, expected);
  // The hostile name stays one frame, with its separator and newline neutralised.
  EXPECT_NE(text.find("onerror=alert(1)>: evil"), std::string::npos);
  for (const FoldedLine& l : *lines) EXPECT_EQ(l.frames.front(), "_start");
}

TEST(Folded, WritesKindFileAtomically) {
  const symbolize::StackProfile profile = sample_profile("page_faults", 3, 50);
  const std::string dir = fixtures::artifact_dir("folded").string();
  ASSERT_TRUE(write_folded(dir, profile).ok());
  Result<std::string> text = read_text_file(dir + "/page_faults.folded");
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(*text, render_folded(profile));
  Result<std::vector<FoldedLine>> lines = parse_folded(*text);
  ASSERT_TRUE(lines.ok());
  int64_t total = 0;
  for (const FoldedLine& l : *lines) total += l.value;
  EXPECT_EQ(total, fixtures::total_of(profile));
}

TEST(Folded, EmptyStacksAndNonPositiveValues) {
  symbolize::StackProfile p;
  p.kind = "gc_triggers";
  p.sample_types = {{"count", "count"}};
  p.samples.push_back({{}, {5}, 1});
  p.samples.push_back({{Frame{FrameKind::kNative, "main"}}, {0}, 1});
  p.samples.push_back({{Frame{FrameKind::kNative, "f"}}, {3}, 1});
  p.samples.push_back({{Frame{FrameKind::kNative, "f"}}, {-3}, 2});  // merges to 0: left out
  EXPECT_EQ(render_folded(p), "[no stack] 5\n");
}

TEST(ParseFolded, RejectsMalformedLinesWithTheirNumber) {
  EXPECT_TRUE(parse_folded("a;b 1\n\nc 2\r\n").ok());
  Result<std::vector<FoldedLine>> r = parse_folded("a;b 1\nc;d x1\n");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("line 2"), std::string::npos);
  EXPECT_FALSE(parse_folded("novalue\n").ok());
  EXPECT_FALSE(parse_folded("a 99999999999999999999999\n").ok());
  Result<std::vector<FoldedLine>> ok = parse_folded("x;y z;w 12");
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->at(0).frames, (std::vector<std::string>{"x", "y z", "w"}));
  EXPECT_EQ(ok->at(0).value, 12);
}

}  // namespace
}  // namespace memlens::report
