#include "convert.h"

#include <pybind11/stl.h>

#include <bit>
#include <cstring>
#include <memory>
#include <string_view>
#include <vector>

#include "errors.h"

namespace py = pybind11;
using namespace pybind11::literals;  // NOLINT(google-build-using-namespace): "name"_a keyword arguments

namespace kiln::python {
namespace {

// The ml_dtypes types, by the dtype names ml_dtypes gives them.
struct ExtensionType {
  std::string_view name;
  DataType type;
};
constexpr ExtensionType kExtensionTypes[] = {
    {"bfloat16", DataType::kBFloat16},
    {"float8_e4m3fn", DataType::kFloat8E4M3FN},
    {"float8_e4m3fnuz", DataType::kFloat8E4M3FNUZ},
    {"float8_e5m2", DataType::kFloat8E5M2},
    {"float8_e5m2fnuz", DataType::kFloat8E5M2FNUZ},
    {"float8_e8m0fnu", DataType::kFloat8E8M0},
    {"int4", DataType::kInt4},
    {"uint4", DataType::kUInt4},
    {"float4_e2m1fn", DataType::kFloat4E2M1},
    {"int2", DataType::kInt2},
    {"uint2", DataType::kUInt2},
};

[[noreturn]] void raise(StatusCode code, const std::string& message) { throw_status(Status(code, message)); }

bool is_string_kind(char kind) { return kind == 'U' || kind == 'S' || kind == 'O'; }

// A shared_ptr owner that keeps a Python object alive; its deleter takes the
// GIL since the last reference may be dropped on a runtime thread.
std::shared_ptr<void> keep_alive(const py::handle& obj) {
  auto* ref = new py::object(py::reinterpret_borrow<py::object>(obj));
  return std::shared_ptr<void>(ref, [](void* p) {
    py::gil_scoped_acquire gil;
    delete static_cast<py::object*>(p);
  });
}

Dims dims_of(const py::array& arr) {
  Dims dims;
  for (py::ssize_t i = 0; i < arr.ndim(); ++i) dims.push_back(static_cast<int64_t>(arr.shape(i)));
  return dims;
}

Tensor strings_from_array(const py::array& arr, const std::string& what) {
  Dims dims = dims_of(arr);
  auto allocated = Tensor::allocate(DataType::kString, dims);
  if (!allocated.is_ok()) throw_status(allocated.status().with_context(what));
  Tensor t = std::move(allocated).value();
  py::list items = arr.attr("ravel")().attr("tolist")();
  auto* out = t.data<std::string>();
  for (size_t i = 0; i < items.size(); ++i) {
    py::handle item = items[i];
    if (py::isinstance<py::str>(item)) {
      Py_ssize_t size = 0;
      const char* utf8 = PyUnicode_AsUTF8AndSize(item.ptr(), &size);
      if (utf8 == nullptr) throw py::error_already_set();
      out[i].assign(utf8, static_cast<size_t>(size));
    } else if (py::isinstance<py::bytes>(item)) {
      char* data = nullptr;
      Py_ssize_t size = 0;
      if (PyBytes_AsStringAndSize(item.ptr(), &data, &size) != 0) throw py::error_already_set();
      out[i].assign(data, static_cast<size_t>(size));
    } else {
      raise(StatusCode::kInvalidArgument,
            what + ": element " + std::to_string(i) + " of a string array is " +
                std::string(py::str(py::type::handle_of(item).attr("__name__"))) + ", expected str or bytes");
    }
  }
  return t;
}

py::object string_to_python(const std::string& s) {
  PyObject* u = PyUnicode_DecodeUTF8(s.data(), static_cast<Py_ssize_t>(s.size()), "strict");
  if (u != nullptr) return py::reinterpret_steal<py::object>(u);
  PyErr_Clear();  // not UTF-8: hand out the raw bytes
  return py::bytes(s);
}

}  // namespace

DataType data_type_of(const py::dtype& dtype) {
  // Extension types first: ml_dtypes' float8_e5m2 reports kind 'f'.
  std::string name = py::str(dtype.attr("name"));
  for (const auto& e : kExtensionTypes) {
    if (e.name == name) return e.type;
  }
  char kind = dtype.kind();
  py::ssize_t size = dtype.itemsize();
  switch (kind) {
    case 'b':
      return DataType::kBool;
    case 'i':
      return size == 1 ? DataType::kInt8 : size == 2 ? DataType::kInt16 : size == 4 ? DataType::kInt32
                        : size == 8 ? DataType::kInt64 : DataType::kUndefined;
    case 'u':
      return size == 1 ? DataType::kUInt8 : size == 2 ? DataType::kUInt16 : size == 4 ? DataType::kUInt32
                        : size == 8 ? DataType::kUInt64 : DataType::kUndefined;
    case 'f':
      return size == 2 ? DataType::kFloat16 : size == 4 ? DataType::kFloat32 : size == 8 ? DataType::kFloat64
                                                                                        : DataType::kUndefined;
    case 'c':
      return size == 8 ? DataType::kComplex64 : size == 16 ? DataType::kComplex128 : DataType::kUndefined;
    case 'U':
    case 'S':
    case 'O':
      return DataType::kString;
    default:
      return DataType::kUndefined;
  }
}

py::dtype numpy_dtype_of(DataType type, const std::string& what) {
  switch (type) {
    case DataType::kBool: return py::dtype("bool");
    case DataType::kInt8: return py::dtype("int8");
    case DataType::kInt16: return py::dtype("int16");
    case DataType::kInt32: return py::dtype("int32");
    case DataType::kInt64: return py::dtype("int64");
    case DataType::kUInt8: return py::dtype("uint8");
    case DataType::kUInt16: return py::dtype("uint16");
    case DataType::kUInt32: return py::dtype("uint32");
    case DataType::kUInt64: return py::dtype("uint64");
    case DataType::kFloat16: return py::dtype("float16");
    case DataType::kFloat32: return py::dtype("float32");
    case DataType::kFloat64: return py::dtype("float64");
    case DataType::kComplex64: return py::dtype("complex64");
    case DataType::kComplex128: return py::dtype("complex128");
    case DataType::kString: return py::dtype("O");
    default: break;
  }
  for (const auto& e : kExtensionTypes) {
    if (e.type != type) continue;
    py::module_ ml_dtypes;
    try {
      ml_dtypes = py::module_::import("ml_dtypes");
    } catch (py::error_already_set&) {
      raise(StatusCode::kUnimplemented, what + " has type " + std::string(data_type_name(type)) +
                                            ", which numpy holds only with the ml_dtypes package (pip install ml_dtypes)");
    }
    if (!py::hasattr(ml_dtypes, std::string(e.name).c_str())) {
      raise(StatusCode::kUnimplemented, what + " has type " + std::string(data_type_name(type)) +
                                            ", which this version of ml_dtypes does not have");
    }
    return py::dtype::from_args(ml_dtypes.attr(std::string(e.name).c_str()));
  }
  raise(StatusCode::kUnimplemented,
        what + " has type " + std::string(data_type_name(type)) + ", which has no numpy equivalent");
}

Tensor tensor_from_object(const py::handle& obj, const std::string& what) {
  if (obj.is_none()) raise(StatusCode::kInvalidArgument, what + " is None, expected a numpy array");
  py::module_ np = py::module_::import("numpy");
  py::array arr = py::isinstance<py::array>(obj) ? py::reinterpret_borrow<py::array>(obj)
                                                 : py::array(np.attr("asarray")(obj));
  py::dtype dtype = arr.dtype();
  DataType type = data_type_of(dtype);
  if (type == DataType::kUndefined) {
    raise(StatusCode::kInvalidArgument,
          what + " has numpy dtype " + std::string(py::str(dtype)) + ", which Kiln does not support");
  }
  if (type == DataType::kString) {
    if (!is_string_kind(dtype.kind())) raise(StatusCode::kInternal, what + ": unexpected string dtype");
    return strings_from_array(arr, what);
  }
  Dims dims = dims_of(arr);
  auto numel = checked_numel(dims);
  if (!numel.is_ok()) throw_status(numel.status().with_context(what));
  if (static_cast<size_t>(dtype.itemsize()) != element_size(type)) {
    raise(StatusCode::kInvalidArgument, what + ": numpy dtype " + std::string(py::str(dtype)) + " has item size " +
                                            std::to_string(dtype.itemsize()) + ", Kiln stores " +
                                            std::string(data_type_name(type)) + " in " +
                                            std::to_string(element_size(type)));
  }
  const int flags = arr.flags();
  const bool contiguous = (flags & py::detail::npy_api::NPY_ARRAY_C_CONTIGUOUS_) != 0;
  const bool aligned = (flags & py::detail::npy_api::NPY_ARRAY_ALIGNED_) != 0;
  // Byte-swapped arrays ('>f4' on a little-endian machine) must be converted.
  const bool native = py::str(dtype.attr("byteorder")).cast<std::string>() != (std::endian::native == std::endian::little ? ">" : "<");
  if (contiguous && aligned && native) {
    return Tensor::wrap(type, std::move(dims), const_cast<void*>(arr.data()), keep_alive(arr));
  }
  auto allocated = Tensor::allocate(type, dims);
  if (!allocated.is_ok()) throw_status(allocated.status().with_context(what));
  Tensor t = std::move(allocated).value();
  // Let numpy copy (any strides, alignment or byte order) into a view of the new storage.
  np.attr("copyto")(tensor_to_array(t), arr, "casting"_a = "equiv");
  return t;
}

py::object tensor_to_array(const Tensor& tensor) {
  const std::string what = "tensor " + tensor.debug_string();
  std::vector<py::ssize_t> shape(tensor.dims().begin(), tensor.dims().end());
  if (tensor.dtype() == DataType::kString) {
    py::list items;
    for (const std::string& s : tensor.span<std::string>()) items.append(string_to_python(s));
    py::module_ np = py::module_::import("numpy");
    return np.attr("array")(items, "dtype"_a = "object").attr("reshape")(py::cast(shape));
  }
  py::dtype dtype = numpy_dtype_of(tensor.dtype(), what);
  // The array views the tensor's storage; the capsule's copy of the Tensor keeps it alive.
  auto* holder = new Tensor(tensor);
  py::capsule owner(holder, [](void* p) { delete static_cast<Tensor*>(p); });
  return py::array(dtype, shape, {}, holder->raw_data(), owner);
}

Datum datum_from_object(const py::handle& obj, const IoInfo* info, const std::string& what) {
  IoKind kind = info != nullptr ? info->kind : IoKind::kTensor;
  if (kind == IoKind::kOptional && obj.is_none()) return Datum::optional(nullptr);
  const bool is_list = py::isinstance<py::list>(obj) || py::isinstance<py::tuple>(obj);
  if (kind == IoKind::kSequence || (kind == IoKind::kOptional && is_list)) {
    if (!is_list) {
      raise(StatusCode::kInvalidArgument, what + " is a sequence; feed a list of numpy arrays, not " +
                                              std::string(py::str(py::type::handle_of(obj).attr("__name__"))));
    }
    std::vector<Tensor> items;
    py::sequence seq = py::reinterpret_borrow<py::sequence>(obj);
    for (size_t i = 0; i < seq.size(); ++i) {
      items.push_back(tensor_from_object(seq[i], what + " item " + std::to_string(i)));
    }
    DataType elem = !items.empty() ? items.front().dtype() : info->dtype;
    for (size_t i = 0; i < items.size(); ++i) {
      if (items[i].dtype() != elem) {
        raise(StatusCode::kInvalidArgument, what + ": item " + std::to_string(i) + " has type " +
                                                std::string(data_type_name(items[i].dtype())) + ", item 0 has " +
                                                std::string(data_type_name(elem)));
      }
    }
    return Datum::sequence(std::move(items), elem);
  }
  return Datum(tensor_from_object(obj, what));
}

py::object datum_to_object(const Datum& datum) {
  switch (datum.kind()) {
    case Datum::Kind::kTensor:
      return tensor_to_array(datum.tensor());
    case Datum::Kind::kSequence: {
      py::list items;
      for (const Tensor& t : datum.items()) items.append(tensor_to_array(t));
      return items;
    }
    case Datum::Kind::kOptional:
      return datum.optional_value() != nullptr ? datum_to_object(*datum.optional_value()) : py::none();
    case Datum::Kind::kNone:
      break;
  }
  return py::none();
}

}  // namespace kiln::python
