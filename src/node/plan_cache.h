// Plans kept by file identity. Planning reads and sorts a binary's whole symbol table (185,000 symbols in
// node 20: a third of a second of CPU), and every node process of a trace (cluster workers, child
// processes, each exec) runs one of a few binaries.
#pragma once

#include <string>

#include "common/result.h"
#include "node/probe_plan.h"

namespace memlens::node {

struct PlannedFile {
  ProbePlan plan;
  bool holds_v8 = false;  // holds_v8() of the file
};

// The plan of the file open at fd, reached at host_path: a copy of the cached one, re-pointed at host_path,
// when the same file (device, inode, size, mtime) was planned before; else planned now and kept (the 8
// most recently used files).
Result<PlannedFile> planned_file(int fd, const std::string& host_path);

}  // namespace memlens::node
