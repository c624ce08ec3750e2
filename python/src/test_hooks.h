// Test hooks of kiln._core: models built directly as IR, so that the Python
// binding (conversions, errors, sequence/optional I/O) can be tested without
// the ONNX importer.
#pragma once

#include <pybind11/pybind11.h>

#include <memory>

#include "kiln/session.h"

namespace kiln::python {

// inputs: a list of (name, kind, dtype, dims, default) tuples; see the
// docstring of _core._identity_session.
std::unique_ptr<Session> make_identity_session(const pybind11::list& inputs, int threads);

}  // namespace kiln::python
