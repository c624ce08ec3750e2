// Bindings of kiln/train.h (models, losses, optimizers, AMP) and the data
// loader as the submodule kiln._core.train.
#pragma once

#include <pybind11/pybind11.h>

namespace kiln::python {

void register_train(pybind11::module_& m);

}  // namespace kiln::python
