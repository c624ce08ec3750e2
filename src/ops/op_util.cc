#include "ops/op_util.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <sstream>

namespace kiln::ops {

Result<Dims> broadcast_dims(const Dims& a, const Dims& b) {
  size_t rank = std::max(a.size(), b.size());
  Dims out(rank);
  for (size_t i = 0; i < rank; ++i) {
    int64_t da = i < rank - a.size() ? 1 : a[i - (rank - a.size())];
    int64_t db = i < rank - b.size() ? 1 : b[i - (rank - b.size())];
    if (da == db || db == 1) {
      out[i] = da;
    } else if (da == 1) {
      out[i] = db;
    } else {
      return invalid_argument("shapes {} and {} cannot be broadcast together", dims_to_string(a), dims_to_string(b));
    }
  }
  return out;
}

Result<Dims> broadcast_dims(std::span<const Dims> shapes) {
  Dims out;
  for (const Dims& s : shapes) {
    KILN_ASSIGN_OR_RETURN(out, broadcast_dims(out, s));
  }
  return out;
}

std::vector<int64_t> strides_of(const Dims& dims) {
  std::vector<int64_t> s(dims.size());
  int64_t acc = 1;
  for (size_t i = dims.size(); i-- > 0;) {
    s[i] = acc;
    acc *= dims[i];
  }
  return s;
}

std::vector<int64_t> broadcast_strides(const Dims& in, const Dims& out) {
  std::vector<int64_t> s(out.size(), 0);
  std::vector<int64_t> own = strides_of(in);
  size_t lead = out.size() - in.size();
  for (size_t i = 0; i < in.size(); ++i) s[lead + i] = in[i] == 1 ? 0 : own[i];
  return s;
}

BroadcastIterator::BroadcastIterator(const Dims& out, const std::vector<Dims>& inputs)
    : out_(out), index_(out.size(), 0), offsets_(inputs.size(), 0) {
  for (const Dims& in : inputs) strides_.push_back(broadcast_strides(in, out));
}

void BroadcastIterator::next() {
  for (size_t d = out_.size(); d-- > 0;) {
    if (++index_[d] < out_[d]) {
      for (size_t k = 0; k < offsets_.size(); ++k) offsets_[k] += strides_[k][d];
      return;
    }
    for (size_t k = 0; k < offsets_.size(); ++k) offsets_[k] -= strides_[k][d] * (out_[d] - 1);
    index_[d] = 0;
  }
}

Result<int64_t> normalize_axis(int64_t axis, int64_t rank) {
  if (axis < -rank || axis >= rank) {
    return invalid_argument("axis {} is out of range for rank {}", axis, rank);
  }
  return axis < 0 ? axis + rank : axis;
}

Result<std::vector<int64_t>> normalize_axes(const std::vector<int64_t>& axes, int64_t rank) {
  std::vector<int64_t> out;
  std::vector<bool> seen(static_cast<size_t>(rank), false);
  for (int64_t a : axes) {
    KILN_ASSIGN_OR_RETURN(int64_t n, normalize_axis(a, rank));
    if (seen[static_cast<size_t>(n)]) return invalid_argument("axis {} appears twice", a);
    seen[static_cast<size_t>(n)] = true;
    out.push_back(n);
  }
  return out;
}

Result<std::vector<int64_t>> to_int64_vector(const Tensor& t) {
  std::vector<int64_t> out(static_cast<size_t>(t.numel()));
  if (t.dtype() == DataType::kInt64) {
    std::copy_n(t.data<int64_t>(), t.numel(), out.begin());
  } else if (t.dtype() == DataType::kInt32) {
    std::copy_n(t.data<int32_t>(), t.numel(), out.begin());
  } else {
    return invalid_argument("expected an int32 or int64 tensor, got {}", t.debug_string());
  }
  return out;
}

Result<double> to_scalar_double(const Tensor& t) {
  if (t.numel() != 1) return invalid_argument("expected one element, got {}", t.debug_string());
  double v = 0;
  KILN_RETURN_IF_ERROR(visit_numeric(t.dtype(), "scalar", [&](auto tag) -> Status {
    using T = decltype(tag);
    v = static_cast<double>(static_cast<compute_type_t<T>>(t.data<T>()[0]));
    return Status::ok();
  }, /*with_bool=*/true));
  return v;
}

namespace {

template <class To, class From>
To convert_element(From x) {
  using C = compute_type_t<From>;
  if constexpr (std::is_same_v<To, bool>) {
    return static_cast<C>(x) != C(0);
  } else if constexpr (std::is_same_v<To, Float16> || std::is_same_v<To, BFloat16>) {
    return To(static_cast<float>(static_cast<C>(x)));
  } else if constexpr (std::is_integral_v<To> && std::is_floating_point_v<C>) {
    // ONNX leaves NaN and out-of-range float-to-int undefined; saturate deterministically.
    C v = static_cast<C>(x);
    if (std::isnan(v)) return To(0);
    if (v <= static_cast<C>(std::numeric_limits<To>::lowest())) return std::numeric_limits<To>::lowest();
    if (v >= static_cast<C>(std::numeric_limits<To>::max())) return std::numeric_limits<To>::max();
    return static_cast<To>(v);
  } else {
    return static_cast<To>(static_cast<C>(x));
  }
}

std::string number_to_string(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "INF" : "-INF";
  std::ostringstream os;
  os.precision(9);
  os << v;
  return os.str();
}

Result<double> parse_number(const std::string& s) {
  std::string lower;
  for (char c : s) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (lower == "nan") return std::numeric_limits<double>::quiet_NaN();
  if (lower == "inf" || lower == "+inf" || lower == "infinity") return std::numeric_limits<double>::infinity();
  if (lower == "-inf" || lower == "-infinity") return -std::numeric_limits<double>::infinity();
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (s.empty() || end != s.c_str() + s.size()) return invalid_argument("cannot parse '{}' as a number", s);
  return v;
}

}  // namespace

Result<Tensor> cast_tensor(const Tensor& t, DataType to) {
  if (t.dtype() == to) return t.clone();
  KILN_ASSIGN_OR_RETURN(Tensor out, Tensor::allocate(to, t.dims()));
  int64_t n = t.numel();
  if (t.dtype() == DataType::kString) {
    const auto* src = t.data<std::string>();
    KILN_RETURN_IF_ERROR(visit_numeric(to, "Cast from string", [&](auto tag) -> Status {
      using To = decltype(tag);
      for (int64_t i = 0; i < n; ++i) {
        KILN_ASSIGN_OR_RETURN(double v, parse_number(src[i]));
        out.data<To>()[i] = convert_element<To>(v);
      }
      return Status::ok();
    }, true));
    return out;
  }
  if (to == DataType::kString) {
    auto* dst = out.data<std::string>();
    KILN_RETURN_IF_ERROR(visit_numeric(t.dtype(), "Cast to string", [&](auto tag) -> Status {
      using From = decltype(tag);
      for (int64_t i = 0; i < n; ++i) {
        if constexpr (std::is_same_v<From, bool>) {
          dst[i] = t.data<bool>()[i] ? "1" : "0";
        } else if constexpr (std::is_integral_v<From>) {
          dst[i] = std::to_string(t.data<From>()[i]);
        } else {
          dst[i] = number_to_string(static_cast<double>(static_cast<compute_type_t<From>>(t.data<From>()[i])));
        }
      }
      return Status::ok();
    }, true));
    return out;
  }
  KILN_RETURN_IF_ERROR(visit_numeric(t.dtype(), "Cast", [&](auto from_tag) -> Status {
    using From = decltype(from_tag);
    return visit_numeric(to, "Cast", [&](auto to_tag) -> Status {
      using To = decltype(to_tag);
      const From* src = t.data<From>();
      To* dst = out.data<To>();
      for (int64_t i = 0; i < n; ++i) dst[i] = convert_element<To>(src[i]);
      return Status::ok();
    }, true);
  }, true));
  return out;
}

Result<Tensor> to_float32(const Tensor& t) {
  if (t.dtype() == DataType::kFloat32) return t;
  return cast_tensor(t, DataType::kFloat32);
}

Result<Tensor> to_float64(const Tensor& t) {
  if (t.dtype() == DataType::kFloat64) return t;
  return cast_tensor(t, DataType::kFloat64);
}

Result<Shape> broadcast_shapes(const Shape& a, const Shape& b) {
  if (!a.rank_known() || !b.rank_known()) return Shape::unknown_rank();
  int64_t rank = std::max(a.rank(), b.rank());
  std::vector<Dim> out(static_cast<size_t>(rank));
  for (int64_t i = 0; i < rank; ++i) {
    int64_t ia = i - (rank - a.rank());
    int64_t ib = i - (rank - b.rank());
    Dim da = ia < 0 ? Dim(1) : a[ia];
    Dim db = ib < 0 ? Dim(1) : b[ib];
    Dim& o = out[static_cast<size_t>(i)];
    if (da.known() && db.known()) {
      if (da.value != db.value && da.value != 1 && db.value != 1) {
        return invalid_argument("shapes {} and {} cannot be broadcast together", a.to_string(), b.to_string());
      }
      o = da.value == 1 ? db : da;
    } else if (da.known() && da.value == 1) {
      o = db;
    } else if (db.known() && db.value == 1) {
      o = da;
    } else if (da.known()) {
      o = da;  // the unknown one must be 1 or equal
    } else if (db.known()) {
      o = db;
    } else if (!da.symbol.empty() && da.symbol == db.symbol) {
      o = da;
    }  // else: unknown
  }
  return Shape(std::move(out));
}

Result<Shape> broadcast_shapes(std::span<const Shape> shapes) {
  Shape out(std::vector<Dim>{});
  for (const Shape& s : shapes) {
    KILN_ASSIGN_OR_RETURN(out, broadcast_shapes(out, s));
  }
  return out;
}

}  // namespace kiln::ops

namespace kiln::ops {

void copy_elements(const Tensor& src, int64_t src_offset, Tensor& dst, int64_t dst_offset, int64_t count) {
  if (count <= 0) return;
  if (src.dtype() == DataType::kString) {
    const std::string* s = src.data<std::string>() + src_offset;
    std::string* d = dst.data<std::string>() + dst_offset;
    for (int64_t i = 0; i < count; ++i) d[i] = s[i];
    return;
  }
  size_t es = element_size(src.dtype());
  std::memcpy(static_cast<char*>(dst.raw_data()) + static_cast<size_t>(dst_offset) * es,
              static_cast<const char*>(src.raw_data()) + static_cast<size_t>(src_offset) * es,
              static_cast<size_t>(count) * es);
}

Result<Tensor> take_elements(const Tensor& src, const std::vector<int64_t>& src_index, Dims dims) {
  KILN_ASSIGN_OR_RETURN(Tensor out, Tensor::allocate(src.dtype(), std::move(dims)));
  if (static_cast<int64_t>(src_index.size()) != out.numel()) {
    return internal_error("take_elements: {} indices for {} elements", src_index.size(), out.numel());
  }
  if (src.dtype() == DataType::kString) {
    const std::string* s = src.data<std::string>();
    std::string* d = out.data<std::string>();
    for (size_t i = 0; i < src_index.size(); ++i) d[i] = s[src_index[i]];
    return out;
  }
  size_t es = element_size(src.dtype());
  const char* s = static_cast<const char*>(src.raw_data());
  char* d = static_cast<char*>(out.raw_data());
  for (size_t i = 0; i < src_index.size(); ++i) {
    std::memcpy(d + i * es, s + static_cast<size_t>(src_index[i]) * es, es);
  }
  return out;
}

std::vector<int64_t> strided_indices(const Dims& dims, const std::vector<int64_t>& strides, int64_t base) {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  std::vector<int64_t> out;
  if (n <= 0) return out;
  out.reserve(static_cast<size_t>(n));
  std::vector<int64_t> coord(dims.size(), 0);
  int64_t offset = base;
  for (int64_t i = 0; i < n; ++i) {
    out.push_back(offset);
    for (size_t d = dims.size(); d-- > 0;) {
      if (++coord[d] < dims[d]) {
        offset += strides[d];
        break;
      }
      offset -= strides[d] * (dims[d] - 1);
      coord[d] = 0;
    }
  }
  return out;
}

Result<int64_t> to_int64_scalar(const Tensor& t) {
  if (t.numel() != 1) return invalid_argument("expected one integer, got {}", t.debug_string());
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> v, to_int64_vector(t));
  return v[0];
}

}  // namespace kiln::ops
