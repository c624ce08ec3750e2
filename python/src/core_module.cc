// kiln._core: the thin pybind11 layer over include/kiln. (Filled in with the Python API.)
#include <pybind11/pybind11.h>

PYBIND11_MODULE(_core, m) { m.doc() = "Kiln core bindings"; }
