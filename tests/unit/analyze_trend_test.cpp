// Robust trend statistics against series whose true trend is known by construction.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "analyze/trend.h"

namespace memlens::analyze {
namespace {

std::vector<SeriesPoint> line_series(double slope, double intercept, int n, double dt = 1.0) {
  std::vector<SeriesPoint> pts;
  for (int i = 0; i < n; ++i) pts.push_back({i * dt, intercept + slope * i * dt});
  return pts;
}

TEST(TheilSen, ExactOnALine) {
  auto pts = line_series(12345.5, 7e6, 61);
  Line l = theil_sen(pts);
  EXPECT_NEAR(l.slope, 12345.5, 1e-6);
  EXPECT_NEAR(l.intercept, 7e6, 1e-3);
  EXPECT_NEAR(l.at(60), 7e6 + 12345.5 * 60, 1e-3);
}

TEST(TheilSen, ExactOnAnUnevenlySampledLine) {
  std::vector<SeriesPoint> pts = {{0.3, 10}, {1.1, 12.4}, {4.0, 21.1}, {4.5, 22.6}, {9.7, 38.2}};
  for (auto& p : pts) p.value = 3 * p.t_s + 9.1;
  Line l = theil_sen(pts);
  EXPECT_NEAR(l.slope, 3, 1e-9);
  EXPECT_NEAR(l.intercept, 9.1, 1e-9);
}

TEST(TheilSen, ResistsAQuarterOfOutliers) {
  // 25% of the points replaced by wild values, high and low, at random places: the slope stays within 5%
  // of the true one for every seed.
  for (unsigned seed = 1; seed <= 30; ++seed) {
    std::mt19937 rng(seed);
    auto pts = line_series(50000, 20e6, 80);
    std::vector<size_t> idx(pts.size());
    for (size_t i = 0; i < idx.size(); ++i) idx[i] = i;
    std::shuffle(idx.begin(), idx.end(), rng);
    std::uniform_real_distribution<double> wild(-300e6, 300e6);
    for (size_t k = 0; k < pts.size() / 4; ++k) pts[idx[k]].value = wild(rng);
    Line l = theil_sen(pts);
    EXPECT_NEAR(l.slope, 50000, 0.05 * 50000) << "seed " << seed;
  }
}

TEST(TheilSen, DegenerateInputs) {
  EXPECT_EQ(theil_sen({}).slope, 0);
  std::vector<SeriesPoint> one = {{5, 42}};
  EXPECT_EQ(theil_sen(one).slope, 0);
  EXPECT_EQ(theil_sen(one).intercept, 42);
  std::vector<SeriesPoint> same_time = {{5, 1}, {5, 3}, {5, 2}};
  EXPECT_EQ(theil_sen(same_time).slope, 0);
  EXPECT_EQ(theil_sen(same_time).intercept, 2);
}

TEST(MannKendall, CountsConcordantPairs) {
  auto up = line_series(1, 0, 5);
  MannKendall mk = mann_kendall(up);
  EXPECT_EQ(mk.s, 10);  // every one of the 5*4/2 pairs rises
  EXPECT_LT(mk.p_increasing, 0.05);
  EXPECT_GT(mk.p_decreasing, 0.95);

  auto down = line_series(-1, 100, 5);
  mk = mann_kendall(down);
  EXPECT_EQ(mk.s, -10);
  EXPECT_LT(mk.p_decreasing, 0.05);

  auto flat = line_series(0, 7, 20);  // all ties: no evidence either way
  mk = mann_kendall(flat);
  EXPECT_EQ(mk.s, 0);
  EXPECT_EQ(mk.p_increasing, 1);
  EXPECT_EQ(mk.p_decreasing, 1);
}

TEST(MannKendall, FalseAlarmRateMatchesTheLevel) {
  // Independent noise has no trend: at the 5% level, about 5% of series should look rising.
  int rising = 0;
  const int trials = 400;
  for (int seed = 0; seed < trials; ++seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<double> noise(0, 1);
    std::vector<SeriesPoint> pts;
    for (int i = 0; i < 60; ++i) pts.push_back({double(i), noise(rng)});
    if (mann_kendall(pts).p_increasing < 0.05) ++rising;
  }
  EXPECT_GE(rising, trials * 0.02);
  EXPECT_LE(rising, trials * 0.09);
}

TEST(MannKendall, DetectsATrendUnderNoise) {
  for (unsigned seed = 1; seed <= 20; ++seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<double> noise(0, 1);
    std::vector<SeriesPoint> pts;
    for (int i = 0; i < 60; ++i) pts.push_back({double(i), 0.1 * i + noise(rng)});
    EXPECT_LT(mann_kendall(pts).p_increasing, 0.001) << "seed " << seed;
  }
}

TEST(ReduceToBucketMedians, KeepsTheTrendOfALongSeries) {
  auto pts = line_series(3, 1, 5000, 0.5);
  auto reduced = reduce_to_bucket_medians(pts, 100);
  EXPECT_LE(reduced.size(), 100u);
  EXPECT_GE(reduced.size(), 95u);
  EXPECT_NEAR(theil_sen(reduced).slope, 3, 1e-6);
  // Short series pass through unchanged.
  auto short_pts = line_series(1, 0, 10);
  EXPECT_EQ(reduce_to_bucket_medians(short_pts, 100).size(), 10u);
}

}  // namespace
}  // namespace memlens::analyze
