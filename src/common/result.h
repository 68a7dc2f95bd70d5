// Result<T>: a value or an error carrying errno and a message written at the call site (bpftrace's style).
// Expected failures (a pid that vanished, a file that is not there) are values, not exceptions.
#pragma once

#include <cerrno>
#include <string>
#include <utility>
#include <variant>

namespace memlens {

struct Error {
  int errno_value = 0;  // 0 when the failure has no errno behind it
  std::string message;  // what failed, in words a user can act on

  std::string describe() const;  // message, plus strerror(errno_value) when there is one
};

// An error from the current errno: Error{errno, message}.
Error errno_error(std::string message);
Error make_error(std::string message, int errno_value = 0);

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}
  Result(Error error) : v_(std::move(error)) {}

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  const Error& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

// Result<void>: success or an error.
template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)), failed_(true) {}
  bool ok() const { return !failed_; }
  explicit operator bool() const { return ok(); }
  const Error& error() const { return error_; }

 private:
  Error error_;
  bool failed_ = false;
};

using Status = Result<void>;

}  // namespace memlens
