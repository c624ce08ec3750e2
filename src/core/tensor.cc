#include "kiln/tensor.h"

#include <cstdlib>
#include <cstring>
#include <new>

#include "core/error.h"

namespace kiln {
namespace {

constexpr size_t kAlignment = 64;

std::shared_ptr<void> allocate_storage(DataType dtype, int64_t numel) {
  if (dtype == DataType::kString) {
    auto* strings = new (std::nothrow) std::string[static_cast<size_t>(numel > 0 ? numel : 1)];
    if (strings == nullptr) return nullptr;
    return std::shared_ptr<void>(strings, [](void* p) { delete[] static_cast<std::string*>(p); });
  }
  size_t bytes = static_cast<size_t>(numel) * element_size(dtype);
  size_t rounded = (bytes + kAlignment - 1) / kAlignment * kAlignment;
  if (rounded == 0) rounded = kAlignment;
  void* p = std::aligned_alloc(kAlignment, rounded);
  if (p == nullptr) return nullptr;
  std::memset(p, 0, rounded);
  return std::shared_ptr<void>(p, [](void* q) { std::free(q); });
}

}  // namespace

Result<int64_t> checked_numel(const Dims& dims) {
  int64_t n = 1;
  for (int64_t d : dims) {
    if (d < 0) return invalid_argument("negative dimension {} in shape {}", d, dims_to_string(dims));
    if (d != 0 && n > kMaxTensorElements / d) {
      return out_of_range("shape {} has more than 2^36 elements", dims_to_string(dims));
    }
    n *= d;
  }
  return n;
}

std::string dims_to_string(const Dims& dims) { return fmt::format("[{}]", fmt::join(dims, ",")); }

Result<Tensor> Tensor::allocate(DataType dtype, Dims dims) {
  if (element_size(dtype) == 0) return invalid_argument("cannot allocate a tensor of undefined type");
  KILN_ASSIGN_OR_RETURN(int64_t numel, checked_numel(dims));
  if (static_cast<uint64_t>(numel) * element_size(dtype) > (uint64_t{1} << 40)) {
    return resource_exhausted("tensor {}{} needs more than 1 TiB", data_type_name(dtype), dims_to_string(dims));
  }
  Tensor t;
  t.owner_ = allocate_storage(dtype, numel);
  if (t.owner_ == nullptr) {
    return resource_exhausted("out of memory allocating {}{} ({} bytes)", data_type_name(dtype),
                              dims_to_string(dims), static_cast<uint64_t>(numel) * element_size(dtype));
  }
  t.dtype_ = dtype;
  t.dims_ = std::move(dims);
  t.numel_ = numel;
  t.data_ = t.owner_.get();
  return t;
}

Tensor Tensor::empty(DataType dtype, Dims dims) {
  auto r = allocate(dtype, std::move(dims));
  if (!r.is_ok()) {
    std::fprintf(stderr, "kiln: Tensor::empty: %s\n", r.status().to_string().c_str());
    std::abort();
  }
  return std::move(r).value();
}

Tensor Tensor::borrow(DataType dtype, Dims dims, void* data) {
  Tensor t;
  t.dtype_ = dtype;
  t.numel_ = 1;
  for (int64_t d : dims) t.numel_ *= d;
  t.dims_ = std::move(dims);
  t.data_ = data;
  return t;
}

Tensor Tensor::wrap(DataType dtype, Dims dims, void* data, std::shared_ptr<void> owner) {
  Tensor t = borrow(dtype, std::move(dims), data);
  t.owner_ = std::move(owner);
  return t;
}

Tensor Tensor::clone() const {
  if (!defined()) return Tensor();
  Tensor t = empty(dtype_, dims_);
  if (dtype_ == DataType::kString) {
    for (int64_t i = 0; i < numel_; ++i) t.data<std::string>()[i] = data<std::string>()[i];
  } else if (numel_ > 0) {
    std::memcpy(t.data_, data_, nbytes());
  }
  return t;
}

Result<Tensor> Tensor::reshaped(Dims dims) const {
  KILN_ASSIGN_OR_RETURN(int64_t n, checked_numel(dims));
  if (n != numel_) {
    return invalid_argument("cannot reshape {} to {}", debug_string(), dims_to_string(dims));
  }
  Tensor t = *this;
  t.dims_ = std::move(dims);
  return t;
}

std::string Tensor::debug_string() const {
  return fmt::format("{}{}", data_type_name(dtype_), dims_to_string(dims_));
}

}  // namespace kiln
