#include "common/result.h"

#include <cstring>

namespace memlens {

std::string Error::describe() const {
  if (errno_value == 0) return message;
  return message + ": " + std::strerror(errno_value);
}

Error errno_error(std::string message) { return Error{errno, std::move(message)}; }

Error make_error(std::string message, int errno_value) { return Error{errno_value, std::move(message)}; }

}  // namespace memlens
