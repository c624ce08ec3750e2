#include "client/wire.h"

#include <array>
#include <cstring>

#include "core/error.h"

namespace kiln::client {
namespace {

struct TypeRow {
  DataType dtype;
  std::string_view name;
  size_t size;
};

constexpr std::array<TypeRow, 14> kTypes = {{
    {DataType::kBool, "BOOL", 1},
    {DataType::kUInt8, "UINT8", 1},
    {DataType::kUInt16, "UINT16", 2},
    {DataType::kUInt32, "UINT32", 4},
    {DataType::kUInt64, "UINT64", 8},
    {DataType::kInt8, "INT8", 1},
    {DataType::kInt16, "INT16", 2},
    {DataType::kInt32, "INT32", 4},
    {DataType::kInt64, "INT64", 8},
    {DataType::kFloat16, "FP16", 2},
    {DataType::kFloat32, "FP32", 4},
    {DataType::kFloat64, "FP64", 8},
    {DataType::kString, "BYTES", 0},
    {DataType::kBFloat16, "BF16", 2},
}};

uint32_t read_u32_le(const char* p) {
  unsigned char b[4];
  std::memcpy(b, p, 4);
  return uint32_t{b[0]} | (uint32_t{b[1]} << 8) | (uint32_t{b[2]} << 16) | (uint32_t{b[3]} << 24);
}

// Splits BYTES wire data into its elements; fails on a truncated element.
Result<std::vector<std::string>> split_bytes(const std::string& what, std::string_view data) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < data.size()) {
    if (data.size() - pos < 4) return invalid_argument("{}: truncated BYTES length prefix at byte {}", what, pos);
    uint32_t len = read_u32_le(data.data() + pos);
    pos += 4;
    if (data.size() - pos < len) {
      return invalid_argument("{}: BYTES element of {} bytes at byte {} runs past the end ({} bytes)", what, len, pos,
                              data.size());
    }
    out.emplace_back(data.substr(pos, len));
    pos += len;
  }
  return out;
}

}  // namespace

std::optional<DataType> dtype_from_protocol(std::string_view name) {
  for (const TypeRow& row : kTypes) {
    if (row.name == name) return row.dtype;
  }
  return std::nullopt;
}

std::string_view protocol_name(DataType dtype) {
  for (const TypeRow& row : kTypes) {
    if (row.dtype == dtype) return row.name;
  }
  return {};
}

size_t wire_element_size(std::string_view datatype) {
  for (const TypeRow& row : kTypes) {
    if (row.name == datatype) return row.size;
  }
  return 0;
}

void append_bytes_element(std::string& out, std::string_view element) {
  auto len = static_cast<uint32_t>(element.size());
  const char prefix[4] = {static_cast<char>(len & 0xff), static_cast<char>((len >> 8) & 0xff),
                          static_cast<char>((len >> 16) & 0xff), static_cast<char>((len >> 24) & 0xff)};
  out.append(prefix, 4);
  out.append(element);
}

Status check_wire_size(const std::string& what, const std::string& datatype, const Dims& shape, std::string_view data) {
  if (!dtype_from_protocol(datatype)) return invalid_argument("{}: unknown datatype '{}'", what, datatype);
  KILN_ASSIGN_OR_RETURN(int64_t numel, checked_numel(shape));
  if (datatype == "BYTES") {
    KILN_ASSIGN_OR_RETURN(auto elements, split_bytes(what, data));
    if (static_cast<int64_t>(elements.size()) != numel) {
      return invalid_argument("{}: {} BYTES elements for shape {} ({} elements)", what, elements.size(),
                              dims_to_string(shape), numel);
    }
    return Status::ok();
  }
  size_t want = static_cast<size_t>(numel) * wire_element_size(datatype);
  if (data.size() != want) {
    return invalid_argument("{}: {} bytes for {} {} (needs {})", what, data.size(), datatype, dims_to_string(shape),
                            want);
  }
  return Status::ok();
}

Result<InferInput> InferInput::from_tensor(std::string name, const Tensor& tensor) {
  std::string_view datatype = protocol_name(tensor.dtype());
  if (datatype.empty()) {
    return invalid_argument("input '{}': the protocol cannot carry {} tensors", name, data_type_name(tensor.dtype()));
  }
  InferInput in{std::move(name), std::string(datatype), tensor.dims(), {}};
  if (tensor.dtype() == DataType::kString) {
    for (const std::string& s : tensor.span<std::string>()) {
      if (s.size() > UINT32_MAX) return invalid_argument("input '{}': a BYTES element over 4 GiB", in.name);
      append_bytes_element(in.data, s);
    }
  } else {
    in.data.assign(static_cast<const char*>(tensor.raw_data()), tensor.nbytes());
  }
  return in;
}

Result<Tensor> InferOutput::to_tensor() const {
  std::string what = "output '" + name + "'";
  auto dtype = dtype_from_protocol(datatype);
  if (!dtype) return invalid_argument("{}: unknown datatype '{}'", what, datatype);
  KILN_RETURN_IF_ERROR(check_wire_size(what, datatype, shape, data));
  KILN_ASSIGN_OR_RETURN(Tensor t, Tensor::allocate(*dtype, shape));
  if (*dtype == DataType::kString) {
    KILN_ASSIGN_OR_RETURN(auto elements, split_bytes(what, data));
    auto out = t.span<std::string>();
    for (size_t i = 0; i < elements.size(); ++i) out[i] = std::move(elements[i]);
  } else if (!data.empty()) {
    std::memcpy(t.raw_data(), data.data(), data.size());
  }
  return t;
}

const InferOutput* InferResult::output(const std::string& output_name) const {
  for (const InferOutput& o : outputs) {
    if (o.name == output_name) return &o;
  }
  return nullptr;
}

}  // namespace kiln::client
