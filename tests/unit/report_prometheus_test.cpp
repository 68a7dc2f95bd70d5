// The Prometheus text exposition: one HELP and TYPE per family, escaped label values, histogram series.
#include <gtest/gtest.h>

#include <cmath>

#include "report/prometheus.h"

namespace memlens::report {
namespace {

TEST(PromExposition, FamiliesInDeclarationOrderWithTheirSamples) {
  PromExposition out;
  out.family("b_total", "counter", "B things");
  out.family("a_bytes", "gauge", "A bytes");
  out.family("unused", "gauge", "never sampled");
  out.sample("a_bytes", {{"pid", "1"}}, 4096);
  out.sample("b_total", {}, 3);
  out.sample("a_bytes", {{"pid", "2"}}, 1.5);
  out.sample("undeclared", {}, 1);  // refused: no family
  EXPECT_EQ(
      out.text(),
      "# HELP b_total B things\n# TYPE b_total counter\nb_total 3\n"
      "# HELP a_bytes A bytes\n# TYPE a_bytes gauge\na_bytes{pid=\"1\"} 4096\na_bytes{pid=\"2\"} 1.5\n");
}

TEST(PromExposition, LabelValuesAreEscaped) {
  EXPECT_EQ(prom_escape_label_value("node -e \"a\\b\"\nx"), "node -e \\\"a\\\\b\\\"\\nx");
  PromExposition out;
  out.family("m", "gauge", "help with \\ and\nnewline");
  out.sample("m", {{"command", "say \"hi\""}}, 1);
  EXPECT_EQ(out.text(),
            "# HELP m help with \\\\ and\\nnewline\n# TYPE m gauge\nm{command=\"say \\\"hi\\\"\"} 1\n");
}

TEST(PromExposition, ValuesSpelledAsTheFormatWants) {
  EXPECT_EQ(prom_value(0), "0");
  EXPECT_EQ(prom_value(123456789012), "123456789012");
  EXPECT_EQ(prom_value(0.25), "0.25");
  EXPECT_EQ(prom_value(INFINITY), "+Inf");
  EXPECT_EQ(prom_value(-INFINITY), "-Inf");
  EXPECT_EQ(prom_value(NAN), "NaN");
}

TEST(PromExposition, HistogramHasBucketsInfSumAndCount) {
  PromExposition out;
  out.family("gc_seconds", "histogram", "GC pauses");
  out.histogram("gc_seconds", {{"kind", "scavenge"}}, {0.001, 0.01}, {2, 5}, 0.0375, 7);
  EXPECT_EQ(out.text(),
            "# HELP gc_seconds GC pauses\n# TYPE gc_seconds histogram\n"
            "gc_seconds_bucket{kind=\"scavenge\",le=\"0.001\"} 2\n"
            "gc_seconds_bucket{kind=\"scavenge\",le=\"0.01\"} 5\n"
            "gc_seconds_bucket{kind=\"scavenge\",le=\"+Inf\"} 7\n"
            "gc_seconds_sum{kind=\"scavenge\"} 0.0375\n"
            "gc_seconds_count{kind=\"scavenge\"} 7\n");
}

}  // namespace
}  // namespace memlens::report
