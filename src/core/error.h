// fmt-style constructors for non-ok Status values, for use inside Kiln.
#pragma once

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "kiln/status.h"

namespace kiln {

#define KILN_DEFINE_ERROR_FACTORY(fn, code)                               \
  template <class... Args>                                                \
  Status fn(fmt::format_string<Args...> format, Args&&... args) {         \
    return Status(code, fmt::format(format, std::forward<Args>(args)...)); \
  }

KILN_DEFINE_ERROR_FACTORY(invalid_argument, StatusCode::kInvalidArgument)
KILN_DEFINE_ERROR_FACTORY(not_found, StatusCode::kNotFound)
KILN_DEFINE_ERROR_FACTORY(unimplemented, StatusCode::kUnimplemented)
KILN_DEFINE_ERROR_FACTORY(out_of_range, StatusCode::kOutOfRange)
KILN_DEFINE_ERROR_FACTORY(failed_precondition, StatusCode::kFailedPrecondition)
KILN_DEFINE_ERROR_FACTORY(resource_exhausted, StatusCode::kResourceExhausted)
KILN_DEFINE_ERROR_FACTORY(io_error, StatusCode::kIoError)
KILN_DEFINE_ERROR_FACTORY(internal_error, StatusCode::kInternal)
KILN_DEFINE_ERROR_FACTORY(unavailable, StatusCode::kUnavailable)

#undef KILN_DEFINE_ERROR_FACTORY

// Checks a condition that depends on user input; returns InvalidArgument if false.
#define KILN_CHECK_ARG(cond, ...)                                   \
  do {                                                              \
    if (!(cond)) return ::kiln::invalid_argument(__VA_ARGS__);      \
  } while (0)

}  // namespace kiln
