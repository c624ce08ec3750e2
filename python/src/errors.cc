#include "errors.h"

#include <Python.h>

namespace py = pybind11;

namespace kiln::python {
namespace {

// Owned by the module for the life of the interpreter (never freed).
PyObject* g_kiln_error = nullptr;
PyObject* g_invalid_argument = nullptr;
PyObject* g_not_found = nullptr;
PyObject* g_unimplemented = nullptr;

PyObject* make_class(py::module_& m, const char* name, PyObject* bases, const char* doc) {
  std::string qualified = std::string("kiln._core.") + name;
  PyObject* cls = PyErr_NewExceptionWithDoc(qualified.c_str(), doc, bases, nullptr);
  if (cls == nullptr) throw py::error_already_set();
  m.add_object(name, py::reinterpret_borrow<py::object>(cls));
  return cls;
}

PyObject* class_for(StatusCode code) {
  switch (code) {
    case StatusCode::kInvalidArgument:
    case StatusCode::kOutOfRange:
      return g_invalid_argument;
    case StatusCode::kNotFound:
      return g_not_found;
    case StatusCode::kUnimplemented:
      return g_unimplemented;
    default:
      return g_kiln_error;
  }
}

}  // namespace

void register_errors(py::module_& m) {
  g_kiln_error = make_class(m, "KilnError", PyExc_RuntimeError,
                            "An error reported by Kiln; `code` names its kind (\"InvalidArgument\", ...).");
  py::tuple invalid_bases = py::make_tuple(py::handle(g_kiln_error), py::handle(PyExc_ValueError));
  g_invalid_argument = make_class(m, "InvalidArgumentError", invalid_bases.ptr(),
                                  "Malformed or inconsistent input: a bad feed, model or argument.");
  py::tuple not_found_bases = py::make_tuple(py::handle(g_kiln_error), py::handle(PyExc_LookupError));
  g_not_found = make_class(m, "NotFoundError", not_found_bases.ptr(), "A named thing (file, op) does not exist.");
  py::tuple unimplemented_bases = py::make_tuple(py::handle(g_kiln_error), py::handle(PyExc_NotImplementedError));
  g_unimplemented =
      make_class(m, "UnimplementedError", unimplemented_bases.ptr(), "Valid input that Kiln does not support yet.");
}

void throw_status(const Status& status) {
  PyObject* cls = class_for(status.code());
  py::object exc = py::reinterpret_borrow<py::object>(cls)(status.message());
  exc.attr("code") = status_code_name(status.code());
  PyErr_SetObject(cls, exc.ptr());
  throw py::error_already_set();
}

}  // namespace kiln::python
