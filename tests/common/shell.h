// What the unit tests that compile small programs share: a shell command's standard output.
#pragma once

#include <cstdio>
#include <string>

namespace memlens::testing {

inline std::string run(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  pclose(p);
  return out;
}

}  // namespace memlens::testing
