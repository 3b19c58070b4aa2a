// Status / StatusOr: the error model of everything that can fail for a real
// reason (a user's file, a request, a job). A broken internal invariant is a
// bug instead, and ATRIUM_CHECK aborts with file:line.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace atrium {

// Mirrors the canonical gRPC codes so the serving edge maps them one to one.
// Values are stable (they cross process boundaries).
enum class StatusCode : int {
  kOk = 0,
  kCancelled = 1,
  kUnknown = 2,
  kInvalidArgument = 3,
  kDeadlineExceeded = 4,
  kNotFound = 5,
  kAlreadyExists = 6,
  kPermissionDenied = 7,
  kResourceExhausted = 8,
  kFailedPrecondition = 9,
  kAborted = 10,
  kOutOfRange = 11,
  kUnimplemented = 12,
  kInternal = 13,
  kUnavailable = 14,
  kDataLoss = 15,
  kUnauthenticated = 16,
};

std::string_view StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "INVALID_ARGUMENT: model.gguf: tensor 'x' at byte 1234: ..." for logs and the CLI.
  std::string ToString() const;

  // Adds context in front of the message: "loading foo.gguf: <old message>".
  Status WithContext(std::string_view context) const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status OkStatus() { return Status(); }
Status InvalidArgument(std::string message);
Status NotFound(std::string message);
Status FailedPrecondition(std::string message);
Status OutOfRange(std::string message);
Status ResourceExhausted(std::string message);
Status Unimplemented(std::string message);
Status Internal(std::string message);
Status Unavailable(std::string message);
Status DataLoss(std::string message);
Status Cancelled(std::string message);
Status DeadlineExceeded(std::string message);

// printf-style formatting into a std::string, for building messages.
std::string StrFormat(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

template <typename T>
class [[nodiscard]] StatusOr {
 public:
  StatusOr(const Status& status) : v_(status) {  // NOLINT: implicit by design
    if (status.ok()) Die("StatusOr constructed from an OK status without a value");
  }
  StatusOr(Status&& status) : v_(std::move(status)) {  // NOLINT
    if (std::get<Status>(v_).ok()) Die("StatusOr constructed from an OK status without a value");
  }
  StatusOr(const T& value) : v_(value) {}  // NOLINT
  StatusOr(T&& value) : v_(std::move(value)) {}  // NOLINT

  bool ok() const { return std::holds_alternative<T>(v_); }
  Status status() const { return ok() ? OkStatus() : std::get<Status>(v_); }

  T& value() & { Check(); return std::get<T>(v_); }
  const T& value() const& { Check(); return std::get<T>(v_); }
  T&& value() && { Check(); return std::get<T>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  [[noreturn]] static void Die(const char* what) {
    std::fprintf(stderr, "atrium: %s\n", what);
    std::abort();
  }
  void Check() const {
    if (!ok()) {
      std::fprintf(stderr, "atrium: value() on an error StatusOr: %s\n",
                   std::get<Status>(v_).ToString().c_str());
      std::abort();
    }
  }
  std::variant<Status, T> v_;
};

[[noreturn]] void CheckFailed(const char* file, int line, const char* cond, const std::string& msg);

}  // namespace atrium

#define ATRIUM_CONCAT_INNER_(a, b) a##b
#define ATRIUM_CONCAT_(a, b) ATRIUM_CONCAT_INNER_(a, b)

#define RETURN_IF_ERROR(expr)                        \
  do {                                               \
    ::atrium::Status _atrium_status = (expr);        \
    if (!_atrium_status.ok()) return _atrium_status; \
  } while (0)

#define ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                           \
  if (!tmp.ok()) return tmp.status();          \
  lhs = std::move(tmp).value()

// ASSIGN_OR_RETURN(auto x, Foo()); declares x from a StatusOr or returns its error.
#define ASSIGN_OR_RETURN(lhs, expr) \
  ASSIGN_OR_RETURN_IMPL_(ATRIUM_CONCAT_(_atrium_statusor_, __LINE__), lhs, expr)

// For broken invariants only (bugs), never for user input.
#define ATRIUM_CHECK(cond, ...)                                                          \
  do {                                                                                   \
    if (!(cond)) ::atrium::CheckFailed(__FILE__, __LINE__, #cond, ::atrium::StrFormat("" __VA_ARGS__)); \
  } while (0)
