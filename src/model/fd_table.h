// A process's open file descriptors: what each is, when and by whom it was opened.
#pragma once

#include <cstdint>

namespace memlens::model {

class FdTable {
 public:
  uint64_t open_count() const { return 0; }
};

}  // namespace memlens::model
