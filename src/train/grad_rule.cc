#include "train/grad_rule.h"

#include <algorithm>

#include "core/error.h"

namespace kiln::train {

namespace {

using Family = std::span<const GradRule> (*)();
constexpr Family kFamilies[] = {linear_rules, elementwise_rules, conv_rules, pool_rules,
                                norm_rules,   shape_rules,       softmax_rules, reduce_rules};

}  // namespace

const GradRule* find_grad_rule(std::string_view op_type) {
  for (Family family : kFamilies) {
    for (const GradRule& r : family()) {
      if (r.op_type == op_type) return &r;
    }
  }
  return nullptr;
}

std::vector<std::string_view> grad_rule_ops() {
  std::vector<std::string_view> ops;
  for (Family family : kFamilies) {
    for (const GradRule& r : family()) ops.push_back(r.op_type);
  }
  std::sort(ops.begin(), ops.end());
  return ops;
}

Result<Tensor> new_tensor(DataType dtype, const Dims& dims) { return Tensor::allocate(dtype, dims); }

Result<Dims> broadcast_dims(const Dims& a, const Dims& b) {
  size_t rank = std::max(a.size(), b.size());
  Dims out(rank, 1);
  for (size_t i = 0; i < rank; ++i) {
    int64_t da = i < rank - a.size() ? 1 : a[i - (rank - a.size())];
    int64_t db = i < rank - b.size() ? 1 : b[i - (rank - b.size())];
    if (da != db && da != 1 && db != 1) {
      return invalid_argument("shapes [{}] and [{}] do not broadcast", fmt::join(a, ","), fmt::join(b, ","));
    }
    out[i] = da == 1 ? db : da;
  }
  return out;
}

std::vector<int64_t> broadcast_map(const Dims& in, const Dims& out) {
  size_t rank = out.size();
  std::vector<int64_t> in_stride(rank, 0);
  int64_t s = 1;
  for (size_t k = 0; k < in.size(); ++k) {
    size_t i = in.size() - 1 - k;
    size_t o = rank - 1 - k;
    in_stride[o] = in[i] == 1 ? 0 : s;
    s *= in[i];
  }
  int64_t total = 1;
  for (int64_t d : out) total *= d;
  std::vector<int64_t> map(static_cast<size_t>(total));
  std::vector<int64_t> idx(rank, 0);
  int64_t pos = 0;
  for (int64_t n = 0; n < total; ++n) {
    map[static_cast<size_t>(n)] = pos;
    for (size_t k = rank; k-- > 0;) {
      ++idx[k];
      pos += in_stride[k];
      if (idx[k] < out[k]) break;
      pos -= in_stride[k] * idx[k];
      idx[k] = 0;
    }
  }
  return map;
}

namespace {

template <class T>
Result<Tensor> reduce_to_impl(const Tensor& t, const Dims& dims) {
  KILN_ASSIGN_OR_RETURN(Tensor out, new_tensor(t.dtype(), dims));
  if (t.dims() == dims) {
    std::copy_n(t.data<T>(), t.numel(), out.data<T>());
    return out;
  }
  std::vector<int64_t> map = broadcast_map(dims, t.dims());
  const T* src = t.data<T>();
  T* dst = out.data<T>();
  for (size_t i = 0; i < map.size(); ++i) dst[map[i]] += src[i];
  return out;
}

}  // namespace

Result<Tensor> reduce_to(const Tensor& t, const Dims& dims) {
  if (dims.size() > t.dims().size()) return invalid_argument("cannot reduce rank {} to rank {}", t.rank(), dims.size());
  if (t.dtype() == DataType::kFloat64) return reduce_to_impl<double>(t, dims);
  return reduce_to_impl<float>(t, dims);
}

}  // namespace kiln::train
