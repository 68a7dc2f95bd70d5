#include "symbolize/frame.h"

namespace memlens::symbolize {

std::string Frame::label() const {
  if (kind == FrameKind::kJs) return function + " [js]";
  return function;
}

}  // namespace memlens::symbolize
