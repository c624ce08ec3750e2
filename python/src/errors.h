// Python exceptions for Kiln errors.
//
// KilnError derives from RuntimeError; codes with a natural Python
// counterpart also derive from it (InvalidArgumentError is a ValueError,
// NotFoundError a LookupError, UnimplementedError a NotImplementedError).
// Every raised instance carries the Status message as its text and the
// code's name ("InvalidArgument") in its `code` attribute.
#pragma once

#include <pybind11/pybind11.h>

#include "kiln/status.h"

namespace kiln::python {

// Creates the exception classes and adds them to module `m`.
void register_errors(pybind11::module_& m);

// Sets the Python error for a non-ok `status` and throws error_already_set.
// Needs the GIL.
[[noreturn]] void throw_status(const Status& status);

// Unwraps a Result or raises its error as a Python exception.
template <class T>
T value_or_throw(Result<T> r) {
  if (!r.is_ok()) throw_status(r.status());
  return std::move(r).value();
}

}  // namespace kiln::python
