// Shape: a possibly partially known tensor shape for static analysis.
//
// Each Dim is either a known value (>= 0), a named symbol ("batch", "seq"),
// or unknown. A Shape may also have unknown rank. Runtime tensors carry plain
// Dims; Shape is what the importer, shape inference and passes reason with.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "kiln/tensor.h"

namespace kiln {

struct Dim {
  int64_t value = -1;  // >= 0 when known
  std::string symbol;  // non-empty for a named symbolic dim

  Dim() = default;
  Dim(int64_t v) : value(v) {}  // NOLINT(google-explicit-constructor)
  static Dim sym(std::string name) {
    Dim d;
    d.symbol = std::move(name);
    return d;
  }
  bool known() const { return value >= 0; }
  bool operator==(const Dim& o) const { return value == o.value && symbol == o.symbol; }
  std::string to_string() const;  // "224", "batch" or "?"
};

class Shape {
 public:
  Shape() = default;  // unknown rank
  explicit Shape(std::vector<Dim> dims) : dims_(std::move(dims)), rank_known_(true) {}
  static Shape of(const Dims& dims);  // fully known
  static Shape unknown_rank() { return Shape(); }
  static Shape unknown_dims(int64_t rank) { return Shape(std::vector<Dim>(static_cast<size_t>(rank))); }

  bool rank_known() const { return rank_known_; }
  int64_t rank() const { return static_cast<int64_t>(dims_.size()); }  // only if rank_known()
  const std::vector<Dim>& dims() const { return dims_; }
  std::vector<Dim>& dims() { return dims_; }
  const Dim& operator[](int64_t i) const { return dims_[static_cast<size_t>(i)]; }
  Dim& operator[](int64_t i) { return dims_[static_cast<size_t>(i)]; }

  bool fully_known() const;
  std::optional<Dims> concrete() const;  // the dims if all are known
  // Does a concrete runtime shape fit this (possibly symbolic) shape?
  bool matches(const Dims& dims) const;

  bool operator==(const Shape& o) const { return rank_known_ == o.rank_known_ && dims_ == o.dims_; }
  std::string to_string() const;  // "[batch,3,224,224]", "[?]" or "*" for unknown rank

 private:
  std::vector<Dim> dims_;
  bool rank_known_ = false;
};

}  // namespace kiln
