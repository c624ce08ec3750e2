#include "server/tensor_codec.h"

#include <cstring>

#include "core/error.h"
#include "server/types.h"

namespace kiln::server {

Result<int64_t> checked_request_numel(const std::string& name, const std::vector<int64_t>& shape) {
  for (int64_t d : shape) {
    if (d < 0) return invalid_argument("input '{}': shape {} has a negative dimension", name, shape_string(shape));
  }
  auto n = checked_numel(shape);
  if (!n.is_ok()) return invalid_argument("input '{}': shape {} is too large", name, shape_string(shape));
  return n.value();
}

Result<Tensor> tensor_from_raw(const std::string& name, DataType dtype, const std::vector<int64_t>& shape,
                               std::string_view bytes) {
  KILN_ASSIGN_OR_RETURN(int64_t numel, checked_request_numel(name, shape));
  if (dtype == DataType::kString) {
    // Count the elements first so that a hostile count allocates nothing.
    int64_t count = 0;
    size_t pos = 0;
    while (pos < bytes.size()) {
      if (bytes.size() - pos < 4) {
        return invalid_argument("input '{}': BYTES data is truncated (a 4-byte length prefix is cut off)", name);
      }
      uint32_t len;
      std::memcpy(&len, bytes.data() + pos, 4);
      pos += 4;
      if (len > bytes.size() - pos) {
        return invalid_argument("input '{}': BYTES element {} declares {} bytes but only {} remain", name, count, len,
                                bytes.size() - pos);
      }
      pos += len;
      ++count;
    }
    if (count != numel) {
      return invalid_argument("input '{}': expected {} BYTES elements for shape {} but the data holds {}", name, numel,
                              shape_string(shape), count);
    }
    KILN_ASSIGN_OR_RETURN(Tensor t, Tensor::allocate(dtype, shape));
    std::string* dst = t.data<std::string>();
    pos = 0;
    for (int64_t i = 0; i < count; ++i) {
      uint32_t len;
      std::memcpy(&len, bytes.data() + pos, 4);
      pos += 4;
      dst[i].assign(bytes.data() + pos, len);
      pos += len;
    }
    return t;
  }
  size_t elem = wire_element_size(dtype);
  if (elem == 0) return invalid_argument("input '{}': unsupported datatype", name);
  uint64_t expected = static_cast<uint64_t>(numel) * elem;
  if (bytes.size() != expected) {
    return invalid_argument("input '{}': unexpected byte size: shape {} of {} needs {} bytes but got {}", name,
                            shape_string(shape), protocol_dtype_name(dtype), expected, bytes.size());
  }
  KILN_ASSIGN_OR_RETURN(Tensor t, Tensor::allocate(dtype, shape));
  if (dtype == DataType::kBool) {
    bool* dst = t.data<bool>();
    for (size_t i = 0; i < bytes.size(); ++i) dst[i] = bytes[i] != 0;
  } else if (!bytes.empty()) {
    std::memcpy(t.raw_data(), bytes.data(), bytes.size());
  }
  return t;
}

size_t append_raw(const Tensor& t, std::string& out) {
  size_t before = out.size();
  if (t.dtype() == DataType::kString) {
    for (const std::string& s : t.span<std::string>()) {
      uint32_t len = static_cast<uint32_t>(s.size());
      char prefix[4];
      std::memcpy(prefix, &len, 4);
      out.append(prefix, 4);
      out.append(s);
    }
  } else if (t.dtype() == DataType::kBool) {
    const bool* src = t.data<bool>();
    for (int64_t i = 0; i < t.numel(); ++i) out.push_back(src[i] ? 1 : 0);
  } else {
    out.append(static_cast<const char*>(t.raw_data()), t.nbytes());
  }
  return out.size() - before;
}

}  // namespace kiln::server
