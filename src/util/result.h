// Result<T>: a value or an Error that carries errno and context. [[nodiscard]] so that an
// error cannot be dropped on the floor. C++20 has no std::expected; this is the small subset
// weir needs.
#pragma once

#include <cerrno>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <variant>

#include <fmt/format.h>

namespace weir {

struct Error {
  int err = 0;        // errno value, 0 when the error is not a system error
  std::string msg;    // what failed, with context (map/program/file/resource names)

  // "msg: strerror(err)" when err != 0, else msg.
  std::string str() const {
    if (err == 0) return msg;
    return fmt::format("{}: {} (errno {})", msg, std::strerror(err), err);
  }
  // Prefix more context: Error{..}.wrap("attaching to pod1") -> "attaching to pod1: ...".
  Error wrap(const std::string& ctx) const { return Error{err, ctx + ": " + msg}; }
};

// Build an Error from a negative libbpf-style return or from errno.
inline Error sys_error(int err, std::string msg) { return Error{err < 0 ? -err : err, std::move(msg)}; }
inline Error errno_error(std::string msg) { return Error{errno, std::move(msg)}; }
template <typename... Args>
Error make_error(fmt::format_string<Args...> f, Args&&... args) {
  return Error{0, fmt::format(f, std::forward<Args>(args)...)};
}

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T v) : v_(std::move(v)) {}                 // NOLINT(google-explicit-constructor)
  Result(Error e) : v_(std::move(e)) {}             // NOLINT(google-explicit-constructor)

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { check(); return std::get<0>(v_); }
  const T& value() const& { check(); return std::get<0>(v_); }
  T&& value() && { check(); return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const Error& error() const { return std::get<1>(v_); }

 private:
  void check() const {
    if (!ok()) throw std::logic_error("Result::value() on error: " + std::get<1>(v_).str());
  }
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error e) : e_(std::move(e)) {}  // NOLINT(google-explicit-constructor)
  bool ok() const { return !e_.has_value(); }
  explicit operator bool() const { return ok(); }
  const Error& error() const { return *e_; }

 private:
  std::optional<Error> e_;
};

using Status = Result<void>;

}  // namespace weir

// Propagate an error from an expression returning Result<...>/Status.
#define WEIR_TRY(expr)                              \
  do {                                              \
    auto weir_try_r_ = (expr);                      \
    if (!weir_try_r_.ok()) return weir_try_r_.error(); \
  } while (0)
