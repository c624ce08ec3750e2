#include "core/shape.h"

#include <fmt/format.h>

namespace kiln {

std::string Dim::to_string() const {
  if (known()) return std::to_string(value);
  if (!symbol.empty()) return symbol;
  return "?";
}

Shape Shape::of(const Dims& dims) {
  std::vector<Dim> d;
  d.reserve(dims.size());
  for (int64_t v : dims) d.emplace_back(v);
  return Shape(std::move(d));
}

bool Shape::fully_known() const {
  if (!rank_known_) return false;
  for (const auto& d : dims_) {
    if (!d.known()) return false;
  }
  return true;
}

std::optional<Dims> Shape::concrete() const {
  if (!fully_known()) return std::nullopt;
  Dims out;
  out.reserve(dims_.size());
  for (const auto& d : dims_) out.push_back(d.value);
  return out;
}

bool Shape::matches(const Dims& dims) const {
  if (!rank_known_) return true;
  if (dims.size() != dims_.size()) return false;
  for (size_t i = 0; i < dims.size(); ++i) {
    if (dims_[i].known() && dims_[i].value != dims[i]) return false;
  }
  return true;
}

std::string Shape::to_string() const {
  if (!rank_known_) return "*";
  std::string s = "[";
  for (size_t i = 0; i < dims_.size(); ++i) {
    if (i) s += ",";
    s += dims_[i].to_string();
  }
  return s + "]";
}

}  // namespace kiln
