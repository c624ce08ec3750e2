// TensorProto and SparseTensorProto -> Tensor.
//
// ONNX stores tensor data in exactly one of: raw_data (fixed-width little
// endian, sub-byte types packed), a typed repeated field (float_data,
// int32_data, ...), or an external file. Every count is checked against the
// dims before anything is allocated, so a small malformed file cannot make
// the importer allocate gigabytes.
#include <bit>
#include <cstring>

#include "core/error.h"
#include "onnx/proto_convert.h"

namespace kiln::onnx {

// raw_data is little endian; Kiln's storage is the host's. Every platform
// Kiln targets is little endian, so decoding is a copy.
static_assert(std::endian::native == std::endian::little, "the ONNX importer assumes a little-endian host");

namespace {

// Largest dense tensor a sparse initializer or attribute is expanded to.
constexpr uint64_t kMaxDensifiedBytes = uint64_t{256} << 20;

bool is_sub_byte(DataType t) { return bits_per_element(t) > 0 && bits_per_element(t) < 8; }

// Unpacks `numel` elements of 4 or 2 bits, first element in the low bits.
void unpack_sub_byte(const uint8_t* packed, DataType dtype, int64_t numel, uint8_t* out) {
  const int bits = bits_per_element(dtype);
  const int per_byte = 8 / bits;
  const auto mask = static_cast<uint8_t>((1u << bits) - 1u);
  const bool sign_extend = dtype == DataType::kInt4 || dtype == DataType::kInt2;
  const auto sign_bit = static_cast<uint8_t>(1u << (bits - 1));
  for (int64_t i = 0; i < numel; ++i) {
    const int shift = static_cast<int>(i % per_byte) * bits;
    auto v = static_cast<uint8_t>((packed[i / per_byte] >> shift) & mask);
    if (sign_extend && (v & sign_bit) != 0) v = static_cast<uint8_t>(v | static_cast<uint8_t>(~mask));
    out[i] = v;
  }
}

// Name of the typed field that holds data of `dtype`.
const char* typed_field_name(DataType dtype) {
  switch (dtype) {
    case DataType::kFloat32:
    case DataType::kComplex64:
      return "float_data";
    case DataType::kFloat64:
    case DataType::kComplex128:
      return "double_data";
    case DataType::kInt64:
      return "int64_data";
    case DataType::kUInt32:
    case DataType::kUInt64:
      return "uint64_data";
    case DataType::kString:
      return "string_data";
    default:
      return "int32_data";
  }
}

// Entries of the typed field for `dtype` that `numel` elements need.
int64_t typed_count(DataType dtype, int64_t numel) {
  if (dtype == DataType::kComplex64 || dtype == DataType::kComplex128) return 2 * numel;
  if (is_sub_byte(dtype)) return static_cast<int64_t>(packed_byte_size(dtype, numel));
  return numel;
}

int64_t field_size(const pb::TensorProto& p, DataType dtype) {
  switch (dtype) {
    case DataType::kFloat32:
    case DataType::kComplex64:
      return p.float_data_size();
    case DataType::kFloat64:
    case DataType::kComplex128:
      return p.double_data_size();
    case DataType::kInt64:
      return p.int64_data_size();
    case DataType::kUInt32:
    case DataType::kUInt64:
      return p.uint64_data_size();
    case DataType::kString:
      return p.string_data_size();
    default:
      return p.int32_data_size();
  }
}

// Names the first typed field other than `expected` that holds data, or nullptr.
const char* other_nonempty_field(const pb::TensorProto& p, std::string_view expected) {
  const std::pair<const char*, int> fields[] = {
      {"float_data", p.float_data_size()},   {"int32_data", p.int32_data_size()},
      {"int64_data", p.int64_data_size()},   {"double_data", p.double_data_size()},
      {"uint64_data", p.uint64_data_size()}, {"string_data", p.string_data_size()},
  };
  for (const auto& [name, size] : fields) {
    if (size > 0 && expected != name) return name;
  }
  return nullptr;
}

template <class Dst, class Field>
void copy_converted(const Field& field, Tensor& out) {
  Dst* dst = out.data<Dst>();
  for (int i = 0; i < field.size(); ++i) dst[i] = static_cast<Dst>(field.Get(i));
}

// Decodes the typed repeated field of `p` into `out` (count already checked).
void decode_typed_field(const pb::TensorProto& p, Tensor& out) {
  switch (out.dtype()) {
    case DataType::kFloat32:
    case DataType::kComplex64:
      copy_converted<float>(p.float_data(), out);
      return;
    case DataType::kFloat64:
    case DataType::kComplex128:
      copy_converted<double>(p.double_data(), out);
      return;
    case DataType::kInt64:
      copy_converted<int64_t>(p.int64_data(), out);
      return;
    case DataType::kUInt64:
      copy_converted<uint64_t>(p.uint64_data(), out);
      return;
    case DataType::kUInt32:
      copy_converted<uint32_t>(p.uint64_data(), out);
      return;
    case DataType::kString: {
      auto* dst = out.data<std::string>();
      for (int i = 0; i < p.string_data_size(); ++i) dst[i] = p.string_data(i);
      return;
    }
    case DataType::kInt32:
      copy_converted<int32_t>(p.int32_data(), out);
      return;
    case DataType::kInt16:
      copy_converted<int16_t>(p.int32_data(), out);
      return;
    case DataType::kUInt16:
    case DataType::kFloat16:
    case DataType::kBFloat16:
      // 16-bit floats arrive as their bit patterns.
      copy_converted<uint16_t>(p.int32_data(), out);
      return;
    case DataType::kInt8:
      copy_converted<int8_t>(p.int32_data(), out);
      return;
    case DataType::kBool: {
      auto* dst = out.data<uint8_t>();
      for (int i = 0; i < p.int32_data_size(); ++i) dst[i] = p.int32_data(i) != 0 ? 1 : 0;
      return;
    }
    default:
      break;
  }
  if (is_sub_byte(out.dtype())) {
    // Each int32_data entry holds one packed byte.
    std::vector<uint8_t> packed(static_cast<size_t>(p.int32_data_size()));
    for (int i = 0; i < p.int32_data_size(); ++i) {
      packed[static_cast<size_t>(i)] = static_cast<uint8_t>(p.int32_data(i));
    }
    unpack_sub_byte(packed.data(), out.dtype(), out.numel(), out.data<uint8_t>());
    return;
  }
  // uint8 and the 8-bit float formats: one element (bit pattern) per entry.
  copy_converted<uint8_t>(p.int32_data(), out);
}

}  // namespace

Result<DataType> data_type_from_onnx(int64_t value, std::string_view what) {
  if (auto t = data_type_from_int(value)) return *t;
  if (value == pb::TensorProto::FLOAT6E2M3 || value == pb::TensorProto::FLOAT6E3M2) {
    return unimplemented("{}: data type {} ({}) is not supported", what, value,
                         value == pb::TensorProto::FLOAT6E2M3 ? "float6e2m3" : "float6e3m2");
  }
  if (value == 0) return invalid_argument("{}: data type is not set (UNDEFINED)", what);
  return invalid_argument("{}: unknown data type {}", what, value);
}

uint64_t packed_byte_size(DataType dtype, int64_t numel) {
  const auto n = static_cast<uint64_t>(numel);
  if (is_sub_byte(dtype)) return (n * static_cast<uint64_t>(bits_per_element(dtype)) + 7) / 8;
  return n * element_size(dtype);
}

Status decode_raw_bytes(const uint8_t* data, uint64_t size, Tensor& out, std::string_view what) {
  const uint64_t expected = packed_byte_size(out.dtype(), out.numel());
  if (size != expected) {
    return invalid_argument("{}: has {} bytes of data, but {}{} needs {}", what, size, data_type_name(out.dtype()),
                            dims_to_string(out.dims()), expected);
  }
  if (is_sub_byte(out.dtype())) {
    unpack_sub_byte(data, out.dtype(), out.numel(), out.data<uint8_t>());
  } else if (out.dtype() == DataType::kBool) {
    auto* dst = out.data<uint8_t>();
    for (uint64_t i = 0; i < size; ++i) dst[i] = data[i] != 0 ? 1 : 0;
  } else if (size > 0) {
    std::memcpy(out.raw_data(), data, size);
  }
  return Status::ok();
}

Result<Tensor> tensor_from_proto(const pb::TensorProto& p, const TensorSource& source, std::string_view what) {
  KILN_ASSIGN_OR_RETURN(DataType dtype, data_type_from_onnx(p.data_type(), what));
  if (p.has_segment()) return unimplemented("{}: segmented tensors are not supported", what);
  Dims dims(p.dims().begin(), p.dims().end());
  auto numel = checked_numel(dims);
  if (!numel.is_ok()) return numel.status().with_context(std::string(what));

  const bool external = p.data_location() == pb::TensorProto::EXTERNAL;
  if (dtype == DataType::kString && (external || p.has_raw_data())) {
    return invalid_argument("{}: string tensors must use string_data, not raw or external data", what);
  }
  // Check the amount of data before allocating anything.
  if (!external) {
    if (p.has_raw_data()) {
      const uint64_t expected = packed_byte_size(dtype, *numel);
      if (p.raw_data().size() != expected) {
        return invalid_argument("{}: raw_data has {} bytes, but {}{} needs {}", what, p.raw_data().size(),
                                data_type_name(dtype), dims_to_string(dims), expected);
      }
    } else {
      const char* field = typed_field_name(dtype);
      const int64_t have = field_size(p, dtype);
      const int64_t want = typed_count(dtype, *numel);
      if (have == 0 && want > 0) {
        if (const char* other = other_nonempty_field(p, field)) {
          return invalid_argument("{}: data of type {} belongs in {}, but the tensor has {}", what,
                                  data_type_name(dtype), field, other);
        }
        return invalid_argument("{}: has no data ({}{} needs {} values)", what, data_type_name(dtype),
                                dims_to_string(dims), want);
      }
      if (have != want) {
        return invalid_argument("{}: {} has {} values, but {}{} needs {}", what, field, have, data_type_name(dtype),
                                dims_to_string(dims), want);
      }
    }
  }
  auto allocated = Tensor::allocate(dtype, dims);
  if (!allocated.is_ok()) return allocated.status().with_context(std::string(what));
  Tensor t = std::move(allocated).value();
  if (external) {
    KILN_RETURN_IF_ERROR(read_external_data(p, source, t, what));
  } else if (p.has_raw_data()) {
    const std::string& raw = p.raw_data();
    KILN_RETURN_IF_ERROR(decode_raw_bytes(reinterpret_cast<const uint8_t*>(raw.data()), raw.size(), t, what));
  } else {
    decode_typed_field(p, t);
  }
  return t;
}

Result<Tensor> sparse_tensor_from_proto(const pb::SparseTensorProto& p, const TensorSource& source,
                                        std::string_view what) {
  Dims dims(p.dims().begin(), p.dims().end());
  auto numel_or = checked_numel(dims);
  if (!numel_or.is_ok()) return numel_or.status().with_context(std::string(what));
  const int64_t numel = *numel_or;
  if (!p.has_values()) return invalid_argument("{}: sparse tensor has no values", what);
  std::string values_what = fmt::format("{} (values)", what);
  KILN_ASSIGN_OR_RETURN(Tensor values, tensor_from_proto(p.values(), source, values_what));
  if (values.rank() != 1) return invalid_argument("{}: sparse values must be 1-D, got {}", what, values.debug_string());
  const int64_t nnz = values.numel();
  Tensor indices;
  if (p.has_indices()) {
    KILN_ASSIGN_OR_RETURN(indices, tensor_from_proto(p.indices(), source, fmt::format("{} (indices)", what)));
  }
  if (nnz > 0 && !indices.defined()) return invalid_argument("{}: sparse tensor has values but no indices", what);
  if (indices.defined() && indices.dtype() != DataType::kInt64) {
    return invalid_argument("{}: sparse indices must be int64, got {}", what, data_type_name(indices.dtype()));
  }
  // Indices are either [NNZ] linear offsets or [NNZ, rank] coordinates.
  const bool linear = indices.defined() && indices.rank() == 1;
  if (indices.defined()) {
    const bool coords = indices.rank() == 2 && indices.dim(1) == static_cast<int64_t>(dims.size());
    if ((!linear && !coords) || indices.dim(0) != nnz) {
      return invalid_argument("{}: sparse indices {} do not fit {} values of a rank-{} tensor", what,
                              dims_to_string(indices.dims()), nnz, dims.size());
    }
  }
  // Densifying is for small sparse constants; a huge dense shape with a few
  // values would otherwise turn a tiny file into gigabytes of zeros.
  const uint64_t dense_bytes = static_cast<uint64_t>(numel) * element_size(values.dtype());
  if (dense_bytes > kMaxDensifiedBytes) {
    return unimplemented("{}: densifying this sparse tensor would need {} bytes (Kiln densifies at most {})", what,
                         dense_bytes, kMaxDensifiedBytes);
  }
  auto dense_or = Tensor::allocate(values.dtype(), dims);
  if (!dense_or.is_ok()) return dense_or.status().with_context(std::string(what));
  Tensor dense = std::move(dense_or).value();
  const size_t esize = element_size(values.dtype());
  const int64_t* idx = indices.defined() ? indices.data<int64_t>() : nullptr;
  for (int64_t k = 0; k < nnz; ++k) {
    int64_t offset = 0;
    if (linear) {
      offset = idx[k];
    } else {
      for (size_t d = 0; d < dims.size(); ++d) {
        const int64_t c = idx[k * static_cast<int64_t>(dims.size()) + static_cast<int64_t>(d)];
        if (c < 0 || c >= dims[d]) {
          return invalid_argument("{}: sparse index {} is out of range for dim {} of size {}", what, c, d, dims[d]);
        }
        offset = offset * dims[d] + c;
      }
    }
    if (offset < 0 || offset >= numel) {
      return invalid_argument("{}: sparse index {} is out of range for {} elements", what, offset, numel);
    }
    if (values.dtype() == DataType::kString) {
      dense.data<std::string>()[offset] = values.data<std::string>()[k];
    } else {
      std::memcpy(static_cast<uint8_t*>(dense.raw_data()) + static_cast<size_t>(offset) * esize,
                  static_cast<const uint8_t*>(values.raw_data()) + static_cast<size_t>(k) * esize, esize);
    }
  }
  return dense;
}

}  // namespace kiln::onnx
