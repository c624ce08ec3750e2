// Conversions between numpy arrays and Kiln tensors and runtime values.
//
// numpy -> Tensor: every numpy dtype Kiln has (bool, int8..uint64, float16,
// float32, float64, complex64/128), strings (unicode, bytes and object
// arrays of str/bytes, to DataType::kString) and the ml_dtypes types onnx
// uses (bfloat16, float8*, int4/uint4, int2/uint2, float4_e2m1fn), matched
// by dtype name. A C-contiguous, aligned array is wrapped without a copy
// (the Tensor keeps the array alive); any other array is copied.
//
// Tensor -> numpy: the array views the tensor's storage and keeps it alive.
// Strings become object arrays of str (bytes where not valid UTF-8). The
// ml_dtypes types need the ml_dtypes package; without it they raise.
//
// All functions need the GIL and raise Python exceptions (KilnError) on
// unsupported input, naming `what` (e.g. "input 'x'").
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>

#include "core/datum.h"
#include "kiln/session.h"
#include "kiln/tensor.h"

namespace kiln::python {

// The Kiln type of a numpy dtype, or kUndefined if Kiln has none.
DataType data_type_of(const pybind11::dtype& dtype);
// The numpy dtype for a Kiln type; raises for types numpy cannot hold.
pybind11::dtype numpy_dtype_of(DataType type, const std::string& what);

Tensor tensor_from_object(const pybind11::handle& obj, const std::string& what);
pybind11::object tensor_to_array(const Tensor& tensor);

// A feed for an input described by `info` (nullptr: unknown input, converted
// as a tensor): a tensor, a list of tensors for a sequence, None for an
// empty optional.
Datum datum_from_object(const pybind11::handle& obj, const IoInfo* info, const std::string& what);
// Tensor -> array, sequence -> list of arrays, empty optional -> None.
pybind11::object datum_to_object(const Datum& datum);

}  // namespace kiln::python
