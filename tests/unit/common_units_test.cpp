// The one byte formatter of the product (common/units.h): binary multiples with IEC names.
#include <gtest/gtest.h>

#include <cstdint>

#include "common/units.h"

namespace memlens {
namespace {

constexpr double KiB = 1024.0, MiB = KiB * 1024, GiB = MiB * 1024, TiB = GiB * 1024;

TEST(Units, BinaryMultiplesWithIecNames) {
  EXPECT_EQ(format_bytes(0), "0 B");
  EXPECT_EQ(format_bytes(1023), "1023 B");
  EXPECT_EQ(format_bytes(1024), "1.0 KiB");
  EXPECT_EQ(format_bytes(1536), "1.5 KiB");
  EXPECT_EQ(format_bytes(48.9 * MiB), "48.9 MiB");
  EXPECT_EQ(format_bytes(1000 * 1000), "976.6 KiB");  // 10^6 bytes are not a MiB
  EXPECT_EQ(format_bytes(4 * GiB), "4.0 GiB");
  EXPECT_EQ(format_bytes(3 * TiB), "3.0 TiB");
  EXPECT_EQ(format_bytes(2048 * TiB), "2048.0 TiB");  // the largest unit keeps counting
  EXPECT_EQ(format_bytes(static_cast<double>(UINT64_C(160) << 20)), "160.0 MiB");
}

TEST(Units, Signs) {
  EXPECT_EQ(format_bytes(-1.5 * KiB), "-1.5 KiB");
  EXPECT_EQ(format_signed_bytes(1.2 * MiB), "+1.2 MiB");
  EXPECT_EQ(format_signed_bytes(-3), "-3 B");
  EXPECT_EQ(format_signed_bytes(0), "+0 B");
}

}  // namespace
}  // namespace memlens
