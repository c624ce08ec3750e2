// Tensor: a dense, row-major n-dimensional array.
//
// A Tensor either owns its storage (64-byte aligned, shared between copies:
// copying a Tensor copies a reference, use clone() for a deep copy) or borrows
// memory owned by someone else, who must keep it alive and unchanged for the
// Tensor's lifetime. String tensors always own a std::string array.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "kiln/data_type.h"
#include "kiln/status.h"

namespace kiln {

using Dims = std::vector<int64_t>;

// Product of dims, or an error if a dim is negative or the product overflows
// or exceeds kMaxTensorElements.
Result<int64_t> checked_numel(const Dims& dims);
inline constexpr int64_t kMaxTensorElements = int64_t{1} << 36;
std::string dims_to_string(const Dims& dims);  // "[1,3,224,224]"

class Tensor {
 public:
  Tensor() = default;  // an empty, undefined tensor (dtype kUndefined)

  // Owned, zero-filled storage. Fails on a negative dim, overflow or an absurd size.
  static Result<Tensor> allocate(DataType dtype, Dims dims);
  // Like allocate() but aborts on failure: for sizes the caller has already validated.
  static Tensor empty(DataType dtype, Dims dims);
  // Borrowed storage; `data` must hold numel * element_size bytes and outlive the tensor.
  // String tensors cannot be borrowed.
  static Tensor borrow(DataType dtype, Dims dims, void* data);
  // Owned storage kept alive by `owner` (e.g. an mmap or a numpy array).
  static Tensor wrap(DataType dtype, Dims dims, void* data, std::shared_ptr<void> owner);
  // A 0-d tensor holding `value`.
  template <class T>
  static Tensor scalar(DataType dtype, T value) {
    Tensor t = empty(dtype, {});
    *t.data<T>() = value;
    return t;
  }

  bool defined() const { return dtype_ != DataType::kUndefined; }
  DataType dtype() const { return dtype_; }
  const Dims& dims() const { return dims_; }
  int64_t rank() const { return static_cast<int64_t>(dims_.size()); }
  int64_t dim(int64_t i) const { return dims_[static_cast<size_t>(i)]; }
  int64_t numel() const { return numel_; }
  size_t nbytes() const { return static_cast<size_t>(numel_) * element_size(dtype_); }
  bool is_owned() const { return owner_ != nullptr; }

  void* raw_data() { return data_; }
  const void* raw_data() const { return data_; }
  template <class T>
  T* data() { return static_cast<T*>(data_); }
  template <class T>
  const T* data() const { return static_cast<const T*>(data_); }
  template <class T>
  std::span<T> span() { return {data<T>(), static_cast<size_t>(numel_)}; }
  template <class T>
  std::span<const T> span() const { return {data<T>(), static_cast<size_t>(numel_)}; }

  // Deep copy into new owned storage.
  Tensor clone() const;
  // Same storage viewed with other dims of equal element count.
  Result<Tensor> reshaped(Dims dims) const;

  std::string debug_string() const;  // "float[1,3,224,224]"

 private:
  DataType dtype_ = DataType::kUndefined;
  Dims dims_;
  int64_t numel_ = 0;
  void* data_ = nullptr;
  std::shared_ptr<void> owner_;  // null when borrowed
};

}  // namespace kiln
