// Status and Result<T>: Kiln's error values.
//
// Every function that can fail on user-controlled input returns a Status or a
// Result<T>; nothing a user controls may abort the process. A Status carries a
// code and a message; callers add context as the error travels outward
// ("model.onnx: node 'conv_12' (Conv): weight has 3 dims, expected 4").
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace kiln {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,     // the caller's input is malformed or inconsistent
  kNotFound,            // a named thing (file, input, op) does not exist
  kUnimplemented,       // valid input that Kiln does not support (yet)
  kOutOfRange,          // a size, index or dim beyond what is allowed
  kFailedPrecondition,  // an object is in the wrong state for the call
  kResourceExhausted,   // memory or another limit exceeded
  kIoError,             // reading or writing a file failed
  kInternal,            // a bug in Kiln
  kUnavailable,         // try again later (server shutting down, queue full)
};

const char* status_code_name(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status ok() { return Status(); }

  bool is_ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

  // Returns a copy whose message is "context: message".
  Status with_context(const std::string& context) const& {
    if (is_ok()) return *this;
    return Status(code_, context + ": " + message_);
  }
  Status with_context(const std::string& context) && {
    if (!is_ok()) message_ = context + ": " + message_;
    return std::move(*this);
  }

  // "InvalidArgument: message"
  std::string to_string() const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

// Result<T> holds either a value or a non-ok Status.
template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : data_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  Result(Status status) : data_(std::move(status)) {  // NOLINT(google-explicit-constructor)
    assert(!std::get<Status>(data_).is_ok() && "Result constructed from an ok Status");
  }

  bool is_ok() const { return std::holds_alternative<T>(data_); }
  const Status& status() const {
    static const Status kOkStatus;
    return is_ok() ? kOkStatus : std::get<Status>(data_);
  }
  T& value() & { return std::get<T>(data_); }
  const T& value() const& { return std::get<T>(data_); }
  T&& value() && { return std::get<T>(std::move(data_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> data_;
};

namespace detail {
inline Status to_status(Status s) { return s; }
template <class T>
Status to_status(const Result<T>& r) { return r.status(); }
}  // namespace detail

}  // namespace kiln

#define KILN_CONCAT_INNER(a, b) a##b
#define KILN_CONCAT(a, b) KILN_CONCAT_INNER(a, b)

// Returns the Status of `expr` from the enclosing function if it is not ok.
#define KILN_RETURN_IF_ERROR(expr)                                   \
  do {                                                               \
    ::kiln::Status kiln_status_ = ::kiln::detail::to_status((expr)); \
    if (!kiln_status_.is_ok()) return kiln_status_;                  \
  } while (0)

#define KILN_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                               \
  if (!tmp.is_ok()) return tmp.status();           \
  lhs = std::move(tmp).value()

// `KILN_ASSIGN_OR_RETURN(auto x, f());` declares x from a Result or returns its error.
#define KILN_ASSIGN_OR_RETURN(lhs, expr) \
  KILN_ASSIGN_OR_RETURN_IMPL(KILN_CONCAT(kiln_result_, __LINE__), lhs, expr)
