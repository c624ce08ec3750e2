#include "server/batching.h"

#include <cstring>
#include <string>

#include "core/error.h"

namespace kiln::server {

Result<Tensor> concat_rows(const std::vector<const Tensor*>& parts) {
  if (parts.empty()) return invalid_argument("nothing to concatenate");
  const Tensor& first = *parts[0];
  if (first.rank() < 1) return invalid_argument("cannot batch a scalar tensor");
  Dims dims = first.dims();
  int64_t rows = 0;
  for (const Tensor* t : parts) {
    if (t->dtype() != first.dtype() || t->rank() != first.rank() ||
        !std::equal(t->dims().begin() + 1, t->dims().end(), first.dims().begin() + 1)) {
      return invalid_argument("tensors {} and {} cannot share a batch", first.debug_string(), t->debug_string());
    }
    rows += t->dim(0);
  }
  dims[0] = rows;
  KILN_ASSIGN_OR_RETURN(Tensor out, Tensor::allocate(first.dtype(), dims));
  if (first.dtype() == DataType::kString) {
    std::string* dst = out.data<std::string>();
    for (const Tensor* t : parts) {
      for (const std::string& s : t->span<std::string>()) *dst++ = s;
    }
  } else {
    char* dst = static_cast<char*>(out.raw_data());
    for (const Tensor* t : parts) {
      if (t->nbytes()) std::memcpy(dst, t->raw_data(), t->nbytes());
      dst += t->nbytes();
    }
  }
  return out;
}

Result<Tensor> slice_rows(const Tensor& t, int64_t begin, int64_t count) {
  if (t.rank() < 1 || begin < 0 || count < 0 || begin + count > t.dim(0)) {
    return internal_error("slice [{}, {}) out of range of {}", begin, begin + count, t.debug_string());
  }
  Dims dims = t.dims();
  dims[0] = count;
  KILN_ASSIGN_OR_RETURN(Tensor out, Tensor::allocate(t.dtype(), dims));
  int64_t row = t.dim(0) ? t.numel() / t.dim(0) : 0;
  if (t.dtype() == DataType::kString) {
    const std::string* src = t.data<std::string>() + begin * row;
    std::string* dst = out.data<std::string>();
    for (int64_t i = 0; i < count * row; ++i) dst[i] = src[i];
  } else if (out.nbytes()) {
    size_t row_bytes = static_cast<size_t>(row) * element_size(t.dtype());
    std::memcpy(out.raw_data(), static_cast<const char*>(t.raw_data()) + static_cast<size_t>(begin) * row_bytes,
                out.nbytes());
  }
  return out;
}

Result<Tensor> reshape_to(const Tensor& t, std::vector<int64_t> dims) {
  int64_t known = 1;
  int infer_at = -1;
  for (size_t i = 0; i < dims.size(); ++i) {
    if (dims[i] < 0) {
      if (infer_at >= 0) return invalid_argument("reshape {} has more than one -1", dims_to_string(dims));
      infer_at = static_cast<int>(i);
    } else {
      known *= dims[i];
    }
  }
  if (infer_at >= 0) {
    if (known == 0 || t.numel() % known != 0) {
      return invalid_argument("cannot reshape {} to {}", t.debug_string(), dims_to_string(dims));
    }
    dims[static_cast<size_t>(infer_at)] = t.numel() / known;
  }
  return t.reshaped(dims);
}

}  // namespace kiln::server
