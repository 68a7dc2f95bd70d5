// Every test binary starts with MEMLENS_BIN, MEMLENS_SOURCE_DIR and MEMLENS_BUILD_DIR set, so tests find
// the memlens binary, the scenarios and the helper programs however they are started (ctest, by hand).
// Values already in the environment win.
#include <cstdlib>

namespace {

struct ExportTestPaths {
  ExportTestPaths() {
    setenv("MEMLENS_BIN", MEMLENS_DEFAULT_BIN, 0);
    setenv("MEMLENS_SOURCE_DIR", MEMLENS_DEFAULT_SOURCE_DIR, 0);
    setenv("MEMLENS_BUILD_DIR", MEMLENS_DEFAULT_BUILD_DIR, 0);
  }
} export_test_paths;

}  // namespace
